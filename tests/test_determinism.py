"""Determinism: features and embeddings do not drift across processes (PYTHONHASHSEED), batch sizes, numpy vs
torch, or a save/load round trip; every loaded tensor equals the saved one (no silent re-initialisation)."""

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification

from conftest import SENTENCES, small_config
from eelbert_hf import EELBertForMaskedLM, EELBertForSequenceClassification, EELBertModel, EELBertTokenizer
from test_hash_spec import spec_embedding_numpy

TEXTS = SENTENCES + ["", "x\ud800y", "👨\u200d👩\u200d👧 שלום مرحبا", "e\u0301\u0301 漢字かな", "[MASK] ##ing [unused3]",
                     "Pneumonoultramicroscopicsilicovolcanoconiosis " * 3, "a b c d e f g h i j k l m n o p"]
AUTO = {EELBertModel: AutoModel, EELBertForMaskedLM: AutoModelForMaskedLM,
        EELBertForSequenceClassification: AutoModelForSequenceClassification}


def digest(array) -> str:
    array = array.detach().cpu().numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("determinism")
    torch.manual_seed(0)
    EELBertModel(small_config()).save_pretrained(folder)
    return folder


# ---------------------------------------------------------------- separate processes, different PYTHONHASHSEED
PROCESS_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    import numpy as np, torch
    from eelbert_hf import EELBertModel, EELBertTokenizer
    torch.set_num_threads(1)
    folder, texts = sys.argv[1], json.loads(sys.argv[2])
    digest = lambda a: hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    model = EELBertModel.from_pretrained(folder).eval()
    with torch.no_grad():
        embeddings = model.embeddings.token_embeddings(batch["input_ids"], batch["ngram_ids"])
        hidden = model(**batch).last_hidden_state
    print(json.dumps({"ngram_ids": digest(batch["ngram_ids"].numpy()), "embeddings": digest(embeddings.numpy()),
                      "hidden": digest(hidden.numpy())}))
""")


def test_same_bits_across_pythonhashseed_in_separate_processes(tokenizer, saved_model):
    payload = json.dumps(TEXTS, ensure_ascii=True)  # \ud800 survives as an escape
    procs = [subprocess.Popen([sys.executable, "-c", PROCESS_SCRIPT, str(saved_model), payload],
                              env={**os.environ, "PYTHONHASHSEED": seed}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for seed in ("0", "1", "4242")]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0] == results[1] == results[2]
    batch = tokenizer(json.loads(payload), padding=True, return_tensors="pt")
    model = EELBertModel.from_pretrained(saved_model).eval()
    with torch.no_grad():
        embeddings = model.embeddings.token_embeddings(batch["input_ids"], batch["ngram_ids"])
    assert results[0]["ngram_ids"] == digest(batch["ngram_ids"])  # and the same as this process
    assert results[0]["embeddings"] == digest(embeddings)


# ---------------------------------------------------------------- batch sizes, padding, warm caches
def test_same_bits_across_batch_sizes_and_padding(tokenizer):
    model = EELBertModel(small_config()).eval()
    singles = []
    for text in TEXTS:
        enc = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            singles.append((enc["ngram_ids"][0], model.embeddings.token_embeddings(None, enc["ngram_ids"])[0]))
    for size in (2, 5, len(TEXTS)):
        for start in range(0, len(TEXTS), size):
            chunk = TEXTS[start : start + size]
            enc = tokenizer(chunk, padding="max_length", max_length=64, return_tensors="pt")
            with torch.no_grad():
                embeddings = model.embeddings.token_embeddings(enc["input_ids"], enc["ngram_ids"])
            for i, (ngram_ids, single) in enumerate(singles[start : start + size]):
                n = len(ngram_ids)
                assert torch.equal(enc["ngram_ids"][i, :n], ngram_ids)
                assert torch.equal(embeddings[i, :n].view(torch.int32), single.view(torch.int32)), (size, i)
                assert (embeddings[i, n:] == embeddings[i, -1]).all()  # every [PAD] row is [PAD]'s embedding


def test_warm_and_cold_models_agree_bit_for_bit(tokenizer):
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    torch.manual_seed(0)
    warm = EELBertModel(small_config()).eval()
    with torch.no_grad():
        first = warm(**batch).last_hidden_state
        warm(**tokenizer(["other words fill any cache", "more"], padding=True, return_tensors="pt"))
        again = warm(**batch).last_hidden_state
        torch.manual_seed(0)
        cold = EELBertModel(small_config()).eval()(**batch).last_hidden_state
    assert torch.equal(first, again) and torch.equal(first, cold)


# ---------------------------------------------------------------- numpy (tokenizer) and torch (model)
def test_tokenizer_containers_agree(tokenizer):
    as_lists = tokenizer(TEXTS, padding=True)
    as_numpy = tokenizer(TEXTS, padding=True, return_tensors="np")
    as_torch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert as_numpy["ngram_ids"].dtype == np.int64 and as_torch["ngram_ids"].dtype == torch.int64
    assert np.array_equal(as_numpy["ngram_ids"], np.asarray(as_lists["ngram_ids"]))
    assert np.array_equal(as_numpy["ngram_ids"], as_torch["ngram_ids"].numpy())
    assert np.array_equal(tokenizer.ngram_ids_for(as_numpy["input_ids"]), as_numpy["ngram_ids"])


@pytest.mark.parametrize("hidden_size, ngram_seed", [(32, 0), (128, 12345), (64, 2**64 - 1)])
def test_numpy_spec_and_torch_model_agree_bit_for_bit(tokenizer, hidden_size, ngram_seed):
    ngram_ids = tokenizer(TEXTS, padding=True, return_tensors="np")["ngram_ids"]
    config = small_config(hidden_size=hidden_size, num_attention_heads=2, ngram_seed=ngram_seed)
    model = EELBertModel(config).eval()
    with torch.no_grad():
        got = model.embeddings.token_embeddings(None, torch.from_numpy(ngram_ids)).numpy()
    expected = spec_embedding_numpy(ngram_ids, hidden_size, ngram_seed)
    assert got.dtype == expected.dtype == np.float32
    assert np.array_equal(got.view(np.uint32), expected.view(np.uint32))


# ---------------------------------------------------------------- save -> load is bit-exact
def assert_same_tensors(saved, loaded):
    want, got = saved.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for name in want:
        assert want[name].dtype == got[name].dtype and torch.equal(want[name], got[name]), name
    buffers = dict(loaded.named_buffers())  # non-persistent buffers (hash constants, position ids) are rebuilt
    for name, buffer in saved.named_buffers():
        assert torch.equal(buffer, buffers[name]), name


@pytest.mark.parametrize("embedding_type", ["dynamic", "table", "hash_init", "random_hash"])
@pytest.mark.parametrize("cls", list(AUTO), ids=lambda c: c.__name__)
def test_auto_class_load_is_bit_exact(tmp_path, tokenizer, cls, embedding_type):
    torch.manual_seed(0)
    model = cls(small_config(embedding_type=embedding_type, num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    torch.manual_seed(1)  # a load that re-initialises anything would now draw different values
    for loaded in (AUTO[cls].from_pretrained(tmp_path), cls.from_pretrained(tmp_path, device_map="cpu")):
        assert type(loaded) is cls
        assert_same_tensors(model, loaded.eval())
    feature_type = "whole_token" if embedding_type == "random_hash" else "ngram"
    batch = EELBertTokenizer.from_bundled_vocab(feature_type=feature_type)(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        before, after = model(**batch), loaded(**batch)
    key = "last_hidden_state" if cls is EELBertModel else "logits"
    assert torch.equal(before[key], after[key])


def test_base_model_loaded_from_a_head_checkpoint_keeps_every_tensor(tmp_path):
    torch.manual_seed(0)
    classifier = EELBertForSequenceClassification(small_config(num_labels=2))
    classifier.save_pretrained(tmp_path)
    torch.manual_seed(1)
    assert_same_tensors(classifier.bert, AutoModel.from_pretrained(tmp_path))


REMOTE_SCRIPT = textwrap.dedent("""
    import hashlib, json, sys
    sys.modules["eelbert_hf"] = None  # a user without the package: only the folders' own files load
    import numpy as np, torch, transformers
    torch.manual_seed(1)
    hashes = {}
    for name, folder in json.loads(sys.argv[1]).items():
        model = getattr(transformers, name).from_pretrained(folder, trust_remote_code=True)
        assert not type(model).__module__.startswith("eelbert_hf")
        tensors = {**model.state_dict(), **{"buffer:" + k: v for k, v in model.named_buffers()}}
        hashes[name] = {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in tensors.items()}
    print(json.dumps(hashes))
""")


def test_remote_code_load_is_bit_exact(tmp_path, tokenizer):
    folders, expected = {}, {}
    for cls, auto in AUTO.items():
        torch.manual_seed(0)
        model = cls(small_config(num_labels=2))
        folder = tmp_path / cls.__name__
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        folders[auto.__name__] = str(folder)
        tensors = {**model.state_dict(), **{"buffer:" + k: v for k, v in model.named_buffers()}}
        expected[auto.__name__] = {k: digest(v) for k, v in tensors.items()}
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_MODULES_CACHE": str(tmp_path / "modules"),
           "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, json.dumps(folders)], capture_output=True, text=True,
                          env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == expected
