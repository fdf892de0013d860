"""Fine-tuning ablations of the embedding scheme, from scratch, on Rotten Tomatoes (docs/results.md, "Ablations").

A plain PyTorch loop with `eelbert finetune`'s recipe (AdamW, learning rate 5e-4 decaying linearly to 0, batch 32,
at most 128 tokens, best validation epoch) but random batches instead of length-grouped ones, and the row cache off.
Each call trains one model and prints one JSON line (also appended to --results):

    python benchmarks/ablate.py --preset uno --seed 0                                  # the default scheme
    python benchmarks/ablate.py --preset uno --seed 0 --overrides ngram_gate_scale=100.0
    python benchmarks/ablate.py --preset uno --seed 0 --extra mlp:32                    # + per-token MLP
    python benchmarks/ablate.py --preset uno --seed 0 --extra vectors:2048:4            # + learned bucket vectors
    python benchmarks/ablate.py --preset tiny --embedding_type hash_init --seed 0

`--extra` adds a learned term to the token embedding (not part of the package): `mlp:R` is e + W2 gelu(W1 e) with a
hidden width R; `vectors:B:R` is a learned R-vector per bucket (n-gram id mod B), averaged over the token's n-grams
and projected to the hidden size.
"""

import argparse
import ast
import json
import math
import os
import time

import numpy as np
import torch
from torch import nn

from eelbert_hf import EELBertConfig, EELBertForSequenceClassification, EELBertTokenizer
from eelbert_hf.training import init_table_from_hash

HERE = os.path.dirname(os.path.abspath(__file__))
SENTIMENT = os.path.join(HERE, "..", "..", "shared", "data", "sentiment", "rotten_tomatoes")


class Extra(nn.Module):
    """A learned term added to the dynamic token embeddings: `mlp:R` or `vectors:B:R`."""

    def __init__(self, spec: str, hidden_size: int):
        super().__init__()
        kind, *sizes = spec.split(":")
        self.kind = kind
        if kind == "mlp":
            self.mlp = nn.Sequential(nn.Linear(hidden_size, int(sizes[0])), nn.GELU(),
                                     nn.Linear(int(sizes[0]), hidden_size))
        elif kind == "vectors":
            self.buckets = int(sizes[0])
            self.table = nn.Parameter(torch.zeros(self.buckets, int(sizes[1])))
            self.projection = nn.Parameter(torch.randn(int(sizes[1]), hidden_size) * 0.02)
        else:
            raise ValueError(f"--extra must be mlp:R or vectors:B:R, got {spec!r}")

    def forward(self, ngram_ids, embeddings):  # (B, S, K), (B, S, d) -> (B, S, d)
        if self.kind == "mlp":
            return embeddings + self.mlp(embeddings)
        present = (ngram_ids != 0).unsqueeze(-1)  # (B, S, K, 1)
        pooled = (self.table[ngram_ids % self.buckets] * present).sum(2) / present.sum(2).clamp(min=1)  # (B, S, R)
        return embeddings + pooled @ self.projection


def batches(tokenizer, ids, labels, order, size):
    for start in range(0, len(order), size):
        rows = [ids[i] for i in order[start : start + size]]
        batch = tokenizer.pad({"input_ids": rows}, return_tensors="pt")
        yield batch, torch.as_tensor(labels[order[start : start + size]])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="uno")
    parser.add_argument("--embedding_type", default="dynamic")
    parser.add_argument("--overrides", default="", help="config fields, e.g. ngram_gate_scale=100.0,ngram_weight_buckets=0")
    parser.add_argument("--extra", default=None, help="mlp:R or vectors:B:R")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--learning_rate", type=float, default=5e-4)
    parser.add_argument("--sentiment", default=SENTIMENT)
    parser.add_argument("--results", default="out/ablate.jsonl")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    data = {}
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in open(os.path.join(args.sentiment, f"{split}.jsonl"), encoding="utf-8")]
        ids = tokenizer([r["text"] for r in rows], truncation=True, max_length=128, return_ngram_ids=False)["input_ids"]
        data[split] = (ids, np.array([r["label"] for r in rows]))
    overrides = {k.strip(): ast.literal_eval(v.strip()) for k, v in
                 (item.split("=") for item in filter(None, args.overrides.split(",")))}
    torch.manual_seed(args.seed)
    config = EELBertConfig.from_preset(args.preset, embedding_type=args.embedding_type, num_labels=2, **overrides)
    model = EELBertForSequenceClassification(config)
    if args.embedding_type == "hash_init":
        init_table_from_hash(model, tokenizer)
    if args.extra:
        model.extra = Extra(args.extra, config.hidden_size)
        module = model.bert.embeddings.ngram_embeddings
        module.register_forward_hook(lambda m, inputs, output: model.extra(inputs[0], output))
    if args.embedding_type not in ("table", "hash_init"):
        model.bert.embeddings.ngram_embeddings.cache_bytes = 0  # the hook sees every call
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=0.0)
    (train_ids, train_labels), (valid_ids, valid_labels) = data["train"], data["validation"]
    total = math.ceil(len(train_ids) / 32) * args.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total))
    generator, accuracies, start = torch.Generator().manual_seed(args.seed), [], time.time()
    for _ in range(args.epochs):
        model.train()
        for batch, labels in batches(tokenizer, train_ids, train_labels,
                                     torch.randperm(len(train_ids), generator=generator).numpy(), 32):
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad(set_to_none=True)
        model.eval()
        correct = 0
        with torch.no_grad():
            for batch, labels in batches(tokenizer, valid_ids, valid_labels, np.arange(len(valid_ids)), 128):
                correct += int((model(**batch).logits.argmax(-1) == labels).sum())
        accuracies.append(correct / len(valid_ids))
    result = dict(preset=args.preset, embedding_type=args.embedding_type, overrides=args.overrides, extra=args.extra,
                  seed=args.seed, epochs=args.epochs, parameters=sum(p.numel() for p in model.parameters()),
                  best_accuracy=max(accuracies), accuracies=[round(a, 4) for a in accuracies],
                  wall_s=round(time.time() - start))
    print(json.dumps(result), flush=True)
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results, "a", encoding="utf-8") as f:
        f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
