"""Task distillation on Rotten Tomatoes: teachers, one transfer set, students distilled from it (docs/distill.md).

    python benchmarks/distill_rt.py --output_dir out/distill                            # the published run
    python benchmarks/distill_rt.py --output_dir out/distill --students uno --seeds 0   # the bundled classifier
    python benchmarks/distill_rt.py --output_dir out/distill --students uno --copies 5 --epochs 3   # an ablation

1. Teachers, trained on the RT training split: `ngram-lr` (logistic regression on TF-IDF word 1-3-grams and
   character 2-5-grams), `bert-tiny` (the learned-table BERT-tiny, `eelbert finetune`, best of 6 epochs) and
   `ensemble` (the mean of their log-probabilities). Each is scored on the validation split.
2. The transfer set: the training split plus `--copies` augmented copies of each review (`eelbert distill
   --augment mask,ngram`), labelled once by the chosen teacher: `transfer.jsonl` (text, label or -100,
   teacher_logits).
3. Students (`uno`, `tiny`, `bert-tiny`) distilled from that file with `eelbert distill --teacher_column
   teacher_logits`, one process per run, `--jobs` at a time, one thread each; the best validation epoch is
   kept (as in docs/results.md). `results.json` holds every run; the table is printed at the end. With
   `--pairs`, every two seeds of one recipe also answer together (mean log-probabilities; twice the bytes).

All choices were made on the validation split; the test split is not used.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

RT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "sentiment",
                  "rotten_tomatoes")
STUDENTS = {  # name -> eelbert flags
    "uno": ["--preset", "uno"],
    "tiny": ["--preset", "tiny"],
    "bert-tiny": ["--preset", "tiny", "--embedding_type", "table"],
}


def read_jsonl(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ngram_lr_teacher(texts, labels):
    """TF-IDF word 1-3-grams + character 2-5-grams, logistic regression (C=10, chosen on validation)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    features = make_union(TfidfVectorizer(ngram_range=(1, 3), sublinear_tf=True),
                          TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, min_df=2))
    pipe = make_pipeline(features, LogisticRegression(C=10, max_iter=3000)).fit(texts, labels)

    def run(batch, pairs=None):
        return pipe.predict_log_proba(batch)

    run.teacher_id = "ngram-lr C=10"
    return run


def run_cli(args, log, threads=1):
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    with open(log, "w", encoding="utf-8") as f:
        return subprocess.Popen([sys.executable, "-m", "eelbert_hf", *args], stdout=f, stderr=subprocess.STDOUT,
                                env=env)


def best_accuracy(folder):
    with open(os.path.join(folder, "trainer_state.json"), encoding="utf-8") as f:
        history = json.load(f)["log_history"]
    return max(h["eval_accuracy"] for h in history if "eval_accuracy" in h)


def common_flags(rt, epochs, seed, group_by_length=True):
    return ["--validation_files", os.path.join(rt, "validation.jsonl"), "--num_train_epochs", str(epochs),
            "--learning_rate", "5e-4", "--lr_scheduler_type", "linear", "--eval_strategy", "epoch",
            "--save_strategy", "epoch", "--load_best_model_at_end", "true", "--metric_for_best_model", "accuracy",
            "--save_total_limit", "1", "--seed", str(seed), "--disable_tqdm", "true",
            *(["--train_sampling_strategy", "group_by_length", "--logging_steps", "200"] if group_by_length else [])]


def teachers(rt, out, which):
    """{name: callable} for the teachers `which` needs, and their validation accuracies."""
    import torch

    from eelbert_hf.distillation import model_teacher

    train, valid = read_jsonl(os.path.join(rt, "train.jsonl")), read_jsonl(os.path.join(rt, "validation.jsonl"))
    texts, gold = [r["text"] for r in valid], np.array([r["label"] for r in valid])
    found, accuracy = {}, {}
    found["ngram-lr"] = ngram_lr_teacher([r["text"] for r in train], [r["label"] for r in train])
    if which in ("bert-tiny", "ensemble"):
        folder = os.path.join(out, "teacher-bert-tiny")
        if not os.path.exists(os.path.join(folder, "metrics.json")):
            started = time.time()
            run_cli(["finetune", *STUDENTS["bert-tiny"], "--train_files", os.path.join(rt, "train.jsonl"),
                     "--output_dir", folder, *common_flags(rt, 6, 0, group_by_length=False)], folder + ".log").wait()
            print(f"teacher bert-tiny trained in {time.time() - started:.0f} s")
        found["bert-tiny"] = model_teacher(folder)
        first, second = found["ngram-lr"], found["bert-tiny"]

        def ensemble(batch, pairs=None):
            a = torch.log_softmax(torch.as_tensor(first(batch)), -1)
            b = torch.log_softmax(torch.as_tensor(second(batch)), -1)
            return ((a + b) / 2).numpy()

        ensemble.teacher_id = f"ensemble({first.teacher_id}, {second.teacher_id})"
        found["ensemble"] = ensemble
    for name, teacher in found.items():
        accuracy[name] = float((np.asarray(teacher(texts)).argmax(-1) == gold).mean())
        print(f"teacher {name}: {accuracy[name]:.4f} RT validation")
    return found[which], accuracy


def student_logits(folder, texts):
    """A saved student's logits for `texts`, (texts, classes)."""
    import torch

    from eelbert_hf.loading import load_classifier

    classifier = load_classifier(folder)
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 256):
            batch = classifier.tokenizer(texts[start : start + 256], padding=True, truncation=True, max_length=128,
                                         return_tensors="pt")
            out.append(classifier.model(**batch).logits.float())
    return torch.cat(out).numpy()


def teacher_fit(folder, transfer_file, rt, sample=5000):
    """How closely a distilled student follows its teacher: agreement with the teacher's class on a sample of
    the transfer set (what it was trained on), and the student's accuracy on the validation split."""
    import random

    transfer = read_jsonl(transfer_file)
    transfer = random.Random(0).sample(transfer, min(sample, len(transfer)))
    valid = read_jsonl(os.path.join(rt, "validation.jsonl"))
    fit = float((student_logits(folder, [r["text"] for r in transfer]).argmax(-1)
                 == np.argmax([r["teacher_logits"] for r in transfer], -1)).mean())
    accuracy = float((student_logits(folder, [r["text"] for r in valid]).argmax(-1)
                      == np.array([r["label"] for r in valid])).mean())
    return {"agreement_transfer": fit, "validation_accuracy": accuracy}


def log_softmax(logits):
    shifted = logits - logits.max(-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))


def pair_accuracies(runs, output_dir, rt):
    """For each group of runs (one recipe, several seeds): the validation accuracy of every two of its students
    answering together (the mean of their log-probabilities), the students' bytes added up."""
    import itertools

    valid = read_jsonl(os.path.join(rt, "validation.jsonl"))
    gold, texts = np.array([r["label"] for r in valid]), [r["text"] for r in valid]
    groups, found = {}, {}
    for name in runs:
        groups.setdefault(name.rsplit("-s", 1)[0], []).append(name)
    for group, names in sorted(groups.items()):
        if len(names) < 2:
            continue
        scores = {name: log_softmax(student_logits(os.path.join(output_dir, name), texts)) for name in sorted(names)}
        for first, second in itertools.combinations(sorted(names), 2):
            both = float(((scores[first] + scores[second]).argmax(-1) == gold).mean())
            size = sum(os.path.getsize(os.path.join(output_dir, n, "model.safetensors")) for n in (first, second))
            found[f"{first} + {second.rsplit('-s', 1)[1]}"] = {"accuracy": both, "model_bytes": size}
            print(f"{first} with seed {second.rsplit('-s', 1)[1]}: {both:.4f} RT validation, {size / 1e6:.2f} MB")
    return found


def save_results(results, path):
    """Write `results`, keeping the runs that another process (another student list on the same output folder)
    saved there meanwhile."""
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            on_disk = json.load(f)
        results["runs"] = {**on_disk.get("runs", {}), **results["runs"]}
    part = f"{path}.{os.getpid()}.part"
    with open(part, "w", encoding="utf-8") as f:
        json.dump(results, f, indent=1)
    os.replace(part, path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--rt", default=RT, help="folder with train.jsonl and validation.jsonl")
    parser.add_argument("--teacher", default="ngram-lr", choices=["ngram-lr", "bert-tiny", "ensemble"])
    parser.add_argument("--copies", type=int, default=15, help="augmented copies per training review")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.0)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--fit", action="store_true", help="also measure each finished student's agreement with "
                        "the teacher on the transfer set (what bounds it: capacity or teacher)")
    parser.add_argument("--pairs", action="store_true", help="also score every two seeds of a recipe answering "
                        "together (the mean of their log-probabilities) on the validation split")
    parser.add_argument("--extra", default="", help="more `eelbert distill` flags for the students, e.g. "
                        "'--learning_rate 1e-3'; they name the runs too")
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    transfer_file = os.path.join(args.output_dir, f"transfer-{args.teacher}-x{args.copies}.jsonl")
    results_file = os.path.join(args.output_dir, "results.json")
    results = json.load(open(results_file, encoding="utf-8")) if os.path.exists(results_file) else {"runs": {}}

    if not os.path.exists(transfer_file):
        import datasets

        from eelbert_hf.distillation import DistillArguments, build_transfer_set
        from eelbert_hf.training import DataArguments

        teacher, accuracy = teachers(args.rt, args.output_dir, args.teacher)
        results["teachers"] = accuracy
        train = datasets.Dataset.from_list(read_jsonl(os.path.join(args.rt, "train.jsonl")))
        started = time.time()
        transfer = build_transfer_set(train, DataArguments(), DistillArguments(
            teacher=args.teacher, augment="mask,ngram" if args.copies else None, augment_copies=max(args.copies, 1)),
            teacher, "[MASK]", seed=0, cache_dir=None)
        results.setdefault("transfer", {})[os.path.basename(transfer_file)] = {
            "examples": len(transfer), "teacher": args.teacher, "seconds": round(time.time() - started, 1)}
        transfer.rename_column("labels", "label").to_json(transfer_file)
        save_results(results, results_file)
        print(f"transfer set: {len(transfer)} examples -> {transfer_file}")

    pending = []
    for student in args.students:
        for seed in args.seeds:
            tag = "".join(c if c.isalnum() or c in ".=" else "_" for c in args.extra.replace("--", ""))
            name = (f"{student}-{args.teacher}-x{args.copies}-T{args.temperature:g}-a{args.alpha:g}-e{args.epochs:g}"
                    f"{'-' + tag if tag else ''}-s{seed}")
            if name not in results["runs"]:
                pending.append((name, student, seed))
    running = []
    while pending or running:
        while pending and len(running) < args.jobs:
            name, student, seed = pending.pop(0)
            folder = os.path.join(args.output_dir, name)
            flags = ["distill", *STUDENTS[student], "--teacher_column", "teacher_logits", "--train_files",
                     transfer_file, "--temperature", str(args.temperature), "--alpha", str(args.alpha),
                     "--output_dir", folder, *common_flags(args.rt, args.epochs, seed), *args.extra.split()]
            running.append((name, student, seed, folder, time.time(), run_cli(flags, folder + ".log")))
        time.sleep(5)
        for item in list(running):
            name, student, seed, folder, started, process = item
            if process.poll() is None:
                continue
            running.remove(item)
            if process.returncode:
                print(f"{name} failed (exit {process.returncode}); see {folder}.log")
                continue
            results["runs"][name] = {"student": student, "seed": seed, "accuracy": best_accuracy(folder),
                                     "wall_s": round(time.time() - started, 1)}
            save_results(results, results_file)
            print(f"{name}: {results['runs'][name]['accuracy']:.4f} ({results['runs'][name]['wall_s']:.0f} s)")

    if args.fit:
        for name, run in results["runs"].items():
            folder = os.path.join(args.output_dir, name)
            if "agreement_transfer" not in run and os.path.isdir(folder):
                run.update(teacher_fit(folder, transfer_file, args.rt))
                print(f"{name}: agrees with the teacher on {run['agreement_transfer']:.1%} of the transfer set")
        save_results(results, results_file)

    if args.pairs:
        results["pairs"] = pair_accuracies([n for n in results["runs"] if os.path.isdir(os.path.join(
            args.output_dir, n))], args.output_dir, args.rt)
        save_results(results, results_file)

    groups = {}
    for name, run in results["runs"].items():
        groups.setdefault(name.rsplit("-s", 1)[0], []).append(run)
    for group, runs in sorted(groups.items()):
        acc = [100 * r["accuracy"] for r in runs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(f"{group}: {statistics.mean(acc):.1f} ± {sd:.1f} over {len(acc)} seeds "
              f"({', '.join(f'{a:.1f}' for a in acc)}); {statistics.mean(r['wall_s'] for r in runs):.0f} s a run")
    return results


if __name__ == "__main__":
    main()
