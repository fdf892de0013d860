"""Tokenizer half of the EELBERT n-gram hash, scheme ``eelbert-ngram-v1``.

EELBERT (Cohn et al., 2023, arXiv:2310.20144) replaces BERT's input-embedding table with an embedding
computed from each token's character n-grams. This file maps a token *string* to its n-gram ids; the
model half (``modeling/ngram_embedding.py``) maps each id to a vector. ``docs/hash-spec.md`` restates
both halves for ports to other languages, and ``tests/golden/ngram_hash_v1.json`` pins their output.
"""

HASH_SCHEME = "eelbert-ngram-v1"
NGRAM_ID_MODULUS = 2**31 - 2  # ids are 1 + (hash mod this): 1 ..= 2**31 - 2; 0 marks an empty slot
MAX_NGRAMS_LIMIT = 128  # the model's exact float32 pooling holds for at most 128 n-grams per token

FNV64_OFFSET = 0xCBF29CE484222325
FNV64_PRIME = 0x100000001B3
MASK64 = 2**64 - 1
WORD_START = b"\xff"  # never a byte of valid UTF-8, so it can't collide with text
ATOM_TAG = b"\xfe"  # never a byte of valid UTF-8 either


def ngram_hash_id(data: bytes) -> int:
    """FNV-1a 64 over ``data``, then murmur3's fmix64 finaliser, then ``1 + h mod (2**31 - 2)``."""
    h = FNV64_OFFSET
    for byte in data:  # bytes iterate as unsigned 0..255: no signed-char pitfall
        h = ((h ^ byte) * FNV64_PRIME) & MASK64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    h ^= h >> 33
    return 1 + h % NGRAM_ID_MODULUS


def is_atom_token(token: str) -> bool:
    """Bracketed vocabulary entries such as ``[CLS]``, ``[MASK]`` or ``[unused7]`` are never split."""
    return len(token) > 2 and token[0] == "[" and token[-1] == "]"


def token_ngram_ids(
    token: str,
    *,
    ngram_min_n: int = 1,
    ngram_max_n: int = 3,
    max_ngrams_per_token: int = 48,
    atom: bool = False,
    whole_token: bool = False,
) -> list[int]:
    """Return the n-gram ids of one WordPiece token (scheme ``eelbert-ngram-v1``).

    1. Atoms. If ``atom`` (the tokenizer passes True for its special tokens) or
       ``is_atom_token(token)`` or ``whole_token`` (the ``random_hash`` ablation: no morphology), the
       result is ``[ngram_hash_id(0xFE + UTF-8(token))]``.
    2. Symbols. A continuation piece ``##xyz`` (longer than 2 characters) gives the code points of
       ``xyz``; any other piece ``xyz`` gives a word-start marker followed by the code points of
       ``xyz``. So ``run`` and ``##run`` share ``r, u, n, ru, un, run`` yet stay distinct.
    3. Bytes. A code point is its UTF-8 encoding (a lone surrogate: its 3-byte surrogatepass form);
       the marker is the single byte 0xFF, which valid UTF-8 never contains.
    4. N-grams. For n = ngram_min_n .. ngram_max_n in ascending order, then for every start position
       from left to right, the n consecutive symbols' bytes are concatenated and hashed with
       ``ngram_hash_id``. Repeated n-grams are kept (pooling weights them by count).
    5. Truncation. Only the first ``max_ngrams_per_token`` ids of that order are kept, so long words
       lose their last (longest) n-grams first.
    """
    if atom or whole_token or is_atom_token(token):
        return [ngram_hash_id(ATOM_TAG + token.encode("utf-8", "surrogatepass"))]
    if token.startswith("##") and len(token) > 2:
        symbols = [c.encode("utf-8", "surrogatepass") for c in token[2:]]
    else:
        symbols = [WORD_START] + [c.encode("utf-8", "surrogatepass") for c in token]
    ids = []
    for n in range(ngram_min_n, ngram_max_n + 1):
        for start in range(len(symbols) - n + 1):
            if len(ids) == max_ngrams_per_token:
                return ids
            ids.append(ngram_hash_id(b"".join(symbols[start : start + n])))
    return ids


def check_ngram_params(ngram_min_n: int, ngram_max_n: int, max_ngrams_per_token: int, hash_scheme: str) -> None:
    """Raise a ``ValueError`` that names the bad n-gram parameter."""
    if hash_scheme != HASH_SCHEME:
        raise ValueError(
            f"hash_scheme {hash_scheme!r} is not known to this tokenizer code, which implements {HASH_SCHEME!r}; "
            "load the tokenizer with the code version that wrote it."
        )
    if not (isinstance(ngram_min_n, int) and isinstance(ngram_max_n, int) and 1 <= ngram_min_n <= ngram_max_n):
        raise ValueError(f"need integers 1 <= ngram_min_n <= ngram_max_n, got {ngram_min_n} and {ngram_max_n}")
    if not (isinstance(max_ngrams_per_token, int) and 1 <= max_ngrams_per_token <= MAX_NGRAMS_LIMIT):
        raise ValueError(f"max_ngrams_per_token must be an integer in 1..{MAX_NGRAMS_LIMIT}, got {max_ngrams_per_token}")
