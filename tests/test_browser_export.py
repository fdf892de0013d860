"""What `eelbert export --onnx` writes for JavaScript and the browser (js/, examples/browser/): the transformers.js
layout (onnx/model.onnx, onnx/model_quantized.onnx, config.json with the n-gram fields, tokenizer.json), and
a tokenizer.json that alone reproduces the Python tokenizer's input_ids and, through the hash of each id's
vocabulary string, its ngram_ids. The JS side itself is tested with node (js/test, js/e2e)."""

import json
import os

import numpy as np
import pytest

from eelbert_hf import EELBertForSequenceClassification, EELBertTokenizer
from eelbert_hf.loading import BUNDLED_CLASSIFIER

pytest.importorskip("onnx", reason="the `test` extra installs onnx; without it ONNX export cannot run")
onnxruntime = pytest.importorskip("onnxruntime", reason="the `test` extra installs onnxruntime; it runs the graphs")
pytest.importorskip("onnxscript", reason="the `test` extra installs onnxscript; torch.onnx.export(dynamo=True) needs it")
tokenizers = pytest.importorskip("tokenizers", reason="transformers' fast tokenizers need it; it reads tokenizer.json")

from eelbert_hf.loading import DATA_DIR  # noqa: E402
from eelbert_hf.packaging import onnx_export  # noqa: E402
from eelbert_hf.apps.cli import main  # noqa: E402

RT_SAMPLE = os.path.join(DATA_DIR, "rt_sample_validation.jsonl")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("browser") / "uno-rt")
    main(["export", "bundled", folder, "--onnx", "--quantize"])
    return folder


def sample_texts(n=200):
    with open(RT_SAMPLE, encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f if line.strip()][:n]


def test_export_writes_the_transformers_js_layout(exported):
    for name in ("onnx/model.onnx", "onnx/model_quantized.onnx", *onnx_export.RUNTIME_FILES):
        assert os.path.isfile(os.path.join(exported, name)), name
    with open(os.path.join(exported, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    tokenizer = EELBertTokenizer.from_pretrained(exported)
    for field in ("hash_scheme", "ngram_min_n", "ngram_max_n", "max_ngrams_per_token"):
        assert config[field] == tokenizer.ngram_params[field], field
    assert config["embedding_type"] == "dynamic" and tokenizer.feature_type == "ngram"
    with open(os.path.join(BUNDLED_CLASSIFIER, "config.json"), encoding="utf-8") as f:
        assert config["id2label"] == json.load(f)["id2label"]  # the labels JS classify() names


def test_the_graph_takes_one_row_of_ngram_ids_per_token(exported):
    with open(os.path.join(exported, "config.json"), encoding="utf-8") as f:
        width = json.load(f)["max_ngrams_per_token"]
    for name in ("model.onnx", "model_quantized.onnx"):
        session = onnxruntime.InferenceSession(os.path.join(exported, "onnx", name), providers=["CPUExecutionProvider"])
        inputs = {i.name: i for i in session.get_inputs()}
        assert list(inputs) == list(onnx_export.ONNX_INPUTS)
        assert all(i.type == "tensor(int64)" for i in inputs.values())
        assert inputs["ngram_ids"].shape[2] == width  # (batch, sequence, max_ngrams_per_token), as JS feeds it


def test_tokenizer_json_alone_gives_the_python_input_ids_and_ngram_ids(exported):
    backend = tokenizers.Tokenizer.from_file(os.path.join(exported, "tokenizer.json"))
    tokenizer = EELBertTokenizer.from_pretrained(exported)
    with open(os.path.join(exported, "tokenizer.json"), encoding="utf-8") as f:
        special = {t["content"] for t in json.load(f)["added_tokens"] if t["special"]}
    assert special == set(tokenizer.all_special_tokens)  # the tokens the JS hash treats as atoms
    width = tokenizer.max_ngrams_per_token
    texts = sample_texts() + ["Un café naïve — 文字 and emoji 😀 too.", "[CLS] inside [MASK] text", ""]
    for text in texts:
        encoded = tokenizer(text)
        assert backend.encode(text).ids == encoded["input_ids"], text
        # what js/ does: hash the vocabulary string of each id, special tokens as atoms
        rows = [tokenizer.token_ngram_ids(backend.id_to_token(i), atom=backend.id_to_token(i) in special)
                for i in encoded["input_ids"]]
        expected = np.array([row + [0] * (width - len(row)) for row in rows])
        assert np.array_equal(expected, np.asarray(encoded["ngram_ids"])), text


def test_export_into_an_empty_folder_writes_the_runtime_files(tmp_path):
    folder = str(tmp_path / "onnx-only")
    result = onnx_export.export_checkpoint(BUNDLED_CLASSIFIER, folder)
    assert result["runtime_files"] == list(onnx_export.RUNTIME_FILES)
    for name in ("onnx/model.onnx", *onnx_export.RUNTIME_FILES):
        assert os.path.isfile(os.path.join(folder, name)), name
    assert "for JavaScript and the browser" in onnx_export.describe(result)
    backend = tokenizers.Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    assert backend.encode(sample_texts(1)[0]).ids == tokenizer(sample_texts(1)[0])["input_ids"]


def test_a_folder_of_another_model_or_tokenizer_is_a_clear_error(tmp_path):
    model = EELBertForSequenceClassification.from_pretrained(BUNDLED_CLASSIFIER)
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    folder = str(tmp_path / "other")
    assert onnx_export.save_runtime_files(model, tokenizer, folder) == list(onnx_export.RUNTIME_FILES)

    config_path = os.path.join(folder, "config.json")
    with open(config_path, encoding="utf-8") as f:
        config = json.load(f)
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump({**config, "ngram_max_n": config["ngram_max_n"] + 1}, f)
    with pytest.raises(ValueError, match="ngram_max_n"):
        onnx_export.save_runtime_files(model, tokenizer, folder)
    with open(config_path, "w", encoding="utf-8") as f:
        json.dump(config, f)

    tokenizer_path = os.path.join(folder, "tokenizer.json")
    with open(tokenizer_path, encoding="utf-8") as f:
        backend = json.load(f)
    for token in backend["added_tokens"]:
        token["special"] = token["content"] != "[MASK]"
    with open(tokenizer_path, "w", encoding="utf-8") as f:
        json.dump(backend, f)
    with pytest.raises(ValueError, match="special"):
        onnx_export.save_runtime_files(model, tokenizer, folder)
