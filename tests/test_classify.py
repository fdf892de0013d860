"""The sentiment classifier bundled with the package: `eelbert classify`, `classify()`, export and push of it."""

import json
import os

import pytest
from safetensors import safe_open

from eelbert_hf.apps.classify import BUNDLED_CLASSIFIER, classify
from eelbert_hf.apps.cli import main
from eelbert_hf.packaging.hub import HUB_REQUIRED

DATA = os.path.join(os.path.dirname(BUNDLED_CLASSIFIER))


def test_bundled_classifier_is_a_small_uno_model_without_a_table():
    config = json.load(open(os.path.join(BUNDLED_CLASSIFIER, "config.json"), encoding="utf-8"))
    assert config["num_hidden_layers"] == 1 and config["embedding_type"] == "dynamic"
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    weights = os.path.join(BUNDLED_CLASSIFIER, "model.safetensors")
    assert os.path.getsize(weights) <= 1.2e6
    with safe_open(weights, "pt") as f:
        assert not any("word_embeddings" in key for key in f.keys())


def test_bundled_classifier_predicts_sentiment_better_than_the_majority_class():
    rows = [json.loads(line) for line in open(os.path.join(DATA, "rt_sample_validation.jsonl"), encoding="utf-8")]
    predictions = classify([r["text"] for r in rows])
    assert {p["label"] for p in predictions} == {"negative", "positive"}
    accuracy = sum((p["label"] == "positive") == bool(r["label"]) for p, r in zip(predictions, rows)) / len(rows)
    majority = max(sum(r["label"] for r in rows), sum(1 - r["label"] for r in rows)) / len(rows)
    assert accuracy >= majority + 0.08, (accuracy, majority)
    clear = classify(["a gripping, funny film", "a dull, lifeless and overlong mess"])
    assert [p["label"] for p in clear] == ["positive", "negative"]
    assert all(0.5 < p["score"] <= 1.0 for p in clear)


def test_classify_input_handling():
    assert classify([]) == []
    assert classify("a gripping, funny film")[0]["label"] == "positive"  # a single string is one text
    with pytest.raises(ValueError, match="strings"):
        classify(["fine", None])
    long = classify(["great " * 2000])  # longer than the model's positions: truncated, not an error
    assert long[0]["label"] in ("negative", "positive")


@pytest.fixture
def counted_loads(monkeypatch):
    """classify() with an empty model cache and a loader that counts its calls (and is slow enough for threads that
    start together to all miss the cache at once, unless a lock holds them)."""
    import threading
    import time

    from eelbert_hf.apps import classify as module

    loads, real = [], module.load_classifier

    def counting_loader(name_or_path=None):
        loads.append(name_or_path)
        time.sleep(0.3)
        return real(name_or_path)

    monkeypatch.setattr(module, "_CLASSIFIERS", {})
    monkeypatch.setattr(module, "_LOADING", threading.Lock())
    monkeypatch.setattr(module, "load_classifier", counting_loader)
    return loads


def test_classify_loads_a_model_once(counted_loads, monkeypatch):
    first = classify(["a gripping, funny film"])
    assert classify(["a dull, lifeless and overlong mess"])[0]["label"] == "negative"
    assert len(counted_loads) == 1
    monkeypatch.chdir(os.path.dirname(BUNDLED_CLASSIFIER))  # the same model named three other ways
    for name in ("bundled", BUNDLED_CLASSIFIER, os.path.basename(BUNDLED_CLASSIFIER)):
        assert classify(["a gripping, funny film"], name) == first
    assert len(counted_loads) == 1


def test_threads_classifying_at_once_load_the_model_once_and_agree_with_a_fresh_model(counted_loads):
    from concurrent.futures import ThreadPoolExecutor

    from eelbert_hf.loading import load_classifier

    rows = [json.loads(line) for line in open(os.path.join(DATA, "rt_sample_validation.jsonl"), encoding="utf-8")]
    chunks = [[r["text"] for r in rows[i::8][:40]] for i in range(8)]  # different words: each call hashes new tokens
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(classify, chunks))
    assert len(counted_loads) == 1
    fresh = load_classifier()  # its own tokenizer: n-gram rows that no other thread wrote
    for chunk, predictions in zip(chunks, together):
        expected = fresh(chunk, batch_size=64, truncation=True, max_length=128)
        assert [p["label"] for p in predictions] == [e["label"] for e in expected]
        assert [p["score"] for p in predictions] == pytest.approx([e["score"] for e in expected], abs=1e-6)


def test_classify_command(tmp_path, capsys):
    main(["classify", "a gripping, funny film"])
    label, score, text = capsys.readouterr().out.strip().split("\t")
    assert (label, text) == ("positive", "a gripping, funny film") and 0.5 < float(score) <= 1.0
    texts = tmp_path / "texts.txt"
    texts.write_text("a dull, lifeless and overlong mess\n\nwonderful\n", encoding="utf-8")
    main(["classify", "--file", str(texts)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[2] for line in lines] == ["a dull, lifeless and overlong mess", "wonderful"]
    with pytest.raises(SystemExit, match="give texts"):
        main(["classify"])


def test_export_and_push_the_bundled_classifier(tmp_path, monkeypatch):
    import huggingface_hub

    main(["export", "bundled", str(tmp_path / "hub")])
    assert set(HUB_REQUIRED) <= set(os.listdir(tmp_path / "hub"))
    card = (tmp_path / "hub" / "README.md").read_text(encoding="utf-8")
    assert "Rotten Tomatoes" in card and "eval_accuracy" in card

    uploaded = []

    class FakeApi:  # the Hub is unreachable here: record what would be sent
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=False, exist_ok=False):
            pass

        def upload_folder(self, folder_path, repo_id, commit_message):
            uploaded.append((repo_id, sorted(os.listdir(folder_path)),
                             open(os.path.join(folder_path, "README.md"), encoding="utf-8").read()))
            return "fake-commit"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    main(["push", "bundled", "org/uno-eelbert"])  # a checkpoint, not an exported folder: exported on the way
    (repo_id, files, card), = uploaded
    assert repo_id == "org/uno-eelbert" and set(HUB_REQUIRED) <= set(files)
    assert 'from_pretrained("org/uno-eelbert", trust_remote_code=True)' in card
    assert not any(name.endswith(".py") for name in os.listdir(BUNDLED_CLASSIFIER))  # the package data stays as is


def test_texts_without_a_known_word_get_no_prediction(capsys):
    results = classify(["", "   ", "😀😀🔥", "a gripping, funny film"])
    assert [r["label"] for r in results[:3]] == [None, None, None]
    assert all(r["score"] is None and "no word the vocabulary knows" in r["warning"] for r in results[:3])
    assert results[3]["label"] == "positive"
    main(["classify", "", "a gripping, funny film"])
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("-\t-\t") and "no prediction" in first and second.startswith("positive\t")


@pytest.mark.parametrize("command", [["classify", "--model", "./no-such-model", "fine"],
                                     ["export", "./nothing", "out-unused"],
                                     ["classify", "--file", "no-such-file.txt"]])
def test_missing_folders_and_files_are_named_in_one_line(command):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "eelbert_hf", *command], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("eelbert: error:") and ("no folder" in message or "no such file" in message)


def test_an_unreachable_hub_name_fails_at_once_in_one_line(monkeypatch, tmp_path):
    """Without a network, a Hub name that is not in the cache is refused before huggingface_hub's retries start."""
    import socket

    from huggingface_hub import constants

    from eelbert_hf.apps.cli import main

    def no_network(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(ValueError, match=r"'someorg/somemodel' is not in the local Hub cache and huggingface.co cannot "
                                         r"be reached \(Name or service not known\): pass a local folder"):
        main(["classify", "--model", "someorg/somemodel", "fine"])


def test_export_prints_its_result_without_progress_bars(tmp_path):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", "eelbert_hf", "export", "bundled", str(tmp_path / "hub")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Loading weights" not in result.stderr + result.stdout and "Writing model shards" not in result.stderr
    assert "model.safetensors 1.143 MB (float32)" in result.stdout


def test_a_busy_machine_gets_fewer_torch_threads(monkeypatch):
    import torch

    from eelbert_hf.apps.cli import threads_for_a_shared_machine

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 4)
    monkeypatch.setattr("eelbert_hf.apps.cli._running_elsewhere", lambda: None)  # where /proc/loadavg is missing: the load
    try:
        monkeypatch.setattr("os.getloadavg", lambda: (0.2, 0.0, 0.0))
        assert threads_for_a_shared_machine() is None and torch.get_num_threads() == before  # idle: unchanged
        monkeypatch.setattr("os.getloadavg", lambda: (2.6, 0.0, 0.0))
        assert threads_for_a_shared_machine() == 1 and torch.get_num_threads() == 1
        monkeypatch.setattr("os.getloadavg", lambda: (9.0, 0.0, 0.0))
        assert threads_for_a_shared_machine() == 1  # never fewer than one
        monkeypatch.setattr("os.getloadavg", lambda: (2.6, 0.0, 0.0))  # a finished job's load, nothing running now
        monkeypatch.setattr("eelbert_hf.apps.cli._running_elsewhere", lambda: 0)
        assert threads_for_a_shared_machine() is None
        monkeypatch.setattr("eelbert_hf.apps.cli._running_elsewhere", lambda: 2)  # two of the three busy cores still run
        assert threads_for_a_shared_machine() == 2 and torch.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        assert threads_for_a_shared_machine() is None  # the user's choice stands
    finally:
        torch.set_num_threads(before)
