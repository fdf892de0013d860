"""Same-recipe, same-budget comparison of BERT-tiny, EELBERT-tiny, UNO-EELBERT, hash-init and random-hash.

Each variant is pretrained once with MLM on the same text, with the same seed and hyperparameters and a
constant learning rate after warmup; the checkpoints saved after each budget in `steps` (0 = no pretraining)
are then fine-tuned on Rotten Tomatoes with one recipe, once per fine-tuning seed, reporting the best
validation epoch. So one run shows the gap between the variants at several pretraining budgets.

    python benchmarks/reproduce.py --budget smoke               # CI-sized, a few minutes
    python benchmarks/reproduce.py --budget default --jobs 2    # 0 / 300 / 1,000 MLM steps: 1.5 hours on 2 CPU cores
    python benchmarks/reproduce.py --budget long --jobs 2       # 0 / 1,000 / 3,000 steps (docs/results.md): 4.5 hours
    python benchmarks/reproduce.py --budget large               # 0 / 5k / 20k / 60k steps of 128 x 128 tokens: a GPU
    python benchmarks/reproduce.py --budget gpu --pretrain-seconds 240 --jobs 3 \
        --variants uno-eelbert eelbert-tiny bert-tiny          # one GPU shared by 3 runs, 256 x 128 tokens, bf16

`--pretrain-seconds S` ends each variant's pretraining after S seconds of training, at whatever step it reached (saved
as its checkpoint and fine-tuned from); `--set key=value` changes one field of the budget (e.g. `--set batch=8`).

Every finished fine-tuning writes `<output_dir>/<variant>/step<N>-seed<S>.json`; runs whose file exists are
skipped, so an interrupted run continues where it stopped. results.json / results.md / mlm_loss.png
(matplotlib: `pip install -e ".[bench]"`) are rebuilt from all result files in `output_dir`.
"""

import argparse
import ast
import glob
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared", "data")
# name -> (preset, embedding_type, config overrides): BERT-tiny is the "table" variant on the same code path.
VARIANTS = {
    "bert-tiny": ("tiny", "table", ""),
    "eelbert-tiny": ("tiny", "dynamic", ""),
    "uno-eelbert": ("uno", "dynamic", ""),
    "tiny-hash-init": ("tiny", "hash_init", ""),
    "tiny-random-hash": ("tiny", "random_hash", ""),
    "eelbert-tiny-no-gates": ("tiny", "dynamic", "ngram_weight_buckets=0"),  # the plain n-gram mean
    "uno-eelbert-no-gates": ("uno", "dynamic", "ngram_weight_buckets=0"),
}
# Config fields changed for fine-tuning only: gates frozen out of MLM pretraining (absent), then learned in fine-tuning.
FINETUNE_OVERRIDES = {f"{name}-gates-after-mlm": "ngram_weight_buckets=4096" for name in ("eelbert-tiny", "uno-eelbert")}
VARIANTS["eelbert-tiny-gates-after-mlm"] = ("tiny", "dynamic", "ngram_weight_buckets=0")
VARIANTS["uno-eelbert-gates-after-mlm"] = ("uno", "dynamic", "ngram_weight_buckets=0")
MAIN_VARIANTS = ["bert-tiny", "tiny-hash-init", "eelbert-tiny", "tiny-random-hash", "uno-eelbert"]  # slowest first (--jobs)
# budget -> pretraining checkpoints (steps), batch, sequence length; fine-tuning epochs, caps and seeds
BUDGETS = {
    "smoke": dict(steps=[0, 10], batch=8, seq=32, warmup=2, log_every=1, epochs=1, train_cap=256, corpus_cap=2000,
                  seeds=[0]),
    "default": dict(steps=[0, 300, 1000], batch=32, seq=128, warmup=50, log_every=25, epochs=6, train_cap=None,
                    corpus_cap=None, seeds=[0, 1, 2]),
    "long": dict(steps=[0, 1000, 3000], batch=32, seq=128, warmup=50, log_every=25, epochs=6, train_cap=None,
                 corpus_cap=None, seeds=[0, 1, 2]),
    "large": dict(steps=[0, 5000, 20000, 60000], batch=128, seq=128, warmup=500, log_every=100, epochs=4,
                  train_cap=None, corpus_cap=None, seeds=[0, 1, 2]),
    # one GPU for a few minutes (with --pretrain-seconds): the paper's 256 x 128 batches in bf16, fine-tuned at batch
    # 32; 200k steps is a cap that the time limit ends first
    "gpu": dict(steps=[0, 200_000], batch=256, seq=128, warmup=500, log_every=100, epochs=4, train_cap=None,
                corpus_cap=None, seeds=[0], finetune_batch=32, precision="bf16", workers=2),
}


def save_at(steps, wall: dict, since: float, seconds: float | None = None):
    """Save a checkpoint at each of `steps`, and note the MLM seconds up to it in `wall` (`since`: the seconds
    spent before this run, None if unknown). With `seconds`, training also ends (and saves) once it has run that
    long, counted from its first step."""
    from transformers import TrainerCallback

    class SaveAt(TrainerCallback):
        start = None

        def on_step_begin(self, args, state, control, **kwargs):
            if self.start is None:  # from the first step: model building and data packing do not count
                self.start = time.time()

        def on_step_end(self, args, state, control, **kwargs):
            elapsed = time.time() - self.start
            control.should_save = state.global_step in steps
            if seconds is not None and elapsed >= seconds:
                control.should_save = control.should_training_stop = True
            if control.should_save and since is not None:  # None: resumed from a run that kept no times
                wall[state.global_step] = round(since + elapsed, 1)

    return SaveAt()


def pretrain_variant(name, budget, args) -> tuple[str, list, dict]:
    """MLM pretraining to the largest budget, saving a full checkpoint (weights, optimizer, scheduler, RNG) at each
    budget. Returns (folder, loss curve, MLM seconds at each checkpoint). Runs only what is missing: a later call
    with larger budgets resumes from the largest checkpoint below them, and since the learning rate is constant
    after a fixed warmup, checkpoint-N is the same whichever run wrote it."""
    from eelbert_hf.apps.arguments import parse_training_args
    from eelbert_hf.training import pretrain

    preset, embedding_type, overrides = VARIANTS[name]
    out, steps = os.path.join(args.output_dir, name, "mlm"), [s for s in budget["steps"] if s > 0]
    curve_file, wall_file = os.path.join(out, "loss_curve.json"), os.path.join(out, "wall_s.json")
    timed_file = os.path.join(out, "time_limited.json")  # the step a --pretrain-seconds run reached
    wall = {int(k): v for k, v in json.load(open(wall_file, encoding="utf-8")).items()} if os.path.exists(wall_file) else {}
    done = {int(d.split("-")[1]) for d in (os.listdir(out) if os.path.isdir(out) else [])  # complete checkpoints only
            if d.startswith("checkpoint-") and os.path.exists(os.path.join(out, d, "trainer_state.json"))}
    seconds = getattr(args, "pretrain_seconds", None)
    todo = [] if seconds and os.path.exists(timed_file) else sorted(set(steps) - done)
    if todo:
        resume = 0 if seconds else max([d for d in done if d < todo[-1]], default=0)
        resume_args = ["--resume_from_checkpoint", os.path.join(out, f"checkpoint-{resume}")] if resume else []
        caps = ["--max_train_samples", str(budget["corpus_cap"])] if budget["corpus_cap"] else []
        precision = [f"--{budget['precision']}", "true"] if budget.get("precision") else []
        trainer = pretrain(*parse_training_args("pretrain", [
            "--preset", preset, "--embedding_type", embedding_type, "--config_overrides", overrides,
            "--train_files", *args.corpus, "--output_dir", out, "--max_steps", str(todo[-1]), *resume_args,
            "--max_seq_length", str(budget["seq"]), "--learning_rate", str(args.mlm_lr), "--lr_scheduler_type",
            "constant_with_warmup", "--warmup_steps", str(budget["warmup"]), "--eval_strategy", "no",
            "--save_strategy", "no", "--logging_steps", str(budget["log_every"]), "--report_to", "none",
            "--disable_tqdm", "true", "--seed", str(args.pretrain_seed), "--per_device_train_batch_size",
            str(budget["batch"]), "--dataloader_num_workers", str(budget.get("workers", 0)), *precision, *caps]),
            callbacks=[save_at(set(todo), wall, wall.get(resume) if resume else 0.0, seconds)])
        curve = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]  # resumed: whole run
        with open(curve_file, "w", encoding="utf-8") as f:
            json.dump(curve, f)
        with open(wall_file, "w", encoding="utf-8") as f:
            json.dump(wall, f)
        if seconds:
            tokens_per_s = [e["tokens_per_s"] for e in trainer.state.log_history if "tokens_per_s" in e]
            with open(timed_file, "w", encoding="utf-8") as f:
                json.dump({"seconds": seconds, "step": trainer.state.global_step, "tokens_per_s": tokens_per_s}, f)
    curve = json.load(open(curve_file, encoding="utf-8")) if os.path.exists(curve_file) else []
    return out, curve, wall


def reached_step(name, args) -> int | None:
    """The step a `--pretrain-seconds` pretraining of `name` reached (None if it has not run)."""
    path = os.path.join(args.output_dir, name, "mlm", "time_limited.json")
    return json.load(open(path, encoding="utf-8"))["step"] if os.path.exists(path) else None


def finetune_variant(name, step, seed, mlm_dir, curve, budget, args) -> dict:
    from eelbert_hf.apps.arguments import parse_training_args
    from eelbert_hf.training import finetune

    preset, embedding_type, overrides = VARIANTS[name]
    out = os.path.join(args.output_dir, name, f"step{step}-seed{seed}")
    start = time.time()
    if step:
        model_args = ["--model_name_or_path", os.path.join(mlm_dir, f"checkpoint-{step}"), "--config_overrides",
                      FINETUNE_OVERRIDES.get(name, "")]
    else:
        model_args = ["--preset", preset, "--embedding_type", embedding_type, "--config_overrides",
                      FINETUNE_OVERRIDES.get(name, overrides)]
    caps = ["--max_train_samples", str(budget["train_cap"])] if budget["train_cap"] else []
    classifier, _ = finetune(*parse_training_args("finetune", [
        *model_args, "--train_files", os.path.join(args.sentiment, "train.jsonl"), "--validation_files",
        os.path.join(args.sentiment, "validation.jsonl"), "--output_dir", out, "--num_train_epochs",
        str(budget["epochs"]), "--learning_rate", str(args.finetune_lr), "--eval_strategy", "epoch",
        "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true", "--seed", str(seed),
        "--train_sampling_strategy", "group_by_length",  # batches of similar lengths: less padding, about half the time
        "--per_device_train_batch_size", str(budget.get("finetune_batch", budget["batch"])),
        "--dataloader_num_workers", "0", *caps]))
    by_epoch = {e["epoch"]: e["eval_accuracy"] for e in classifier.state.log_history if "eval_accuracy" in e}
    accuracies = list(by_epoch.values())  # one per epoch (the final evaluation repeats the last)
    losses = [loss for s, loss in curve if s <= step]
    result = dict(variant=name, step=step, seed=seed, best_accuracy=max(accuracies), accuracies=accuracies,
                  mlm_loss=statistics.mean(losses[-5:]) if losses else None, finetune_wall_s=round(time.time() - start, 1),
                  size_bytes=os.path.getsize(os.path.join(out, "model.safetensors")))
    for f in glob.glob(os.path.join(out, "*.safetensors")):
        os.remove(f)  # the result is what we keep; the classifier can be rebuilt from the command
    print(json.dumps(result), flush=True)
    return result


def run_variant(name, budget, args):
    steps = budget["steps"]
    if args.pretrain_seconds:  # the pretrained cell is the step the time limit reached, known once pretrained
        reached = reached_step(name, args)
        steps = [s for s in steps if s == 0] + [reached if reached is not None else max(steps)]
    todo = [(step, seed) for step in steps for seed in args.seeds or budget["seeds"]
            if not os.path.exists(os.path.join(args.output_dir, name, f"step{step}-seed{seed}.json"))]
    if not todo:
        return
    mlm_dir, curve, wall = pretrain_variant(name, budget, args) if any(s for s, _ in todo) else (None, [], {})
    if args.pretrain_seconds and any(s for s, _ in todo):
        todo = [(reached_step(name, args) if step else 0, seed) for step, seed in todo]
    for step, seed in todo:
        result = finetune_variant(name, step, seed, mlm_dir, curve, budget, args)
        result["pretrain_wall_s"] = wall.get(step, 0.0 if step == 0 else None)  # MLM seconds up to this checkpoint
        with open(os.path.join(args.output_dir, name, f"step{step}-seed{seed}.json"), "w", encoding="utf-8") as f:
            json.dump(result, f)


def collect(output_dir):
    results = []
    for path in sorted(glob.glob(os.path.join(output_dir, "*", "step*-seed*.json"))):
        results.append(json.load(open(path, encoding="utf-8")))
    curves = {}
    for path in glob.glob(os.path.join(output_dir, "*", "mlm", "loss_curve.json")):
        curves[os.path.basename(os.path.dirname(os.path.dirname(path)))] = json.load(open(path, encoding="utf-8"))
    return results, curves


def summarise(results) -> str:
    """One row per variant, one column per pretraining budget: mean ± sd over fine-tuning seeds."""
    steps = sorted({r["step"] for r in results})
    cells, names = {}, []
    for r in results:
        cells.setdefault((r["variant"], r["step"]), []).append(r["best_accuracy"])
        if r["variant"] not in names:
            names.append(r["variant"])
    names.sort(key=lambda n: list(VARIANTS).index(n))
    base = {s: statistics.mean(cells[("bert-tiny", s)]) for s in steps if ("bert-tiny", s) in cells}
    rows = ["| variant | size (fp32) | " + " | ".join(f"{s:,} MLM steps" for s in steps) + " |",
            "|---|---|" + "---|" * len(steps)]
    sizes = {r["variant"]: r["size_bytes"] for r in results}
    for name in names:
        row = [f"| {name} | {sizes[name] / 1e6:.2f} MB"]
        for s in steps:
            accs = cells.get((name, s))
            if not accs:
                row.append("–")
                continue
            mean = statistics.mean(accs)
            spread = f" ± {100 * statistics.stdev(accs):.1f}" if len(accs) > 1 else ""
            relative = f" ({100 * (mean / base[s] - 1):+.1f} %)" if s in base and name != "bert-tiny" else ""
            row.append(f"{100 * mean:.1f}{spread}{relative}")
        rows.append(" | ".join(row) + " |")
    mlm = {(r["variant"], r["step"]): r["mlm_loss"] for r in results if r.get("mlm_loss") is not None}
    if mlm:
        rows += ["", "MLM training loss (mean of the last 5 logged values before the checkpoint):", "",
                 "| variant | " + " | ".join(f"{s:,}" for s in steps if s) + " |", "|---|" + "---|" * (len(steps) - 1)]
        for name in names:
            rows.append(f"| {name} | " + " | ".join(f"{mlm[(name, s)]:.3f}" if (name, s) in mlm else "–"
                                                     for s in steps if s) + " |")
    return "\n".join(rows)


def summarise_timed(results, timed, seconds) -> str:
    """One row per variant for a `--pretrain-seconds` run: accuracy without and after the pretraining, the steps and
    MLM loss it reached, its median throughput."""
    rows = [f"| variant | size (fp32) | no pretraining | after {seconds:.0f} s of MLM | MLM steps | MLM loss | "
            "MLM tokens/s (median) |", "|---|---|---|---|---|---|---|"]
    names = sorted({r["variant"] for r in results}, key=lambda n: list(VARIANTS).index(n))
    for name in names:
        mine = [r for r in results if r["variant"] == name]
        cell = lambda rs: f"{100 * statistics.mean(r['best_accuracy'] for r in rs):.1f}" if rs else "–"  # noqa: E731
        pretrained = [r for r in mine if r["step"] > 0]
        info = timed.get(name, {})
        loss = pretrained[0]["mlm_loss"] if pretrained and pretrained[0]["mlm_loss"] is not None else None
        speed = statistics.median(info["tokens_per_s"]) if info.get("tokens_per_s") else None
        rows.append(f"| {name} | {mine[0]['size_bytes'] / 1e6:.2f} MB | {cell([r for r in mine if r['step'] == 0])} | "
                    f"{cell(pretrained)} | {info.get('step', '–'):,} | {'–' if loss is None else f'{loss:.3f}'} | "
                    f"{'–' if speed is None else f'{speed:,.0f}'} |")
    return "\n".join(rows)


def collect_timed(output_dir) -> dict:
    timed = {}
    for path in glob.glob(os.path.join(output_dir, "*", "mlm", "time_limited.json")):
        timed[os.path.basename(os.path.dirname(os.path.dirname(path)))] = json.load(open(path, encoding="utf-8"))
    return timed


def plot(curves, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print('matplotlib is not installed: no loss plot (pip install -e ".[bench]")')
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, curve in sorted(curves.items()):
        if curve:
            steps, losses = zip(*curve)
            ax.plot(steps, losses, label=name, linewidth=1)
    ax.set_xlabel("MLM step (batch 32 x 128 tokens)")
    ax.set_ylabel("MLM training loss")
    ax.set_ylim(top=8)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=BUDGETS, default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="fine-tuning seeds (default: the budget's)")
    parser.add_argument("--steps", type=int, nargs="+", default=None,
                        help="pretraining budgets to fine-tune from, 0 = none (default: the budget's)")
    parser.add_argument("--pretrain-seed", type=int, default=0)
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=MAIN_VARIANTS)
    parser.add_argument("--jobs", type=int, default=1, help="variants run in parallel, one thread each")
    parser.add_argument("--corpus", nargs="+", default=[os.path.join(SHARED, "corpus", "brown.txt"),
                                                        os.path.join(SHARED, "corpus", "nlp-corpus.txt")])
    parser.add_argument("--sentiment", default=os.path.join(SHARED, "sentiment", "rotten_tomatoes"))
    parser.add_argument("--mlm-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument("--output_dir", default="out/reproduce")
    parser.add_argument("--pretrain-seconds", type=float, default=None,
                        help="end each pretraining after this many seconds of training (at the step it reached)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="change one budget field, e.g. --set batch=8 --set precision=None")
    parser.add_argument("--no-report", action="store_true", help="only run, leave the report to the caller")
    args = parser.parse_args(argv)
    budget = dict(BUDGETS[args.budget], **({"steps": sorted(set(args.steps))} if args.steps else {}))
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in budget and key not in ("finetune_batch", "precision", "workers"):
            raise SystemExit(f"--set {item}: the budget has no field {key!r} (fields: {', '.join(budget)})")
        budget[key] = ast.literal_eval(value)
    os.makedirs(args.output_dir, exist_ok=True)
    if args.jobs > 1 and len(args.variants) > 1:  # one process per variant, `jobs` at a time, one thread each
        child = ["--budget", args.budget, "--pretrain-seed", str(args.pretrain_seed), "--corpus", *args.corpus,
                 "--sentiment", args.sentiment, "--mlm-lr", str(args.mlm_lr), "--finetune-lr", str(args.finetune_lr),
                 "--output_dir", args.output_dir, *(["--seeds", *map(str, args.seeds)] if args.seeds else []),
                 *(["--steps", *map(str, args.steps)] if args.steps else []),
                 *(["--pretrain-seconds", str(args.pretrain_seconds)] if args.pretrain_seconds else []),
                 *[f"--set={item}" for item in args.set]]
        running = []
        for name in args.variants:
            while sum(p.poll() is None for p in running) >= args.jobs:
                time.sleep(1)
            running.append(subprocess.Popen([sys.executable, __file__, *child, "--no-report", "--variants", name],
                                            env={**os.environ, "OMP_NUM_THREADS": "1"}))
        if any([p.wait() for p in running]):
            raise SystemExit("a variant failed (its output is above)")
    else:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        for name in args.variants:
            os.makedirs(os.path.join(args.output_dir, name), exist_ok=True)
            run_variant(name, budget, args)
    if args.no_report:
        return None
    results, curves = collect(args.output_dir)
    timed = collect_timed(args.output_dir) if args.pretrain_seconds else {}
    table = summarise_timed(results, timed, args.pretrain_seconds) if args.pretrain_seconds else summarise(results)
    with open(os.path.join(args.output_dir, "results.json"), "w", encoding="utf-8") as f:
        json.dump({"budget": args.budget, **budget, "pretrain_seconds": args.pretrain_seconds,
                   "command": "python benchmarks/reproduce.py " + " ".join(argv), "results": results,
                   "pretraining": timed, "mlm_curves": curves}, f, indent=1)
    with open(os.path.join(args.output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    plot(curves, os.path.join(args.output_dir, "mlm_loss.png"))
    print(table)
    return results


if __name__ == "__main__":
    main()
