"""Token classification, question answering and multiple choice: BERT's heads and losses over EELBERT."""

import pytest
import torch
from transformers import AutoModelForMultipleChoice, AutoModelForQuestionAnswering, AutoModelForTokenClassification

from conftest import small_config
from eelbert_hf import (
    EELBertForMultipleChoice,
    EELBertForQuestionAnswering,
    EELBertForTokenClassification,
    EELBertModel,
)
from eelbert_hf.packaging.hub import HEADS


@pytest.mark.parametrize("auto, head", [(AutoModelForTokenClassification, EELBertForTokenClassification),
                                        (AutoModelForQuestionAnswering, EELBertForQuestionAnswering),
                                        (AutoModelForMultipleChoice, EELBertForMultipleChoice)])
def test_auto_classes_load_the_heads(tmp_path, auto, head):
    torch.manual_seed(0)
    head(small_config(num_labels=3)).save_pretrained(tmp_path)
    assert type(auto.from_pretrained(tmp_path)) is head
    assert head.__name__ in HEADS


def test_token_classification_uses_the_encoder_per_token(batch):
    torch.manual_seed(0)
    model = EELBertForTokenClassification(small_config(num_labels=5)).eval()
    out = model(**batch)
    assert out.logits.shape == (*batch["input_ids"].shape, 5)
    encoder = EELBertModel(model.config, add_pooling_layer=False).eval()
    encoder.load_state_dict(model.bert.state_dict())
    expected = model.classifier(encoder(**batch).last_hidden_state)
    torch.testing.assert_close(out.logits, expected, atol=1e-6, rtol=0)
    labels = torch.randint(0, 5, batch["input_ids"].shape)
    labels[batch["attention_mask"] == 0] = -100
    loss = model(**batch, labels=labels).loss
    keep = labels != -100
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(out.logits[keep], labels[keep]))


def test_question_answering_spans(batch):
    torch.manual_seed(0)
    model = EELBertForQuestionAnswering(small_config()).eval()  # num_labels=2: start and end
    out = model(**batch)
    assert out.start_logits.shape == out.end_logits.shape == batch["input_ids"].shape
    start, end = torch.tensor([1, 2, 0]), torch.tensor([3, 4, 1])
    loss = model(**batch, start_positions=start, end_positions=end).loss
    ce = torch.nn.functional.cross_entropy
    torch.testing.assert_close(loss, (ce(out.start_logits, start) + ce(out.end_logits, end)) / 2)


def test_multiple_choice_scores_each_choice_alone(tokenizer):
    torch.manual_seed(0)
    model = EELBertForMultipleChoice(small_config()).eval()
    prompts, choices = ["The film was", "A cat"], [["great", "awful", "long"], ["sat", "flew", "sang"]]
    flat = tokenizer([p for p, cs in zip(prompts, choices) for _ in cs], [c for cs in choices for c in cs],
                     padding=True, return_tensors="pt")
    batch = {k: v.view(2, 3, *v.shape[1:]) for k, v in flat.items()}  # (B*C, S, ...) -> (B, C, S, ...)
    assert batch["ngram_ids"].shape[:3] == batch["input_ids"].shape
    out = model(**batch, labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3)
    one = [model(**{k: v[i : i + 1, j : j + 1] for k, v in batch.items()}).logits.item()
           for i in range(2) for j in range(3)]
    torch.testing.assert_close(out.logits, torch.tensor(one).view(2, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 2])))
    without_ids = {k: v for k, v in batch.items() if k != "input_ids"}  # n-gram ids alone are enough
    torch.testing.assert_close(model(**without_ids).logits, out.logits, atol=1e-6, rtol=0)


def test_multiple_choice_rejects_inputs_without_a_choice_axis(batch):
    model = EELBertForMultipleChoice(small_config()).eval()
    with pytest.raises(ValueError, match=r"ngram_ids must have shape \(batch, num_choices, seq_len, 48\)"):
        model(**batch)
    stacked = {k: v[:, None] for k, v in batch.items()}
    stacked["ngram_ids"] = stacked["ngram_ids"][:, :, :-1]
    with pytest.raises(ValueError, match=r"input_ids must have shape \(3, 1, \d+\) to match"):
        model(**stacked)


def test_multiple_choice_label_and_missing_input_errors(tokenizer):
    model = EELBertForMultipleChoice(small_config()).eval()
    flat = tokenizer(["a cat", "a dog", "a cow", "a hen"], padding=True, return_tensors="pt")
    batch = {k: v.view(2, 2, *v.shape[1:]) for k, v in flat.items()}  # 2 examples, 2 choices each
    for bad, error, match in [([0, 1], TypeError, "labels must be a torch.Tensor"),
                              (torch.tensor([0, 2]), ValueError, r"labels values must lie in \[0, 1\]"),
                              (torch.tensor([[0], [1]]), ValueError, r"labels must have shape \(2\)"),
                              (torch.tensor([0.0, 1.0]), TypeError, "integers")]:
        with pytest.raises(error, match=match):
            model(**batch, labels=bad)
    with pytest.raises(ValueError, match="no input"):
        model(attention_mask=batch["attention_mask"])


def test_token_classification_label_errors(batch):
    model = EELBertForTokenClassification(small_config(num_labels=3)).eval()
    labels = torch.zeros_like(batch["input_ids"])
    labels[:, 0] = -100  # ignored, as in BERT
    assert model(**batch, labels=labels).loss.isfinite()
    for bad, error, match in [(labels.tolist(), TypeError, "labels must be a torch.Tensor"),
                              (labels + 3, ValueError, r"labels values must lie in \[0, 2\].*num_labels=3")]:
        with pytest.raises(error, match=match):
            model(**batch, labels=bad)
