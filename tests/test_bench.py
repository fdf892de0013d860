"""`eelbert bench`: the pipeline throughput rows against the BERT twin. No real timing is asserted: the rows' arithmetic
is checked against a stand-in clock whose run durations are known."""

from types import SimpleNamespace

import pytest

from eelbert_hf.diagnostics import bench
from eelbert_hf.diagnostics.bench import SAMPLE, all_rows, bert_twin_pipeline, pipeline_throughput, read_texts
from eelbert_hf.loading import load_classifier
from eelbert_hf.apps.cli import main


def test_bert_twin_has_the_classifiers_dimensions_and_tokens():
    classifier = load_classifier()
    config = classifier.model.config
    twin_pipeline = bert_twin_pipeline(config)
    twin = twin_pipeline.model
    for text in read_texts(SAMPLE)[:50]:  # the same WordPiece ids, so both models see the same shapes
        assert twin_pipeline.tokenizer(text)["input_ids"] == classifier.tokenizer(text)["input_ids"]
    for field in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                  "num_labels"):
        assert getattr(twin.config, field) == getattr(config, field), field
    assert type(twin).__name__ == "BertForSequenceClassification"


class SteppedClock:
    """Stands in for `time.perf_counter` in bench: the timed runs alternate EELBERT, BERT (the clock is read before
    and after each), and the i-th run of a side lasts durations[side][i % len(durations[side])] seconds."""

    def __init__(self, eelbert, bert):
        self.durations, self.reads, self.now = (eelbert, bert), 0, 0.0

    def perf_counter(self):
        if self.reads % 2:  # the end of a run
            run = self.reads // 2
            side = self.durations[run % 2]
            self.now += side[run // 2 % len(side)]
        self.reads += 1
        return self.now


def test_rows_and_command(capsys, monkeypatch):
    texts = read_texts(SAMPLE)[:8]
    # three repeats: EELBERT 1, 4, 2 s (median 2 s, mean 2.33 s), BERT 3, 9, 4 s (median 4 s)
    clock = SteppedClock(eelbert=[1.0, 4.0, 2.0], bert=[3.0, 9.0, 4.0])
    monkeypatch.setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
    rows = pipeline_throughput(texts, batch_sizes=(1, 4), repeats=3)
    assert clock.reads == 2 * 2 * 3 * 2  # batch sizes x repeats x sides x (start, end)
    assert rows == [{"what": "pipeline text-classification", "batch_size": b, "eelbert_texts_per_s": 8 / 2.0,
                     "bert_texts_per_s": 8 / 4.0, "ratio": 2.0} for b in (1, 4)]
    monkeypatch.undo()
    main(["bench", "--batch-sizes", "2", "--repeats", "1", "--parts", "text-classification", "--texts",
          str(_texts_file(texts))])
    assert "pipeline text-classification" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no such file"):
        main(["bench", "--texts", "no-such-texts.txt"])
    with pytest.raises(ValueError, match="repeats"):
        pipeline_throughput(texts, repeats=0)
    with pytest.raises(ValueError, match="unknown bench parts"):
        all_rows(texts, parts=["gpu"])


def _texts_file(texts):
    import tempfile

    path = tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8").name
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")
    return path


def test_every_path_users_take_has_a_row():
    """feature-extraction, classify --file in fresh processes (which must print one label per text) and int8 ONNX
    under onnxruntime, each against its BERT twin."""
    texts = read_texts(SAMPLE)[:6]
    clock = SteppedClock(eelbert=[2.0], bert=[3.0])  # every EELBERT run 2 s, every BERT run 3 s
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bench, "time", SimpleNamespace(perf_counter=clock.perf_counter))
        rows = all_rows(texts, batch_sizes=(3,), repeats=1, parts=("feature-extraction", "classify-file", "onnx"))
    assert [r["what"] for r in rows] == ["pipeline feature-extraction", "classify --file, process start to last label",
                                         "onnxruntime int8, single graph", "onnxruntime int8, cached token embeddings",
                                         "onnxruntime int8, cached token embeddings, BERT also through its Rust "
                                         "tokenizer directly"]
    assert "note" not in rows[2] and "tokens" in rows[3]["note"] and "tokens" in rows[4]["note"]  # the cache's size, as the command prints it
    assert clock.reads == len(rows) * 2 * 2  # each row timed one run of each side, start and end
    for row in rows:
        assert (row["eelbert_texts_per_s"], row["bert_texts_per_s"], row["ratio"]) == (6 / 2.0, 6 / 3.0, 1.5)
