"""The EELBERT n-gram hash, scheme ``eelbert-ngram-v1``: every constant and rule of it, in pure Python.

The tokenizer half (``token_ngram_ids``) maps a token string to n-gram ids; the model half
(``modeling/ngram_embedding.py``) maps each id to a vector with ``hash_constants``. Both folders import this file
(``modeling/`` links to it; a Hub folder holds it once); ``docs/hash-spec.md`` restates it, ``tests/golden/`` pins it.
"""

HASH_SCHEME = "eelbert-ngram-v1"  # a change to anything below changes the ids, and needs a new name
MAX_NGRAM_ID = 2**31 - 2  # ids are 1 + (hash mod MAX_NGRAM_ID): 1 ..= 2**31 - 2; 0 marks an empty slot
MAX_NGRAMS_LIMIT = 128  # the model's float32 pooling is exact for at most 128 n-grams per token
# The fields that tokenizer and model share, with their defaults (a model's config holds all but feature_type).
NGRAM_DEFAULTS = dict(hash_scheme=HASH_SCHEME, ngram_min_n=1, ngram_max_n=3, max_ngrams_per_token=48)
NGRAM_FIELDS = tuple(NGRAM_DEFAULTS)
# "ngram": character n-grams (EELBERT); "whole_token": one hashed atom per token (the random_hash ablation).
FEATURE_TYPES = ("ngram", "whole_token")

MASK64 = 2**64 - 1
WORD_START = b"\xff"  # never a byte of valid UTF-8, so it can't collide with text
ATOM_TAG = b"\xfe"  # never a byte of valid UTF-8 either

HASH_PRIME = 2**31 - 1  # model half: x = (a_j * id + b_j) mod P; products stay below 2**62
VALUE_SCALE = 2**17 - 1  # 131071: the value 2 * (x mod 2**17) - VALUE_SCALE is odd, in [-S, S]


def ngram_hash_id(data: bytes) -> int:
    """FNV-1a 64 over ``data``, then murmur3's fmix64 finaliser, then ``1 + h mod (2**31 - 2)``."""
    h = 0xCBF29CE484222325
    for byte in data:  # bytes iterate as unsigned 0..255: no signed-char pitfall
        h = ((h ^ byte) * 0x100000001B3) & MASK64
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & MASK64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & MASK64
    h ^= h >> 33
    return 1 + h % MAX_NGRAM_ID


def token_ngrams(token: str, *, ngram_min_n: int = 1, ngram_max_n: int = 3, max_ngrams_per_token: int = 48,
                 atom: bool = False, whole_token: bool = False) -> list[bytes]:
    """The byte strings whose hashes are the n-gram ids of one WordPiece token, in five steps:

    1. Atoms: if ``atom`` (special tokens), ``whole_token`` (the ``random_hash`` ablation) or the token is bracketed
       and longer than 2 characters (``[CLS]``, ``[unused7]``), the result is ``[0xFE + UTF-8(token)]``.
    2. Symbols: ``##xyz`` (longer than 2 characters) gives the code points of ``xyz``; any other ``xyz`` gives a
       word-start marker, then those of ``xyz``. So ``run`` and ``##run`` share ``r, u, n, ru, un, run`` only.
    3. Bytes: a code point is its UTF-8 (a lone surrogate: its surrogatepass form); the marker is the byte 0xFF.
    4. N-grams: for n = ngram_min_n .. ngram_max_n, each start from left to right, the n symbols' bytes joined;
       repeats are kept (pooling weighs them by count).
    5. Truncation: the first ``max_ngrams_per_token`` are kept, so long words lose their longest n-grams first.
    """
    if atom or whole_token or (len(token) > 2 and token[0] == "[" and token[-1] == "]"):
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


def splitmix64(seed: int, count: int) -> list[int]:
    """The first ``count`` outputs of SplitMix64 (Steele et al., 2014) seeded with ``seed`` (uint64)."""
    state, out = seed & MASK64, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & MASK64
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        out.append(z ^ (z >> 31))
    return out


def hash_constants(seed: int, dim: int) -> tuple[list[int], list[int]]:
    """Model half, per dimension j: ``a_j = 1 + r_{2j} mod (P - 1)``, ``b_j = r_{2j+1} mod P`` (r: SplitMix64)."""
    draws = splitmix64(seed, 2 * dim)
    return [1 + r % (HASH_PRIME - 1) for r in draws[0::2]], [r % HASH_PRIME for r in draws[1::2]]


def check_ngram_params(hash_scheme, ngram_min_n, ngram_max_n, max_ngrams_per_token, feature_type="ngram") -> None:
    """Raise a ``ValueError`` that names the bad n-gram field (tokenizer and config both call this)."""
    if hash_scheme != HASH_SCHEME:
        raise ValueError(f"hash_scheme {hash_scheme!r} is not known to this code, which implements {HASH_SCHEME!r}: "
                         "load it with the code version that wrote it")
    if not (type(ngram_min_n) is int and type(ngram_max_n) is int and 1 <= ngram_min_n <= ngram_max_n):
        raise ValueError(f"need integers 1 <= ngram_min_n <= ngram_max_n, got {ngram_min_n!r} and {ngram_max_n!r}")
    if not (type(max_ngrams_per_token) is int and 1 <= max_ngrams_per_token <= MAX_NGRAMS_LIMIT):
        raise ValueError(f"max_ngrams_per_token must be an integer in 1..{MAX_NGRAMS_LIMIT}, "
                         f"got {max_ngrams_per_token!r}")
    if feature_type not in FEATURE_TYPES:
        raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, got {feature_type!r}")


def check_compatible(model_fields: dict, tokenizer_fields: dict) -> None:
    """Raise a ``ValueError`` if a tokenizer (its ``ngram_params``) emits n-gram ids that a model (its config as a
    dict) does not expect. Table models read ``input_ids`` only; ``random_hash`` needs whole-token features."""
    embedding_type = model_fields.get("embedding_type", "dynamic")
    want = {field: model_fields.get(field) for field in NGRAM_FIELDS}
    want["feature_type"] = "whole_token" if embedding_type == "random_hash" else "ngram"
    for field, expected in want.items():
        if (got := tokenizer_fields.get(field)) != expected and embedding_type not in ("table", "hash_init"):
            raise ValueError(f"tokenizer and model disagree on {field}: the model (embedding_type={embedding_type!r}) "
                             f"expects {expected!r}, the tokenizer produces {got!r}. Load the tokenizer saved with "
                             f"this model, or build one with EELBertTokenizer.from_pretrained(..., {field}={expected!r})")
