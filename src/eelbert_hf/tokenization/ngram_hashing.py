"""Tokenizer half of the EELBERT n-gram hash, scheme ``eelbert-ngram-v1``.

EELBERT (Cohn et al., 2023, arXiv:2310.20144) replaces BERT's input-embedding table with an embedding
computed from each token's character n-grams. This file maps a token *string* to its n-gram ids; the
model half (``modeling/ngram_embedding.py``) maps each id to a vector. ``docs/hash-spec.md`` restates
both halves for ports to other languages, and ``tests/golden/ngram_hash_v1.json`` pins their output.
"""

import numpy as np

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


def token_ngrams(
    token: str,
    *,
    ngram_min_n: int = 1,
    ngram_max_n: int = 3,
    max_ngrams_per_token: int = 48,
    atom: bool = False,
    whole_token: bool = False,
) -> list[bytes]:
    """The byte strings whose hashes are the n-gram ids of one WordPiece token (scheme ``eelbert-ngram-v1``).

    1. Atoms. If ``atom`` (the tokenizer passes True for its special tokens) or
       ``is_atom_token(token)`` or ``whole_token`` (the ``random_hash`` ablation: no morphology), the
       result is ``[0xFE + UTF-8(token)]``.
    2. Symbols. A continuation piece ``##xyz`` (longer than 2 characters) gives the code points of
       ``xyz``; any other piece ``xyz`` gives a word-start marker followed by the code points of
       ``xyz``. So ``run`` and ``##run`` share ``r, u, n, ru, un, run`` yet stay distinct.
    3. Bytes. A code point is its UTF-8 encoding (a lone surrogate: its 3-byte surrogatepass form);
       the marker is the single byte 0xFF, which valid UTF-8 never contains.
    4. N-grams. For n = ngram_min_n .. ngram_max_n in ascending order, then for every start position
       from left to right, the n consecutive symbols' bytes are concatenated (``token_ngram_ids`` hashes
       each with ``ngram_hash_id``). Repeated n-grams are kept (pooling weights them by count).
    5. Truncation. Only the first ``max_ngrams_per_token`` ids of that order are kept, so long words
       lose their last (longest) n-grams first.
    """
    if atom or whole_token or is_atom_token(token):
        return [ATOM_TAG + token.encode("utf-8", "surrogatepass")]
    if token.startswith("##") and len(token) > 2:
        symbols = [c.encode("utf-8", "surrogatepass") for c in token[2:]]
    else:
        symbols = [WORD_START] + [c.encode("utf-8", "surrogatepass") for c in token]
    ngrams = []
    for n in range(ngram_min_n, ngram_max_n + 1):
        for start in range(len(symbols) - n + 1):
            if len(ngrams) == max_ngrams_per_token:
                return ngrams
            ngrams.append(b"".join(symbols[start : start + n]))
    return ngrams


def token_ngram_ids(token: str, **params) -> list[int]:
    """The n-gram ids of one WordPiece token: ``ngram_hash_id`` of each of ``token_ngrams(token, **params)``."""
    return [ngram_hash_id(ngram) for ngram in token_ngrams(token, **params)]



def token_ngram_ids_array(
    tokens: list[str],
    atoms: list[bool],
    *,
    ngram_min_n: int = 1,
    ngram_max_n: int = 3,
    max_ngrams_per_token: int = 48,
    whole_token: bool = False,
) -> np.ndarray:
    """``token_ngram_ids`` of many tokens at once, vectorised with numpy: (T,) -> (T, max_ngrams_per_token) int64,
    each row right-padded with 0. Bit-identical to the per-token function (``tests/test_fast_paths.py``).

    Each token becomes a row of symbols, each symbol up to 4 UTF-8 bytes. FNV-1a of the n-gram at symbol ``s``
    is FNV-1a of the (n-1)-gram at ``s`` continued with the bytes of symbol ``s + n - 1``, so each n is one
    vectorised pass; fmix64, the range reduction and the n-then-start order with truncation follow.
    """
    out = np.zeros((len(tokens), max_ngrams_per_token), dtype=np.int64)
    short, long = [], []  # tokens split into n-grams, in two groups so that a few long ones don't widen all rows
    for i, (token, atom) in enumerate(zip(tokens, atoms)):
        if atom or whole_token or is_atom_token(token):  # atoms are few: hashed one by one
            out[i, 0] = ngram_hash_id(ATOM_TAG + token.encode("utf-8", "surrogatepass"))
        else:
            (short if len(token) <= 16 else long).append(i)
    params = dict(ngram_min_n=ngram_min_n, ngram_max_n=ngram_max_n, max_ngrams_per_token=max_ngrams_per_token)
    for rows in (short, long):
        if len(rows) >= 8:
            out[rows] = _split_token_ngram_ids([tokens[i] for i in rows], **params)
        else:  # below ~8 tokens numpy's fixed cost (~0.1 ms) exceeds the plain loop's
            for i in rows:
                ids = token_ngram_ids(tokens[i], **params)
                out[i, : len(ids)] = ids
    return out


def _split_token_ngram_ids(tokens, ngram_min_n, ngram_max_n, max_ngrams_per_token):
    """Steps 2-5 of ``token_ngram_ids`` for non-atom tokens: (T,) -> (T, max_ngrams_per_token) int64."""
    marked = np.array([not (token.startswith("##") and len(token) > 2) for token in tokens])
    # n-grams that start at symbol max_ngrams_per_token or later are always truncated away: cut long tokens there
    texts = [(token if m else token[2:])[: max_ngrams_per_token + ngram_max_n] for token, m in zip(tokens, marked)]
    lengths = np.array([len(t) for t in texts]) + marked  # symbols per token, the marker included
    width = int(lengths.max())
    chars = np.array(texts, dtype=f"<U{max(width, 1)}").view(np.uint32).reshape(len(texts), -1)
    codes = np.zeros((len(texts), width + 1), dtype=np.int64)  # (T, L) code points, -1 = word-start marker
    codes[marked, 0] = -1
    codes[marked, 1 : chars.shape[1] + 1] = chars[marked]
    codes[~marked, : chars.shape[1]] = chars[~marked]
    nbytes = 1 + (codes >= 0x80) + (codes >= 0x800) + (codes >= 0x10000)  # UTF-8 length (marker: 1)
    most = int(nbytes.max())  # 1 for ASCII-only tokens: then the loops over later bytes below do nothing
    lead = np.array([0, 0x00, 0xC0, 0xE0, 0xF0])[nbytes] | (codes >> (6 * (nbytes - 1)))
    symbol_bytes = [np.where(codes < 0, 0xFF, lead)]  # (T, L) per byte position k = 0..3
    symbol_bytes += [0x80 | ((codes >> np.maximum(6 * (nbytes - 1 - k), 0)) & 0x3F) for k in range(1, most)]
    symbol_bytes = [b.astype(np.uint64) for b in symbol_bytes]
    h = np.full(codes.shape, FNV64_OFFSET, dtype=np.uint64)  # FNV state of the n-gram starting at each symbol
    states, valid = [], []
    for n in range(1, ngram_max_n + 1):
        starts = codes.shape[1] - n + 1  # (T, L) -> (T, L - n + 1)
        h = (h[:, :starts] ^ symbol_bytes[0][:, n - 1 :]) * np.uint64(FNV64_PRIME)  # every symbol has a byte 0
        for k in range(1, most):  # later bytes: only non-ASCII symbols
            more = nbytes[:, n - 1 :] > k
            h[more] = (h[more] ^ symbol_bytes[k][:, n - 1 :][more]) * np.uint64(FNV64_PRIME)
        if n >= ngram_min_n:
            states.append(h)
            valid.append(np.arange(starts) + n <= lengths[:, None])
    ids = _fmix64_to_id(np.concatenate(states, axis=1))  # (T, W) in spec order: n, then start
    valid = np.concatenate(valid, axis=1)
    slot = np.cumsum(valid, axis=1) - 1
    row, col = np.nonzero(valid & (slot < max_ngrams_per_token))
    table = np.zeros((len(tokens), max_ngrams_per_token), dtype=np.int64)
    table[row, slot[row, col]] = ids[row, col]
    return table


def _fmix64_to_id(h: np.ndarray) -> np.ndarray:
    """murmur3's fmix64, then ``1 + h mod (2**31 - 2)``, on a uint64 array (wrapping multiplication)."""
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    h = h ^ (h >> np.uint64(33))
    return (h % np.uint64(NGRAM_ID_MODULUS)).astype(np.int64) + 1


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
