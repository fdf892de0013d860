"""Regenerate tests/golden/ngram_hash_v1.json (WordPiece) and ngram_token_formats.json (the other token formats)
from the package's own code (scheme eelbert-ngram-v1).

Run from the repository root:  python tests/golden/make_golden.py
The output only changes if the spec changes, which needs a new hash_scheme name (see docs/hash-spec.md).
"""

import json
import pathlib
import types

import numpy as np
import torch

from eelbert_hf.modeling.ngram_embedding import DynamicNgramEmbeddings
from eelbert_hf.modeling.ngram_hashing import (HASH_SCHEME, hash_constants, ngram_hash_id, splitmix64, token_ngram_ids,
                                                token_symbols)

OUT = pathlib.Path(__file__).with_name("ngram_hash_v1.json")
FORMATS_OUT = pathlib.Path(__file__).with_name("ngram_token_formats.json")
# Each format's word start, continuation, non-Latin text, and its own kind of piece: byte-level pieces that hold a
# whole, a part of, or several UTF-8 characters ("Ã©" is é's two bytes, "ä¸Ń" is 中), SentencePiece byte fallback.
FORMAT_TOKENS = {
    "metaspace": ["▁the", "▁run", "run", "ning", "▁", "▁中文", "字", "<0xE3>", "<0x41>", "<0xe3>", "▁😀", "[CLS]"],
    "byte_level": ["Ġthe", "Ġrun", "run", "ning", "Ġ", "ĠĠ", "Ã©", "Ã", "©", "ä¸Ń", "Ġä¸Ńæĸĩ", "ð٤Ģ", "Ċ",
                   "<|endoftext|>", "[CLS]"],
    "plain": ["the", "run", "中文", "##run", "[CLS]"],
}
PARAMS = {"ngram_min_n": 1, "ngram_max_n": 3, "max_ngrams_per_token": 48, "whole_token": False}
SPECIALS = {"[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]"}  # EELBertTokenizer's special tokens (atom=True)

RAW_BYTES = [b"", b"a", b"\xff", b"\xffa", b"run", b"\xfe[CLS]", bytes(range(256))]
TOKENS = [
    "the", "run", "##run", "running", "runner", "##ing", "##s", "a", "##",
    "café", "naïve", "中", "文字", "😀", "👩\u200d💻",
    "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]", "[unused0]",
    "pneumonoultramicroscopicsilico",  # 30 letters: 31 unigrams + 30 bigrams > 48, so truncated
    "\ud800",  # a lone surrogate: hashed in its 3-byte surrogatepass form ED A0 80
    "[]",  # too short to be an atom: an ordinary word-start token
]
EMBED_TOKENS = ["run", "##ing", "[CLS]"]  # plus one all-zero (padding) row, which must embed to +0.0
HIDDEN, SEED = 8, 0


def dumps(golden: dict) -> str:
    """One line per list entry, so diffs stay readable. ensure_ascii writes the lone surrogate as "\\ud800"."""
    parts = []
    for key, value in golden.items():
        if isinstance(value, list):
            body = ",\n  ".join(json.dumps(item, ensure_ascii=True) for item in value)
            parts.append(f"{json.dumps(key)}: [\n  {body}\n ]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=True)}")
    return "{\n " + ",\n ".join(parts) + "\n}\n"


def main():
    tokens = []
    for token in TOKENS:
        atom = token in SPECIALS
        ids = token_ngram_ids(token, atom=atom, **PARAMS)
        tokens.append({"token": token, "atom": atom, "ngram_ids": ids})
    by_token = {t["token"]: t["ngram_ids"] for t in tokens}

    module = DynamicNgramEmbeddings(types.SimpleNamespace(hidden_size=HIDDEN, ngram_seed=SEED, vocab_size=30522, ngram_weight_buckets=0))
    width = PARAMS["max_ngrams_per_token"]
    rows = [by_token[t] for t in EMBED_TOKENS] + [[]]
    batch = torch.tensor([[row + [0] * (width - len(row)) for row in rows]], dtype=torch.int64)
    with torch.no_grad():
        values = module(batch)[0].numpy()
    embeddings = []
    for name, row, vec in zip(EMBED_TOKENS + [None], rows, values):
        vec = vec.astype(np.float32)
        embeddings.append({
            "token": name, "ngram_ids": row, "hidden_size": HIDDEN, "ngram_seed": SEED,
            "values": [float(v) for v in vec],  # float32 -> float64 is exact; JSON writes the shortest round-trip decimal
            "values_hex": [f"{int(u):08x}" for u in vec.view(np.uint32)],
        })

    a, b = hash_constants(SEED, 4)
    golden = {
        "hash_scheme": HASH_SCHEME,
        "params": PARAMS,
        "ngram_hash_ids": [{"bytes_hex": raw.hex(), "id": ngram_hash_id(raw)} for raw in RAW_BYTES],
        "tokens": tokens,
        "splitmix64": {"seed": SEED, "first": splitmix64(SEED, 4)},
        "hash_constants": {"seed": SEED, "dim": 4, "a": a, "b": b},
        "embeddings": embeddings,
    }
    OUT.write_text(dumps(golden))
    print(f"wrote {OUT}")
    formats = [{"token_format": fmt, "token": token, "symbols_hex": [b.hex() for b in token_symbols(token, fmt)],
                "ngram_ids": token_ngram_ids(token, token_format=fmt, **PARAMS)}
               for fmt, tokens in FORMAT_TOKENS.items() for token in tokens]
    FORMATS_OUT.write_text(dumps({"hash_scheme": HASH_SCHEME, "params": PARAMS, "tokens": formats}))
    print(f"wrote {FORMATS_OUT}")


if __name__ == "__main__":
    main()
