"""The reproduction script's smoke budget runs end to end on the shared data and reports every variant."""

import importlib.util
import json
import os

import pytest
import torch

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
        assert (r["pretrain_wall_s"] > 0) == (r["step"] > 0)  # and the MLM seconds it took to reach it
    sizes = {r["variant"]: r["size_bytes"] for r in results}
    assert sizes["uno-eelbert"] * 9 < sizes["bert-tiny"]
    assert "| uno-eelbert | 1.14 MB |" in (tmp_path / "results.md").read_text()
    # every finished cell has its own result file: a second run finds nothing left to do and trains nothing
    before = sorted(os.listdir(tmp_path / "uno-eelbert"))
    again = reproduce.main(["--budget", "smoke", "--variants", "bert-tiny", "uno-eelbert", "--output_dir", str(tmp_path)])
    assert sorted(os.listdir(tmp_path / "uno-eelbert")) == before
    assert sorted(map(json.dumps, again)) == sorted(map(json.dumps, results))


@pytest.mark.skipif(not os.path.isdir(SHARED), reason="needs ../shared/data beside the checkout (as in CI)")
def test_pretraining_budgets_resume_to_the_same_checkpoint(tmp_path):
    """A 10-step budget reached in one run or by resuming a 5-step run's checkpoint gives the same weights."""
    from safetensors.torch import load_file

    spec = importlib.util.spec_from_file_location("reproduce", os.path.join(REPO, "benchmarks", "reproduce.py"))
    reproduce = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reproduce)
    corpus = os.path.join(SHARED, "corpus", "brown.txt")
    args = lambda out: reproduce.argparse.Namespace(  # noqa: E731
        output_dir=str(out), corpus=[corpus], mlm_lr=1e-3, pretrain_seed=0)
    budget = dict(reproduce.BUDGETS["smoke"], steps=[10])
    straight, curve, _ = reproduce.pretrain_variant("uno-eelbert", budget, args(tmp_path / "a"))
    _, _, first_wall = reproduce.pretrain_variant("uno-eelbert", dict(budget, steps=[5]), args(tmp_path / "b"))
    resumed, resumed_curve, wall = reproduce.pretrain_variant("uno-eelbert", budget, args(tmp_path / "b"))
    a = load_file(os.path.join(straight, "checkpoint-10", "model.safetensors"))
    b = load_file(os.path.join(resumed, "checkpoint-10", "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert [step for step, _ in resumed_curve] == [step for step, _ in curve] == list(range(1, 11))
    assert resumed_curve == curve
    assert wall[5] == first_wall[5] and wall[10] > wall[5] > 0  # seconds add up across the resumed runs
