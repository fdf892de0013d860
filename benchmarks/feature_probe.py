"""Linear probes: how much sentiment a bag of each feature set carries, without any encoder.

A logistic regression on binary bag-of-features vectors of each Rotten Tomatoes review, trained on the train split
and scored on validation (the L2 strength picked on validation, like everything in docs/results.md). It bounds
what a model can learn from per-feature weights alone, which is what the learned n-gram gates are: one scalar per
hash bucket (`ngram_id mod ngram_weight_buckets`).

    python benchmarks/feature_probe.py            # about 2 minutes on one core

Feature sets: WordPiece token ids (what BERT's learned table sees); the n-gram ids of the tokens (the hash
scheme's input, no collisions among these reviews); those ids mod B (what B gates can weigh); n-grams plus
one whole-token id per token (a scheme that also hashed the whole piece); and, dense, the mean of the tokens'
frozen hash embeddings at hidden size 128, 1,024 and 4,096 (a wider hashed space, before any projection).
"""

import argparse
import json
import os

import numpy as np
import torch

from eelbert_hf import DynamicNgramEmbeddings, EELBertConfig, EELBertTokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
SENTIMENT = os.path.join(HERE, "..", "..", "shared", "data", "sentiment", "rotten_tomatoes")


def read(path):
    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    return [r["text"] for r in rows], np.array([r["label"] for r in rows], dtype=np.float32)


def bags(ids_per_text, features) -> list[np.ndarray]:
    """One array of distinct feature ids per text; `features` maps a (S,) token-id array to feature ids."""
    return [np.unique(features(np.asarray(ids))) for ids in ids_per_text]


def probe(train_bags, y_train, valid_bags, y_valid, strengths=(1e-2, 3e-3, 1e-3, 3e-4)) -> tuple[float, int]:
    """Best validation accuracy of an L2-regularised logistic regression (L-BFGS), and the number of features."""
    vocab = {f: j for j, f in enumerate(np.unique(np.concatenate(train_bags + valid_bags)))}

    def matrix(bag_list):
        x = torch.zeros(len(bag_list), len(vocab))
        for i, bag in enumerate(bag_list):
            x[i, [vocab[f] for f in bag]] = 1.0
        return x

    return logistic_regression(matrix(train_bags), y_train, matrix(valid_bags), y_valid, strengths), len(vocab)


def dense_probe(train_x, y_train, valid_x, y_valid, strengths=(1e-2, 1e-3, 1e-4, 1e-5)) -> float:
    """Best validation accuracy of an L2-regularised logistic regression on dense, standardised features."""
    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    return logistic_regression((train_x - mean) / std, y_train, (valid_x - mean) / std, y_valid, strengths)


def logistic_regression(x_train, y_train, x_valid, y_valid, strengths) -> float:
    """Fit w, b by L-BFGS at each L2 strength; the best validation accuracy."""
    target, best = torch.from_numpy(y_train), 0.0
    for strength in strengths:
        w, b = torch.zeros(x_train.shape[1], requires_grad=True), torch.zeros(1, requires_grad=True)
        optimizer = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(x_train @ w + b, target) + strength * (w * w).sum()
            loss.backward()
            return loss

        optimizer.step(closure)
        with torch.no_grad():
            best = max(best, float((((x_valid @ w + b) > 0).numpy() == y_valid).mean()))
    return best


def mean_hash_vectors(tokenizer, ids_per_text, width) -> torch.Tensor:
    """Each review as the mean of its tokens' frozen hash embeddings (the scheme, no gates) at hidden size `width`."""
    module = DynamicNgramEmbeddings(EELBertConfig(hidden_size=width, num_attention_heads=1, ngram_weight_buckets=0))
    out = torch.zeros(len(ids_per_text), width)
    with torch.no_grad():
        for i, ids in enumerate(ids_per_text):
            out[i] = module(torch.from_numpy(tokenizer.ngram_ids_for(ids))[None])[0].mean(0)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentiment", default=SENTIMENT, help="folder with train.jsonl and validation.jsonl")
    parser.add_argument("--widths", type=int, nargs="*", default=[128, 1024, 4096],
                        help="hidden sizes of the frozen hash vectors to probe (none: skip)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    (train_texts, y_train), (valid_texts, y_valid) = (read(os.path.join(args.sentiment, f"{split}.jsonl"))
                                                      for split in ("train", "validation"))
    encode = lambda texts: tokenizer(texts, truncation=True, max_length=128, return_ngram_ids=False)["input_ids"]  # noqa: E731
    train_ids, valid_ids = encode(train_texts), encode(valid_texts)
    atoms = {}

    def atom_ids(ids):  # one hashed id per whole token (special tokens are atoms in the scheme already)
        for i in set(ids.tolist()) - atoms.keys():
            atoms[i] = tokenizer.token_ngram_ids(tokenizer.convert_ids_to_tokens(i), atom=True)[0]
        return np.array([atoms[i] for i in ids.tolist()])

    def ngrams(ids):
        rows = tokenizer.ngram_ids_for(ids)
        return rows[rows != 0]

    feature_sets = {
        "WordPiece token ids (a learned table's input)": lambda ids: ids,
        "character n-gram ids of the tokens": ngrams,
        **{f"n-gram ids mod {b:,} (what {b:,} gates can weigh)": (lambda ids, b=b: ngrams(ids) % b)
           for b in (1024, 4096, 16384)},
        "n-gram ids + one whole-token id": lambda ids: np.concatenate([ngrams(ids), atom_ids(ids)]),
        "n-gram ids + whole-token id, mod 4,096": lambda ids: np.concatenate([ngrams(ids), atom_ids(ids)]) % 4096,
    }
    print("| features | distinct features | RT validation accuracy |\n|---|---|---|")
    for name, features in feature_sets.items():
        accuracy, count = probe(bags(train_ids, features), y_train, bags(valid_ids, features), y_valid)
        print(f"| {name} | {count:,} | {100 * accuracy:.1f} |", flush=True)
    for width in args.widths:  # what a wider frozen hash space gives a linear reader, before any projection
        accuracy = dense_probe(mean_hash_vectors(tokenizer, train_ids, width), y_train,
                               mean_hash_vectors(tokenizer, valid_ids, width), y_valid)
        print(f"| mean of the tokens' frozen hash vectors, d = {width:,} | {width:,} dims | {100 * accuracy:.1f} |",
              flush=True)


if __name__ == "__main__":
    main()
