"""transformers' attention interface over EELBERT: eager and sdpa agree, attention maps and hidden states come
back, gradient checkpointing trains identically, and a torch.compile'd forward matches eager."""

import pytest
import torch

from conftest import SENTENCES, small_config
from eelbert_hf import EELBertForSequenceClassification, EELBertModel

LAYERS = 2


@pytest.fixture(scope="module")
def batch(tokenizer):
    return tokenizer(SENTENCES, padding=True, return_tensors="pt")  # padded: the masks matter


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("attention")
    torch.manual_seed(0)
    EELBertForSequenceClassification(small_config(num_hidden_layers=LAYERS)).save_pretrained(path)
    return path


def test_eager_and_sdpa_agree(folder, batch):
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model = EELBertForSequenceClassification.from_pretrained(folder, attn_implementation=implementation).eval()
        assert model.config._attn_implementation == implementation
        again = EELBertForSequenceClassification._from_config(model.config, attn_implementation=implementation)
        assert again.config._attn_implementation == implementation
        with torch.no_grad():
            outputs[implementation] = model(**batch, output_hidden_states=True)
    torch.testing.assert_close(outputs["eager"].logits, outputs["sdpa"].logits, atol=1e-5, rtol=0)
    mask = batch["attention_mask"][..., None].bool()
    for eager, sdpa in zip(outputs["eager"].hidden_states, outputs["sdpa"].hidden_states):
        torch.testing.assert_close(eager * mask, sdpa * mask, atol=1e-5, rtol=0)


def test_attentions_and_hidden_states(folder, batch):
    model = EELBertModel.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**batch, output_attentions=True, output_hidden_states=True)
    batch_size, seq = batch["input_ids"].shape
    heads, hidden = model.config.num_attention_heads, model.config.hidden_size
    assert len(out.attentions) == LAYERS and len(out.hidden_states) == LAYERS + 1  # + the embedding output
    assert all(a.shape == (batch_size, heads, seq, seq) for a in out.attentions)
    assert all(h.shape == (batch_size, seq, hidden) for h in out.hidden_states)
    torch.testing.assert_close(out.hidden_states[-1], out.last_hidden_state)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(batch_size, heads, seq))
    padded = batch["attention_mask"] == 0  # no attention goes to padding
    assert out.attentions[0].permute(0, 1, 3, 2)[padded[:, None].expand(-1, heads, -1)].abs().max() == 0


def loss_and_grads(model, batch):
    model.zero_grad()
    loss = model(**batch, labels=torch.tensor([0, 1, 1])).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_gradient_checkpointing_gives_the_same_loss_and_gradients(folder, batch):
    model = EELBertForSequenceClassification.from_pretrained(folder).train()  # dropout is 0 in small_config
    loss, grads = loss_and_grads(model, batch)
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    checkpointed_loss, checkpointed_grads = loss_and_grads(model, batch)
    torch.testing.assert_close(checkpointed_loss, loss, atol=1e-5, rtol=0)
    assert checkpointed_grads.keys() == grads.keys()
    for name, grad in grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, atol=1e-5, rtol=0, msg=name)
    torch.optim.SGD(model.parameters(), lr=0.1).step()  # a train step on the checkpointed model
    assert loss_and_grads(model, batch)[0] != loss


def test_torch_compile_matches_eager(folder, batch):
    model = EELBertForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        expected = model(**batch).logits
        compiled = torch.compile(model, backend="eager", fullgraph=False)
        torch.testing.assert_close(compiled(**batch).logits, expected, atol=1e-5, rtol=0)
