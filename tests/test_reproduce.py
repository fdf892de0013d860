"""The reproduction script's smoke budget runs end to end on the shared data and reports every variant."""

import importlib.util
import json
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(REPO, "..", "shared", "data")


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="needs ../shared/data beside the checkout (as in CI)")
def test_reproduce_smoke_budget(tmp_path):
    spec = importlib.util.spec_from_file_location("reproduce", os.path.join(REPO, "benchmarks", "reproduce.py"))
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    reproduce.main(["--budget", "smoke", "--variants", "bert-tiny", "uno-eelbert", "--output_dir", str(tmp_path),
                    "--corpus", os.path.join(SHARED, "corpus", "brown.txt")])
    results = json.load(open(tmp_path / "results.json", encoding="utf-8"))["results"]
    assert {(r["variant"], r["step"]) for r in results} == {
        ("bert-tiny", 0), ("bert-tiny", 10), ("uno-eelbert", 0), ("uno-eelbert", 10)}
    for r in results:
        assert 0.0 < r["best_accuracy"] < 1.0 and r["finetune_wall_s"] > 0
        assert (r["mlm_loss"] is None) == (r["step"] == 0)  # pretrained cells report the MLM loss they reached
    sizes = {r["variant"]: r["size_bytes"] for r in results}
    assert sizes["uno-eelbert"] * 9 < sizes["bert-tiny"]
    assert "| uno-eelbert | 1.14 MB |" in (tmp_path / "results.md").read_text()
    # every finished cell has its own result file: a second run finds nothing left to do and trains nothing
    before = sorted(os.listdir(tmp_path / "uno-eelbert"))
    again = reproduce.main(["--budget", "smoke", "--variants", "bert-tiny", "uno-eelbert", "--output_dir", str(tmp_path)])
    assert sorted(os.listdir(tmp_path / "uno-eelbert")) == before
    assert sorted(map(json.dumps, again)) == sorted(map(json.dumps, results))
