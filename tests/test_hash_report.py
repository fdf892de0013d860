"""`eelbert hash-report`: counts that can be checked by hand, and morphology in the neighbours."""

import os

import eelbert_hf
from eelbert_hf import EELBertTokenizer
from eelbert_hf.apps.cli import main
from eelbert_hf.diagnostics.hash_report import hash_report

TEXT = os.path.join(os.path.dirname(eelbert_hf.__file__), "data", "brown_sample.txt")


def test_report_counts_and_neighbours(tokenizer):
    lines = ["the cats ran", "The cats ran!", "filmmakers"]
    report = hash_report(tokenizer, lines, words=["cats", "filmmaker", "notaword"])
    ids = [i for line in lines for i in tokenizer(line, add_special_tokens=False)["input_ids"]]
    assert report["corpus_tokens"] == len(ids) and report["corpus_distinct_tokens"] == len(set(ids))
    assert report["vocabulary_tokens"] == len(tokenizer)
    assert report["colliding_ngram_ids"] == 0  # 31-bit ids: no collision among the vocabulary's n-grams
    assert set(report["neighbours"]) == {"cats", "filmmaker"}  # words outside the vocabulary are skipped
    assert "cat" in [token for token, _ in report["neighbours"]["cats"]]
    assert "filmmakers" in [token for token, _ in report["neighbours"]["filmmaker"]]


def test_whole_token_features_have_no_morphology():
    whole = EELBertTokenizer.from_bundled_vocab(feature_type="whole_token")
    report = hash_report(whole, ["cats"], words=["cats"])
    assert max(score for _, score in report["neighbours"]["cats"]) < 0.5  # unrelated random vectors


def test_cli(capsys):
    main(["hash-report", "--corpus", TEXT, "--max-lines", "200", "--words", "running"])
    out = capsys.readouterr().out
    assert "hash collisions" in out and "running:" in out and "corpus:" in out
