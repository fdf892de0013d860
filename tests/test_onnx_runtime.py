"""eelbert_hf.load_onnx_classifier (packaging/onnx_runtime.py): texts -> logits through the exported graphs, with the
token-embedding cache: equal to torch (float32) and to the single graph (int8), bounded, shared by threads, and a
one-line error for a folder that is not an export."""

import json
import os
import threading

import numpy as np
import pytest
import torch
from conftest import SENTENCES, small_config

import eelbert_hf
from eelbert_hf import EELBertForSequenceClassification

pytest.importorskip("onnx", reason="the `test` extra installs onnx; without it ONNX export cannot run")
pytest.importorskip("onnxruntime", reason="the `test` extra installs onnxruntime; it runs the exported graphs")
pytest.importorskip("onnxscript", reason="the `test` extra installs onnxscript; torch.onnx.export(dynamo=True) needs it")

from eelbert_hf.packaging import onnx_export  # noqa: E402

LONG = " ".join(["an endlessly meandering and overlong film"] * 40)  # > 128 tokens: cut as classify does
TEXTS = SENTENCES + ["a gorgeous, witty film", "a dull, lifeless film", LONG, "😀", ""]


@pytest.fixture(scope="module")
def export(tmp_path_factory, tokenizer):
    """A small trained-looking classifier (non-zero gates, 3 labels) saved and exported with --quantize."""
    torch.manual_seed(0)
    model = EELBertForSequenceClassification(small_config(ngram_weight_buckets=64, num_labels=3)).eval()
    with torch.no_grad():
        model.base_model.embeddings.ngram_embeddings.bucket_weights.normal_(0.0, 0.01)
        model.classifier.weight.normal_(0.0, 1.0)  # logits far enough apart to compare
    checkpoint, folder = tmp_path_factory.mktemp("checkpoint"), tmp_path_factory.mktemp("export")
    model.save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    onnx_export.export_checkpoint(str(checkpoint), str(folder), quantize=True)
    return model, str(folder)


def torch_logits(model, tokenizer, texts):
    encoded = tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")
    with torch.no_grad():
        return model(**encoded).logits.numpy()


def test_float32_logits_equal_torch_and_int8_equal_the_single_graph(export, tokenizer):
    model, folder = export
    cached = eelbert_hf.load_onnx_classifier(folder, dtype="fp32")
    expected = torch_logits(model, tokenizer, TEXTS)
    assert np.abs(expected).max() > 0.1
    for _ in range(2):  # the first call computes every token's embedding, the second reads them all
        assert np.abs(cached(TEXTS) - expected).max() <= 1e-5
    assert np.abs(cached([TEXTS[0]])[0] - expected[0]).max() <= 1e-5  # alone, unpadded
    assert np.abs(eelbert_hf.load_onnx_classifier(folder, dtype="fp32", cache_bytes=0)(TEXTS) - expected).max() <= 1e-5
    int8, single = eelbert_hf.load_onnx_classifier(folder), eelbert_hf.load_onnx_classifier(folder, cache_bytes=0)
    assert int8.cached and not single.cached
    for batch in (TEXTS, TEXTS[:1], [LONG], TEXTS[2:4]):
        assert np.array_equal(int8(batch), single(batch))
    assert np.abs(int8(TEXTS) - expected).max() < 0.1  # int8 stays close to torch
    assert int8.labels == [model.config.id2label[i] for i in range(3)]


def test_the_runtime_encodes_texts_as_the_tokenizer_does(export, tokenizer):
    """The classifier calls the base's Rust tokenizer directly (its own copy, set once to cut at 128 and pad to the
    longest): the same ids and masks as ``tokenizer(texts, padding=True, truncation=True, max_length=128)``, for
    batches, single texts, texts past 128 tokens, lone surrogates and special tokens typed in the text; the
    tokenizer's own padding settings are left as they were."""
    _, folder = export
    classifier = eelbert_hf.load_onnx_classifier(folder)
    backend = classifier.tokenizer.backend_tokenizer
    settings = (backend.padding, backend.truncation)
    odd = ["a \ud83d lone surrogate", "[CLS] typed [SEP] markers [PAD]", "  spaces  \t\n", "ÀÉÎ café naïve"]
    for batch in (TEXTS, TEXTS[:1], [LONG], [""], odd, [LONG, "short"]):
        input_ids, masks = classifier.encode(batch)
        want = tokenizer(batch, padding=True, truncation=True, max_length=128, return_tensors="np")
        assert input_ids.dtype == np.int64 and np.array_equal(input_ids, want["input_ids"])
        for name in ("attention_mask", "token_type_ids"):
            assert masks[name].dtype == np.int64 and np.array_equal(masks[name], want[name])
    assert (backend.padding, backend.truncation) == settings  # the copy holds the classifier's settings
    with pytest.raises(TypeError, match="texts\\[1\\] is of type int"):
        classifier.encode(["fine", 3])


def first_shape(tokenizer):
    return tokenizer(TEXTS, padding=True, truncation=True, max_length=128, return_tensors="np")["input_ids"].shape


def test_cache_stores_each_token_once_and_stays_within_its_bound(export, tokenizer):
    _, folder = export
    classifier = eelbert_hf.load_onnx_classifier(folder)
    runs = []
    real_run = classifier.token_session.run
    classifier.token_session = type("Counted", (), {"run": lambda self, *a, **k: runs.append(a[1]) or real_run(*a, **k)})()
    reference = eelbert_hf.load_onnx_classifier(folder, cache_bytes=0)
    first = classifier(TEXTS)
    ids = {i for row in tokenizer(TEXTS, padding=True, truncation=True, max_length=128)["input_ids"] for i in row}
    assert classifier.cache_info()["tokens"] == len(ids)
    assert len(runs) == 1 and sorted(runs[0]["ngram_ids"].tolist()) == sorted(tokenizer.ngram_ids_for(sorted(ids)).tolist())
    gathered, real_rows_run = [], classifier.rows_session.run
    classifier.rows_session = type("Counted", (), {"run": lambda self, *a, **k: gathered.append(a[1]) or real_rows_run(*a, **k)})()
    assert np.array_equal(classifier(TEXTS), first) and np.array_equal(first, reference(TEXTS))
    assert len(runs) == 1  # every token stored: the token-embedding graph did not run again
    assert len(gathered) == 1 and gathered[0]["token_table"] is classifier._embeddings  # the table, not a copy
    assert gathered[0]["token_rows"].dtype == np.int32 and gathered[0]["token_rows"].shape == first_shape(tokenizer)
    info = classifier.cache_info()
    assert info["bytes"] <= info["max_bytes"] <= eelbert_hf.packaging.onnx_runtime.CACHE_BYTES
    # a bound with room for 5 tokens: 5 stored, the others computed on each call, the logits unchanged
    vocab, hidden = len(tokenizer), classifier.config["hidden_size"]
    small = eelbert_hf.load_onnx_classifier(folder, cache_bytes=4 * vocab + 4 * hidden * 6)
    for _ in range(2):
        assert np.array_equal(small(TEXTS), first)
        assert np.array_equal(small([""]), reference([""]))  # [CLS] [SEP], both stored: the rows graph, same logits
    assert small.cache_info()["tokens"] == 5
    assert small.cache_info()["bytes"] == small.cache_info()["max_bytes"] == 4 * vocab + 4 * hidden * 6


def test_threads_sharing_one_classifier_get_their_own_logits(export):
    _, folder = export
    texts = [f"{word} number {i}" for i, word in enumerate(["great", "awful", "tedious", "moving"] * 8)]
    expected = eelbert_hf.load_onnx_classifier(folder, cache_bytes=0)
    want = [expected([t]) for t in texts]
    shared, got, barrier = eelbert_hf.load_onnx_classifier(folder, threads=1), {}, threading.Barrier(8)

    def work(k):
        barrier.wait()  # all threads fill the empty cache at once
        for i in range(k, len(texts), 8):
            got[i] = shared([texts[i]])

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(got[i], want[i]) for i in range(len(texts)))


def test_a_folder_that_is_not_an_export_is_a_one_line_error(export, tmp_path):
    _, folder = export

    def error(path, **kwargs):
        with pytest.raises(ValueError) as info:
            eelbert_hf.load_onnx_classifier(str(path), **kwargs)
        assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
        return str(info.value)

    assert "not a folder" in error(tmp_path / "no-such-folder")
    assert "config.json" in error(tmp_path)  # an empty folder
    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "architectures": ["BertForSequenceClassification"]}))
    assert "not an EELBertForSequenceClassification" in error(bert)
    no_onnx = tmp_path / "no-onnx"
    no_onnx.mkdir()
    (no_onnx / "config.json").write_text(open(os.path.join(folder, "config.json")).read())
    assert "token_embeddings.onnx is missing" in error(no_onnx)
    assert "model_quantized.onnx is missing" in error(no_onnx, cache_bytes=0)
    (no_onnx / "onnx").mkdir()
    (no_onnx / "onnx" / "model.onnx").write_bytes(b"not a model")
    assert "is not a model onnxruntime loads" in error(no_onnx, dtype="fp32", cache_bytes=0)
    swapped = tmp_path / "swapped"  # the graphs under each other's names
    (swapped / "onnx").mkdir(parents=True)
    (swapped / "config.json").write_text(open(os.path.join(folder, "config.json")).read())
    for name, source in (("token_embeddings.onnx", "model_from_embeddings.onnx"),
                         ("model_from_embeddings.onnx", "token_embeddings.onnx")):
        (swapped / "onnx" / name).write_bytes(open(os.path.join(folder, "onnx", source), "rb").read())
    assert "not the EELBERT export's" in error(swapped, dtype="fp32")
    assert "dtype" in error(folder, dtype="fp16")
    classifier = eelbert_hf.load_onnx_classifier(folder)
    for bad in ([], [1, 2], None):
        with pytest.raises(ValueError, match="non-empty list of strings"):
            classifier(bad)


def test_a_byte_level_bpe_classifier_exports_and_runs_as_in_torch(base_tokenizers, tmp_path):
    """Any tokenizer family exports: the folder carries the base's tokenizer.json in the model's token format, and the
    runtime's logits equal torch's on texts in several scripts."""
    from eelbert_hf import EELBertTokenizer

    tokenizer = EELBertTokenizer.from_base(base_tokenizers["bpe"])
    torch.manual_seed(0)
    config = small_config(num_labels=3, vocab_size=len(tokenizer), token_format="byte_level")
    model = EELBertForSequenceClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
    model.save_pretrained(tmp_path / "checkpoint")
    tokenizer.save_pretrained(tmp_path / "checkpoint")
    onnx_export.export_checkpoint(str(tmp_path / "checkpoint"), str(tmp_path / "export"))
    texts = ["Здравствуй, мир", "你好，世界", "a gripping film 😀", "नमस्ते"]
    logits = eelbert_hf.load_onnx_classifier(str(tmp_path / "export"), dtype="fp32")(texts)
    assert np.abs(logits - torch_logits(model, tokenizer, texts)).max() <= 1e-5
    with open(tmp_path / "export" / "config.json", encoding="utf-8") as f:
        assert json.load(f)["token_format"] == "byte_level"
