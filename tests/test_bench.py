"""`eelbert bench`: the pipeline throughput rows against the BERT twin (no timing is asserted)."""

import pytest

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


def test_rows_and_command(capsys):
    texts = read_texts(SAMPLE)[:8]
    rows = pipeline_throughput(texts, batch_sizes=(1, 4), repeats=1)
    assert [r["batch_size"] for r in rows] == [1, 4]
    for row in rows:
        assert row["ratio"] == pytest.approx(row["eelbert_texts_per_s"] / row["bert_texts_per_s"])
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
    rows = all_rows(texts, batch_sizes=(3,), repeats=1, parts=("feature-extraction", "classify-file", "onnx"))
    assert [r["what"] for r in rows] == ["pipeline feature-extraction", "classify --file, process start to last label",
                                         "onnxruntime int8"]
    for row in rows:
        assert row["eelbert_texts_per_s"] > 0 and row["bert_texts_per_s"] > 0
        assert row["ratio"] == pytest.approx(row["eelbert_texts_per_s"] / row["bert_texts_per_s"])
