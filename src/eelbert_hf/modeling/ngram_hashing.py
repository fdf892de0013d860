"""The EELBERT n-gram hash, scheme ``eelbert-ngram-v1``: every constant and rule of it, in pure Python.

The tokenizer half (``token_ngram_ids``) maps a token string to n-gram ids; the model half
(``modeling/ngram_embedding.py``) maps each id to a vector with ``hash_constants``. Both folders import this file
(``modeling/`` links to it; a Hub folder holds it once); ``docs/hash-spec.md`` restates it, ``tests/golden/`` pins it.
"""

import re

HASH_SCHEME = "eelbert-ngram-v1"  # a change to anything below changes the ids, and needs a new name
MAX_NGRAM_ID = 2**31 - 2  # ids are 1 + (hash mod MAX_NGRAM_ID): 1 ..= 2**31 - 2; 0 marks an empty slot
MAX_NGRAMS_LIMIT = 128  # the model's float32 pooling is exact for at most 128 n-grams per token
# The fields that tokenizer and model share, with their defaults (a model's config holds all but feature_type).
NGRAM_DEFAULTS = dict(hash_scheme=HASH_SCHEME, ngram_min_n=1, ngram_max_n=3, max_ngrams_per_token=48,
                      token_format="wordpiece")
NGRAM_FIELDS = tuple(NGRAM_DEFAULTS)
# "ngram": character n-grams (EELBERT); "whole_token": one hashed atom per token (the random_hash ablation).
FEATURE_TYPES = ("ngram", "whole_token")
# How a vocabulary marks word starts and pieces, i.e. how its token strings become symbols (step 2 below).
TOKEN_FORMATS = ("wordpiece", "metaspace", "byte_level", "plain")
METASPACE = "\u2581"  # SentencePiece's word-start character
BYTE_FALLBACK = re.compile(r"<0x([0-9A-F]{2})>")  # SentencePiece's piece for one raw byte
MASK64 = 2**64 - 1
WORD_START = b"\xff"  # never a byte of valid UTF-8, so it can't collide with text
ATOM_TAG = b"\xfe"  # never a byte of valid UTF-8 either
RAW_BYTE = b"\xfd"  # neither: tags a byte that is not a character by itself (the raw byte 0xFF is not WORD_START)


def _byte_level_alphabet() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte: printable Latin-1 bytes stand for themselves, the other 68
    bytes for the characters U+0100 onwards in byte order (so the space 0x20 is "Ġ", U+0120)."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    others = [b for b in range(256) if b not in printable]
    return {**{chr(b): b for b in printable}, **{chr(0x100 + i): b for i, b in enumerate(others)}}


BYTE_OF = _byte_level_alphabet()


def utf8_symbols(data: bytes) -> list[bytes]:
    """Byte-level pieces may hold part of a UTF-8 character: each complete, valid UTF-8 character is one symbol,
    and every other byte the symbol ``RAW_BYTE + byte`` (tagged, so it equals neither a character nor a marker)."""
    symbols, i = [], 0
    while i < len(data):
        width = 1 if data[i] < 0xC0 else 2 if data[i] < 0xE0 else 3 if data[i] < 0xF0 else 4
        piece = data[i : i + width]
        try:
            valid = len(piece) == width and len(piece.decode("utf-8")) == 1
        except UnicodeDecodeError:
            valid = False
        symbols.append(piece if valid else RAW_BYTE + data[i : i + 1])
        i += len(piece) if valid else 1
    return symbols


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


def token_symbols(token: str, token_format: str = "wordpiece") -> list[bytes]:
    """Step 2: a token string as the byte strings of its symbols, with ``WORD_START`` first where the vocabulary
    marks the token as the start of a word. A code point is its UTF-8 (a lone surrogate: its surrogatepass form).

    - ``wordpiece`` (WordPiece, and BPE with the ``##`` continuation prefix): ``##xyz`` (longer than 2 characters)
      is a continuation, ``x, y, z``; any other ``xyz`` starts a word. So ``run`` and ``##run`` share
      ``r, u, n, ru, un, run`` only.
    - ``metaspace`` (SentencePiece, Unigram or BPE): a leading ``▁`` is the word start; a byte-fallback piece
      ``<0xHH>`` is the byte HH, grouped by ``utf8_symbols`` (an ASCII byte is its character).
    - ``byte_level`` (GPT-2/RoBERTa-style BPE): each character stands for one byte (``Ġ`` for the space, see
      ``BYTE_OF``; a character outside that alphabet, as in an added token, for its own UTF-8); a leading space
      byte is the word start; the bytes group into symbols by ``utf8_symbols``.
    - ``plain``: the code points, no word-start marker (a vocabulary that marks neither starts nor pieces).
    """
    def code_points(text):
        return [c.encode("utf-8", "surrogatepass") for c in text]

    if token_format == "wordpiece":
        if token.startswith("##") and len(token) > 2:
            return code_points(token[2:])
        return [WORD_START] + code_points(token)
    if token_format == "metaspace":
        if match := BYTE_FALLBACK.fullmatch(token):
            return utf8_symbols(bytes([int(match.group(1), 16)]))
        return [WORD_START] + code_points(token[1:]) if token.startswith(METASPACE) else code_points(token)
    if token_format == "byte_level":
        data = b"".join(bytes([BYTE_OF[c]]) if c in BYTE_OF else c.encode("utf-8", "surrogatepass") for c in token)
        return [WORD_START] + utf8_symbols(data[1:]) if data[:1] == b" " else utf8_symbols(data)
    return code_points(token)


def token_ngrams(token: str, *, ngram_min_n: int = 1, ngram_max_n: int = 3, max_ngrams_per_token: int = 48,
                 token_format: str = "wordpiece", atom: bool = False, whole_token: bool = False) -> list[bytes]:
    """The byte strings whose hashes are the n-gram ids of one token, in four steps:

    1. Atoms: if ``atom`` (special tokens), ``whole_token`` (the ``random_hash`` ablation) or, in the ``wordpiece``
       format, the token is bracketed and longer than 2 characters (``[CLS]``, ``[unused7]``), the result is
       ``[0xFE + UTF-8(token)]``.
    2. Symbols: ``token_symbols(token, token_format)``; the word-start marker is the byte 0xFF.
    3. N-grams: for n = ngram_min_n .. ngram_max_n, each start from left to right, the n symbols' bytes joined;
       repeats are kept (pooling weighs them by count).
    4. Truncation: the first ``max_ngrams_per_token`` are kept, so long words lose their longest n-grams first.
    """
    bracketed = token_format == "wordpiece" and len(token) > 2 and token[0] == "[" and token[-1] == "]"
    if atom or whole_token or bracketed:
        return [ATOM_TAG + token.encode("utf-8", "surrogatepass")]
    symbols = token_symbols(token, token_format)
    ngrams = []
    for n in range(ngram_min_n, ngram_max_n + 1):
        for start in range(len(symbols) - n + 1):
            if len(ngrams) == max_ngrams_per_token:
                return ngrams
            ngrams.append(b"".join(symbols[start : start + n]))
    return ngrams


def token_ngram_ids(token: str, **params) -> list[int]:
    """The n-gram ids of one token: ``ngram_hash_id`` of each of ``token_ngrams(token, **params)``."""
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


def check_ngram_params(hash_scheme, ngram_min_n, ngram_max_n, max_ngrams_per_token, token_format="wordpiece",
                       feature_type="ngram") -> None:
    """Raise a ``ValueError`` that names the bad n-gram field (tokenizer and config both call this)."""
    if hash_scheme != HASH_SCHEME:
        raise ValueError(f"hash_scheme {hash_scheme!r} is not known to this code, which implements {HASH_SCHEME!r}: "
                         "load it with the code version that wrote it")
    if not (type(ngram_min_n) is int and type(ngram_max_n) is int and 1 <= ngram_min_n <= ngram_max_n):
        raise ValueError(f"need integers 1 <= ngram_min_n <= ngram_max_n, got {ngram_min_n!r} and {ngram_max_n!r}")
    if not (type(max_ngrams_per_token) is int and 1 <= max_ngrams_per_token <= MAX_NGRAMS_LIMIT):
        raise ValueError(f"max_ngrams_per_token must be an integer in 1..{MAX_NGRAMS_LIMIT}, "
                         f"got {max_ngrams_per_token!r}")
    if token_format not in TOKEN_FORMATS:
        raise ValueError(f"token_format must be one of {TOKEN_FORMATS}, got {token_format!r}")
    if feature_type not in FEATURE_TYPES:
        raise ValueError(f"feature_type must be one of {FEATURE_TYPES}, got {feature_type!r}")


def check_compatible(model_fields: dict, tokenizer_fields: dict) -> None:
    """Raise a ``ValueError`` if a tokenizer (its ``ngram_params``, and ``vocab_size``: its length) emits n-gram ids
    or token ids that a model (its config as a dict) does not expect. Table models read ``input_ids`` only;
    ``random_hash`` needs whole-token features."""
    size, model_size = tokenizer_fields.get("vocab_size"), model_fields.get("vocab_size")
    if size is not None and model_size is not None and size > model_size:  # token ids past the model's range
        raise ValueError(f"the tokenizer has {size} tokens but the model's vocab_size is {model_size}: load the "
                         f"tokenizer saved with this model, or build the model with vocab_size={size} (len(tokenizer))")
    embedding_type = model_fields.get("embedding_type", "dynamic")
    want = {field: model_fields.get(field) for field in NGRAM_FIELDS}
    want["feature_type"] = "whole_token" if embedding_type == "random_hash" else "ngram"
    for field, expected in want.items():
        if (got := tokenizer_fields.get(field)) != expected and embedding_type not in ("table", "hash_init"):
            raise ValueError(f"tokenizer and model disagree on {field}: the model (embedding_type={embedding_type!r}) "
                             f"expects {expected!r}, the tokenizer produces {got!r}. Load the tokenizer saved with "
                             f"this model, or build one with EELBertTokenizer.from_pretrained(..., {field}={expected!r})")
