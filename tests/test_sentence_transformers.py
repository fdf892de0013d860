"""sentence-transformers: a saved EELBERT folder loads with SentenceTransformer(..., trust_remote_code=True), keeps
`ngram_ids`, and embeds as mean-pooling of the model's own outputs."""

import pytest
import torch
from conftest import SENTENCES, small_config

from eelbert_hf import EELBertModel
from eelbert_hf.packaging.hub import save_hub_folder, save_sentence_transformers_config

st = pytest.importorskip("sentence_transformers", reason="the `test` extra installs sentence-transformers")


def mean_pooled(model, tokenizer, texts):
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**encoded).last_hidden_state  # (B, S, d)
    mask = encoded["attention_mask"][..., None].to(hidden.dtype)  # (B, S, 1)
    return (hidden * mask).sum(1) / mask.sum(1)  # (B, S, d) -> (B, d)


@pytest.mark.parametrize("with_config", [False, True], ids=["bare-folder", "export--sentence-transformers"])
def test_sentence_transformer_equals_mean_pooling(tmp_path, tokenizer, monkeypatch, with_config):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    model = EELBertModel(small_config()).eval()
    save_hub_folder(model, tokenizer, str(tmp_path))
    if with_config:
        assert (save_sentence_transformers_config(str(tmp_path), model.config)
                == ["modules.json", "sentence_bert_config.json", "1_Pooling/config.json"])
    encoder = st.SentenceTransformer(str(tmp_path), trust_remote_code=True, device="cpu")
    got = encoder.encode(SENTENCES, convert_to_tensor=True, batch_size=len(SENTENCES))
    # EELBERT raises without ngram_ids, so equal embeddings show that sentence-transformers passed them on
    torch.testing.assert_close(got, mean_pooled(model, tokenizer, SENTENCES), rtol=0, atol=1e-5)
