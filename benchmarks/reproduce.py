"""Same-recipe, same-budget comparison of BERT-tiny, EELBERT-tiny, UNO-EELBERT, hash-init and random-hash.

Every variant is pretrained with MLM on the same text with the same token budget, seed and hyperparameters,
then fine-tuned on Rotten Tomatoes with the same recipe (best validation epoch is reported); the same
fine-tuning from random initialisation ("no pretraining") shows whether the pretraining budget helped.

    python benchmarks/reproduce.py --budget smoke      # CI-sized, about a minute
    python benchmarks/reproduce.py --budget quick      # 300 MLM steps, 2 fine-tuning epochs
    python benchmarks/reproduce.py --budget default    # about an hour on 2 CPU cores
    python benchmarks/reproduce.py --budget large      # for a GPU

Writes results.json, results.md and (if matplotlib is installed) mlm_loss.png to --output_dir.
"""

import argparse
import json
import os
import statistics
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
# budget -> pretraining steps, batch, sequence length; fine-tuning epochs and example caps (None = all)
BUDGETS = {
    "smoke": dict(steps=10, batch=8, seq=32, epochs=1, train_cap=256, corpus_cap=2000),
    "quick": dict(steps=300, batch=32, seq=128, epochs=2, train_cap=None, corpus_cap=None),
    "default": dict(steps=1000, batch=32, seq=128, epochs=3, train_cap=None, corpus_cap=None),
    "large": dict(steps=20000, batch=128, seq=128, epochs=3, train_cap=None, corpus_cap=None),
}


def run_variant(name, budget, seed, args, pretrained: bool):
    from eelbert_hf.cli import parse_training_args
    from eelbert_hf.training import finetune, pretrain

    preset, embedding_type, overrides = VARIANTS[name]
    out = os.path.join(args.output_dir, f"{name}-seed{seed}")
    common = ["--report_to", "none", "--disable_tqdm", "true", "--seed", str(seed), "--save_strategy", "no",
              "--per_device_train_batch_size", str(budget["batch"]), "--dataloader_num_workers", "0"]
    result, start, mlm_losses = {"variant": name, "seed": seed, "pretrained": pretrained}, time.time(), []
    model_args = ["--preset", preset, "--embedding_type", embedding_type, "--config_overrides", overrides]
    if pretrained:
        caps = ["--max_train_samples", str(budget["corpus_cap"])] if budget["corpus_cap"] else []
        trainer = pretrain(*parse_training_args("pretrain", [
            *model_args, "--train_files", *args.corpus, "--output_dir", f"{out}/mlm", "--max_steps",
            str(budget["steps"]), "--max_seq_length", str(budget["seq"]), "--learning_rate", str(args.mlm_lr),
            "--eval_strategy", "no", "--logging_steps", str(max(1, budget["steps"] // 50)), *caps, *common]))
        mlm_losses = [(e["step"], e["loss"]) for e in trainer.state.log_history if "loss" in e]
        result["mlm_loss"] = statistics.mean(loss for _, loss in mlm_losses[-5:]) if mlm_losses else None
        model_args = ["--model_name_or_path", f"{out}/mlm"]
    caps = ["--max_train_samples", str(budget["train_cap"])] if budget["train_cap"] else []
    classifier, _ = finetune(*parse_training_args("finetune", [
        *model_args, "--train_files", os.path.join(args.sentiment, "train.jsonl"), "--validation_files",
        os.path.join(args.sentiment, "validation.jsonl"), "--output_dir", f"{out}/rt", "--num_train_epochs",
        str(budget["epochs"]), "--learning_rate", str(args.finetune_lr), "--eval_strategy", "epoch", *caps, *common]))
    accuracies = [e["eval_accuracy"] for e in classifier.state.log_history if "eval_accuracy" in e]
    result.update(best_accuracy=max(accuracies), accuracies=accuracies, wall_s=round(time.time() - start, 1),
                  mlm_curve=mlm_losses)
    classifier.save_model(f"{out}/rt")
    result["size_bytes"] = os.path.getsize(os.path.join(out, "rt", "model.safetensors"))
    print(json.dumps({k: v for k, v in result.items() if k != "mlm_curve"}), flush=True)
    return result


def summarise(results, args) -> str:
    rows = ["| variant | pretrained | RT val accuracy (mean ± sd) | vs BERT-tiny | final MLM loss | size | wall |",
            "|---|---|---|---|---|---|---|"]
    groups = {}
    for r in results:
        groups.setdefault((r["variant"], r["pretrained"]), []).append(r)
    base = groups.get(("bert-tiny", True)) or groups.get(("bert-tiny", False))
    base_acc = statistics.mean(r["best_accuracy"] for r in base) if base else None
    for (name, pretrained), rs in groups.items():
        accs = [r["best_accuracy"] for r in rs]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        mean = statistics.mean(accs)
        relative = f"{100 * (mean / base_acc - 1):+.1f} %" if base_acc else "-"
        mlm = [r["mlm_loss"] for r in rs if r.get("mlm_loss") is not None]
        mlm_text = f"{statistics.mean(mlm):.3f}" if mlm else "-"
        rows.append(f"| {name} | {'yes' if pretrained else 'no'} | {100 * mean:.1f} ± {100 * sd:.1f} (n={len(accs)}) "
                    f"| {relative} | {mlm_text} | {rs[0]['size_bytes'] / 1e6:.2f} MB "
                    f"| {statistics.mean(r['wall_s'] for r in rs):.0f} s |")
    return "\n".join(rows)


def plot(results, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no loss plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        if r["mlm_curve"]:
            steps, losses = zip(*r["mlm_curve"])
            ax.plot(steps, losses, label=f"{r['variant']} (seed {r['seed']})")
    ax.set_xlabel("MLM step")
    ax.set_ylabel("training loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", choices=BUDGETS, default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--no-scratch", action="store_true", help="skip the fine-tune-from-scratch baselines")
    parser.add_argument("--scratch-only", action="store_true", help="only fine-tune from scratch (no pretraining)")
    parser.add_argument("--corpus", nargs="+", default=[os.path.join(SHARED, "corpus", "brown.txt"),
                                                        os.path.join(SHARED, "corpus", "nlp-corpus.txt")])
    parser.add_argument("--sentiment", default=os.path.join(SHARED, "sentiment", "rotten_tomatoes"))
    parser.add_argument("--mlm-lr", type=float, default=1e-3)
    parser.add_argument("--finetune-lr", type=float, default=5e-4)
    parser.add_argument("--output_dir", default="out/reproduce")
    args = parser.parse_args(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    budget, results = BUDGETS[args.budget], []
    os.makedirs(args.output_dir, exist_ok=True)
    runs = [(seed, name, pretrained) for seed in args.seeds for name in args.variants for pretrained in (True, False)
            if (not args.scratch_only if pretrained else  # from scratch, hash_init is the plain table
                not args.no_scratch and VARIANTS[name][1] != "hash_init")]
    for seed, name, pretrained in runs:
        results.append(run_variant(name, budget, seed, args, pretrained))
        with open(os.path.join(args.output_dir, "results.json"), "w", encoding="utf-8") as f:  # after every run
            json.dump({"budget": args.budget, **budget, "command": " ".join(sys.argv), "results": results}, f, indent=1)
    table = summarise(results, args)
    with open(os.path.join(args.output_dir, "results.md"), "w", encoding="utf-8") as f:
        f.write(table + "\n")
    plot(results, os.path.join(args.output_dir, "mlm_loss.png"))
    print(table)
    return results


if __name__ == "__main__":
    main()
