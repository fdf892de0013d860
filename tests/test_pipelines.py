"""transformers pipelines load a saved EELBERT folder with remote code and give the model's own numbers."""

import pytest
import torch
from transformers import pipeline

from conftest import small_config
from eelbert_hf import (
    EELBertForMaskedLM,
    EELBertForSequenceClassification,
    EELBertForTokenClassification,
    EELBertModel,
    EELBertTokenizer,
)

TEXT = "the runner kept running, and everyone cheered"


def saved(tmp_path, model_class, **config):
    torch.manual_seed(0)
    model = model_class(small_config(**config)).eval()
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    return str(tmp_path), model, tokenizer


def test_fill_mask(tmp_path):
    folder, model, tokenizer = saved(tmp_path, EELBertForMaskedLM)
    fill = pipeline("fill-mask", model=folder, trust_remote_code=True, top_k=3)
    text = f"the runner kept {tokenizer.mask_token}, and everyone cheered"
    predictions = fill(text)
    batch = tokenizer(text, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[0, batch["input_ids"][0].tolist().index(tokenizer.mask_token_id)]
    top = logits.softmax(-1).topk(3)
    assert [p["token"] for p in predictions] == top.indices.tolist()
    torch.testing.assert_close(torch.tensor([p["score"] for p in predictions]), top.values, atol=1e-5, rtol=0)


def test_text_classification(tmp_path):
    folder, model, tokenizer = saved(tmp_path, EELBertForSequenceClassification, num_labels=3)
    classify = pipeline("text-classification", model=folder, trust_remote_code=True, top_k=None)
    scores = {p["label"]: p["score"] for p in classify([TEXT])[0]}
    with torch.no_grad():
        probabilities = model(**tokenizer(TEXT, return_tensors="pt")).logits.softmax(-1)[0]
    expected = {model.config.id2label[i]: p for i, p in enumerate(probabilities.tolist())}
    assert scores.keys() == expected.keys()
    for label, score in scores.items():
        assert score == pytest.approx(expected[label], abs=1e-5)


def test_feature_extraction(tmp_path):
    folder, model, tokenizer = saved(tmp_path, EELBertModel)
    extract = pipeline("feature-extraction", model=folder, trust_remote_code=True)
    features = torch.tensor(extract(TEXT))  # (1, S, d)
    with torch.no_grad():
        expected = model(**tokenizer(TEXT, return_tensors="pt")).last_hidden_state
    torch.testing.assert_close(features, expected, atol=1e-5, rtol=0)


def test_token_classification(tmp_path):
    folder, model, tokenizer = saved(tmp_path, EELBertForTokenClassification, num_labels=4)
    tag = pipeline("token-classification", model=folder, trust_remote_code=True, aggregation_strategy="none",
                   ignore_labels=[])
    entities = tag(TEXT)
    batch = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        probabilities = model(**batch).logits.softmax(-1)[0]  # (S, num_labels)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    assert [e["word"] for e in entities] == tokens[1:-1]  # [CLS] and [SEP] are left out
    for entity in entities:
        best = probabilities[entity["index"]].max(-1)
        assert entity["entity"] == model.config.id2label[best.indices.item()]
        assert entity["score"] == pytest.approx(best.values.item(), abs=1e-5)
