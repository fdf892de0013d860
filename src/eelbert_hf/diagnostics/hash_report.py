"""`eelbert hash-report`: what the n-gram hash does to a corpus and a vocabulary (collisions, shared rows,
morphological neighbours) — the first questions users ask about any hashed embedding."""

from collections import Counter, defaultdict

import numpy as np
import torch

from ..modeling.configuration_eelbert import EELBertConfig
from ..modeling.ngram_embedding import DynamicNgramEmbeddings
from ..modeling.ngram_hashing import ngram_hash_id, token_ngrams

DEFAULT_WORDS = ("running", "happiness", "unbelievable", "cats", "filmmaker")


def vocabulary_ngrams(tokenizer):
    """For every vocabulary token: its n-gram byte strings, exactly as the tokenizer hashes them."""
    special = set(tokenizer.all_special_tokens)
    tokens = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    params = dict(ngram_min_n=tokenizer.ngram_min_n, ngram_max_n=tokenizer.ngram_max_n,
                  max_ngrams_per_token=tokenizer.max_ngrams_per_token,
                  whole_token=tokenizer.feature_type == "whole_token")
    return tokens, [token_ngrams(token, atom=token in special, **params) for token in tokens]


def hash_report(tokenizer, corpus_lines, config: EELBertConfig | None = None, words=DEFAULT_WORDS, top_k=5) -> dict:
    config = config or EELBertConfig.from_preset("tiny")
    tokens, ngrams = vocabulary_ngrams(tokenizer)
    # n-gram hash collisions: distinct byte strings of the vocabulary that share an id
    strings_by_id = defaultdict(set)
    for grams in ngrams:
        for gram in grams:
            strings_by_id[ngram_hash_id(gram)].add(gram)
    colliding = {i: s for i, s in strings_by_id.items() if len(s) > 1}
    # tokens whose n-gram multisets are identical get identical embeddings
    by_row = defaultdict(list)
    for token, grams in zip(tokens, ngrams):
        by_row[tuple(sorted(grams))].append(token)
    shared = [group for group in by_row.values() if len(group) > 1]
    # the corpus
    corpus_ids = [i for ids in tokenizer(list(corpus_lines), add_special_tokens=False)["input_ids"] for i in ids]
    counts = Counter(corpus_ids)
    corpus_ngrams = {gram for token_id in counts for gram in ngrams[token_id]}
    # nearest neighbours by (pure, untrained) dynamic embedding
    embed = DynamicNgramEmbeddings(config)
    table = torch.as_tensor(tokenizer.ngram_ids_for(np.arange(len(tokens))))
    with torch.no_grad():
        vectors = torch.nn.functional.normalize(embed.reference(table), dim=-1)  # (V, d)
    vocab = tokenizer.get_vocab()
    neighbours = {}
    for word in words:
        if word in vocab:
            scores = vectors @ vectors[vocab[word]]
            best = scores.topk(top_k + 1).indices.tolist()
            neighbours[word] = [(tokens[i], round(scores[i].item(), 3)) for i in best if i != vocab[word]][:top_k]
    return {
        "vocabulary_tokens": len(tokens),
        "vocabulary_ngrams": len(strings_by_id) + sum(len(s) - 1 for s in colliding.values()),
        "colliding_ngram_ids": len(colliding),
        "collision_examples": [sorted(s) for s in list(colliding.values())[:3]],
        "tokens_sharing_a_row": sum(len(g) for g in shared),
        "shared_row_examples": shared[:3],
        "corpus_tokens": len(corpus_ids),
        "corpus_distinct_tokens": len(counts),
        "corpus_distinct_ngrams": len(corpus_ngrams),
        "corpus_unk_share": counts.get(tokenizer.unk_token_id, 0) / max(1, len(corpus_ids)),
        "neighbours": neighbours,
    }


def print_report(report: dict) -> None:
    print(f"vocabulary: {report['vocabulary_tokens']:,} tokens, {report['vocabulary_ngrams']:,} distinct n-grams")
    print(f"  n-gram ids shared by different n-grams (hash collisions): {report['colliding_ngram_ids']}"
          + (f", e.g. {report['collision_examples']}" if report["collision_examples"] else ""))
    print(f"  tokens whose n-gram bags equal another token's (identical embeddings): "
          f"{report['tokens_sharing_a_row']}" + (f", e.g. {report['shared_row_examples']}"
                                                 if report["shared_row_examples"] else ""))
    print(f"corpus: {report['corpus_tokens']:,} tokens, {report['corpus_distinct_tokens']:,} distinct tokens, "
          f"{report['corpus_distinct_ngrams']:,} distinct n-grams, [UNK] {100 * report['corpus_unk_share']:.2f} %")
    print("nearest vocabulary neighbours by dynamic embedding (cosine; morphology check):")
    for word, near in report["neighbours"].items():
        print(f"  {word}: " + ", ".join(f"{token} {score:.2f}" for token, score in near))
