"""`eelbert bench`: the pipeline throughput rows against the BERT twin (no timing is asserted)."""

import pytest

from eelbert_hf.bench import SAMPLE, bert_twin_pipeline, pipeline_throughput, read_texts
from eelbert_hf.classify import load_classifier
from eelbert_hf.cli import main


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
    main(["bench", "--batch-sizes", "2", "--repeats", "1"])
    assert "batch    2: EELBERT" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no such file"):
        main(["bench", "--texts", "no-such-texts.txt"])
    with pytest.raises(ValueError, match="repeats"):
        pipeline_throughput(texts, repeats=0)
