"""Scheme eelbert-ngram-v1 (docs/hash-spec.md) against tests/golden/ngram_hash_v1.json.

Part (a) re-implements the spec from the doc alone, without importing the package's hash modules, so
a change to either the code or the golden file is caught by two independent implementations.
"""

import json
import os
import pathlib
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

GOLDEN = json.loads((pathlib.Path(__file__).parent / "golden" / "ngram_hash_v1.json").read_text())
PARAMS = GOLDEN["params"]
M64, P, S = 2**64 - 1, 2**31 - 1, 2**17 - 1
EMBED_CASES = GOLDEN["embeddings"]
EMBED_IDS = [str(e["token"]) for e in EMBED_CASES]


# ---------------------------------------------------------------- (a) independent re-implementation
def spec_hash_id(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & M64
    for mult in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        h ^= h >> 33
        h = (h * mult) & M64
    h ^= h >> 33
    return 1 + h % (2**31 - 2)


def spec_ngram_ids(token: str, atom: bool, min_n=1, max_n=3, limit=48, whole_token=False) -> list[int]:
    utf8 = lambda s: s.encode("utf-8", "surrogatepass")  # noqa: E731
    if atom or whole_token or (len(token) > 2 and token[0] == "[" and token[-1] == "]"):
        return [spec_hash_id(b"\xfe" + utf8(token))]
    symbols = [utf8(c) for c in token[2:]] if token.startswith("##") and len(token) > 2 \
        else [b"\xff"] + [utf8(c) for c in token]
    grams = [b"".join(symbols[i : i + n]) for n in range(min_n, max_n + 1) for i in range(len(symbols) - n + 1)]
    return [spec_hash_id(g) for g in grams[:limit]]


def spec_splitmix64(seed: int, count: int) -> list[int]:
    state, out = seed, []
    for _ in range(count):
        state = (state + 0x9E3779B97F4A7C15) & M64
        z = ((state ^ (state >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        out.append(z ^ (z >> 31))
    return out


def spec_constants(seed: int, dim: int):
    r = spec_splitmix64(seed, 2 * dim)
    return [1 + x % (P - 1) for x in r[0::2]], [x % P for x in r[1::2]]


def spec_embedding(ids: list[int], dim: int, seed: int) -> np.ndarray:
    a, b = spec_constants(seed, dim)
    ids = [i for i in ids if i != 0]
    sums = [sum(2 * ((a[j] * i + b[j]) % P % 2**17) - S for i in ids) for j in range(dim)]  # exact integers
    return np.array(sums, dtype=np.float32) / np.float32(max(len(ids), 1) * S)  # one float32 division


def spec_embedding_numpy(ngram_ids: np.ndarray, dim: int, seed: int) -> np.ndarray:
    """Vectorised model half in numpy int64 / float32, summed in float32 in numpy's own order."""
    a, b = (np.array(c, dtype=np.int64) for c in spec_constants(seed, dim))
    x = (ngram_ids[..., None] * a + b) % P
    values = np.where(ngram_ids[..., None] != 0, (2 * (x % 2**17) - S).astype(np.float32), np.float32(0))
    counts = np.maximum((ngram_ids != 0).sum(-1, keepdims=True), 1)
    return values.sum(-2, dtype=np.float32) / (counts * S).astype(np.float32)


def golden_bits(case) -> np.ndarray:
    return np.array([int(h, 16) for h in case["values_hex"]], dtype=np.uint32)


def test_golden_file_sanity():
    assert GOLDEN["hash_scheme"] == "eelbert-ngram-v1"
    assert PARAMS == {"ngram_min_n": 1, "ngram_max_n": 3, "max_ngrams_per_token": 48, "whole_token": False}
    assert len(GOLDEN["tokens"]) >= 22
    tokens = {t["token"] for t in GOLDEN["tokens"]}
    assert {"##ing", "[CLS]", "[unused0]", "\ud800", "##", "a", "😀"} <= tokens
    assert any(len(t["ngram_ids"]) == PARAMS["max_ngrams_per_token"] for t in GOLDEN["tokens"])
    assert any(e["ngram_ids"] == [] for e in EMBED_CASES)
    for case in EMBED_CASES:  # the decimal values and the hex bit patterns describe the same float32s
        assert np.array_equal(np.array(case["values"], dtype=np.float32).view(np.uint32), golden_bits(case))


def test_spec_hash_ids_match_golden():
    for entry in GOLDEN["ngram_hash_ids"]:
        assert spec_hash_id(bytes.fromhex(entry["bytes_hex"])) == entry["id"], entry["bytes_hex"]


@pytest.mark.parametrize("entry", GOLDEN["tokens"], ids=lambda t: ascii(t["token"]))
def test_spec_token_ids_match_golden(entry):
    ids = spec_ngram_ids(entry["token"], entry["atom"], PARAMS["ngram_min_n"], PARAMS["ngram_max_n"],
                         PARAMS["max_ngrams_per_token"], PARAMS["whole_token"])
    assert ids == entry["ngram_ids"]


def test_spec_model_constants_match_golden():
    sm, hc = GOLDEN["splitmix64"], GOLDEN["hash_constants"]
    assert spec_splitmix64(sm["seed"], len(sm["first"])) == sm["first"]
    assert sm["first"][0] == 0xE220A8397B1DCDAF  # SplitMix64's published first output for seed 0
    assert spec_constants(hc["seed"], hc["dim"]) == (hc["a"], hc["b"])


@pytest.mark.parametrize("case", EMBED_CASES, ids=EMBED_IDS)
def test_spec_embeddings_match_golden_bits(case):
    got = spec_embedding(case["ngram_ids"], case["hidden_size"], case["ngram_seed"])
    assert np.array_equal(got.view(np.uint32), golden_bits(case))
    padded = np.array(case["ngram_ids"] + [0] * (PARAMS["max_ngrams_per_token"] - len(case["ngram_ids"])))
    got_np = spec_embedding_numpy(padded[None], case["hidden_size"], case["ngram_seed"])[0]
    assert np.array_equal(got_np.view(np.uint32), golden_bits(case))


# ---------------------------------------------------------------- (b) the package's tokenizer half
@pytest.mark.parametrize("entry", GOLDEN["tokens"], ids=lambda t: ascii(t["token"]))
def test_package_token_ngram_ids_match_golden(entry):
    from eelbert_hf.modeling.ngram_hashing import token_ngram_ids

    assert token_ngram_ids(entry["token"], atom=entry["atom"], **PARAMS) == entry["ngram_ids"]


def test_package_ngram_hash_id_matches_golden():
    from eelbert_hf.modeling.ngram_hashing import ngram_hash_id

    for entry in GOLDEN["ngram_hash_ids"]:
        assert ngram_hash_id(bytes.fromhex(entry["bytes_hex"])) == entry["id"]


# ---------------------------------------------------------------- (c) the package's model half
def make_module(hidden_size=8, ngram_seed=0):
    from eelbert_hf.modeling.ngram_embedding import DynamicNgramEmbeddings

    return DynamicNgramEmbeddings(types.SimpleNamespace(hidden_size=hidden_size, ngram_seed=ngram_seed, vocab_size=30522, ngram_weight_buckets=0))


def test_package_constants_match_golden():
    from eelbert_hf.modeling.ngram_hashing import hash_constants, splitmix64

    sm, hc = GOLDEN["splitmix64"], GOLDEN["hash_constants"]
    assert splitmix64(sm["seed"], len(sm["first"])) == sm["first"]
    assert hash_constants(hc["seed"], hc["dim"]) == (hc["a"], hc["b"])


@pytest.mark.parametrize("case", EMBED_CASES, ids=EMBED_IDS)
def test_package_embeddings_match_golden_bits(case):
    module = make_module(case["hidden_size"], case["ngram_seed"])
    row = case["ngram_ids"] + [0] * (PARAMS["max_ngrams_per_token"] - len(case["ngram_ids"]))
    with torch.no_grad():
        out = module(torch.tensor([[row]], dtype=torch.int64))[0, 0]
    assert out.dtype == torch.float32
    expected = torch.from_numpy(golden_bits(case).view(np.int32))
    assert torch.equal(out.view(torch.int32), expected)


def test_numpy_model_half_is_bit_identical_to_torch():
    rng = np.random.default_rng(1234)
    ids = rng.integers(1, 2**31 - 1, size=(3, 5, 48), dtype=np.int64)  # up to MAX_NGRAM_ID = 2**31 - 2
    ids[rng.random(ids.shape) < 0.4] = 0  # scattered empty slots, not only trailing ones
    ids[0, 0] = 0  # an all-padding row
    ids[1, 1, 1:] = 0  # a single n-gram
    ids[2, 2] = ids[2, 2, 0]  # one n-gram repeated 48 times
    ids[2, 3] = 2**31 - 2  # the largest id, 48 times
    module = make_module(hidden_size=16, ngram_seed=7)
    with torch.no_grad():
        got = module(torch.from_numpy(ids))
    expected = torch.from_numpy(spec_embedding_numpy(ids, 16, 7))
    assert got.dtype == expected.dtype == torch.float32
    assert torch.equal(got, expected)
    assert torch.equal(got.view(torch.int32), expected.view(torch.int32))  # also distinguishes -0.0 from +0.0
    assert torch.equal(got[0, 0].view(torch.int32), torch.zeros(16, dtype=torch.int32))  # +0.0, not -0.0
    for b, s in [(1, 1), (2, 2), (0, 4)]:
        scalar = spec_embedding(ids[b, s].tolist(), 16, 7)
        assert np.array_equal(got[b, s].numpy().view(np.uint32), scalar.view(np.uint32))


# ---------------------------------------------------------------- (d) no dependence on PYTHONHASHSEED
HASHSEED_TOKENS = ["run", "##ing", "[CLS]", "café", "😀", "[unused0]"]


def test_ids_independent_of_pythonhashseed():
    from eelbert_hf.modeling.ngram_hashing import token_ngram_ids

    script = ("import json; from eelbert_hf.modeling.ngram_hashing import token_ngram_ids; "
              f"print(json.dumps([token_ngram_ids(t) for t in {HASHSEED_TOKENS!r}]))")
    in_process = [token_ngram_ids(t) for t in HASHSEED_TOKENS]
    outputs = []
    for seed in ("1", "2"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        outputs.append(json.loads(result.stdout))
    assert outputs[0] == outputs[1] == in_process


# ---------------------------------------------------------------- (e) value and id ranges
def test_value_and_id_ranges():
    from eelbert_hf.modeling.ngram_hashing import VALUE_SCALE

    all_ids = [i for t in GOLDEN["tokens"] for i in t["ngram_ids"]]
    assert all(1 <= i <= 2**31 - 2 for i in all_ids)
    module = make_module(hidden_size=64, ngram_seed=3)
    rng = np.random.default_rng(0)
    ids = torch.tensor(all_ids + [1, 2**31 - 2] + rng.integers(1, 2**31 - 1, 2000).tolist(), dtype=torch.int64)
    values = module.ngram_values(ids)
    assert values.dtype == torch.float32
    assert bool(((values / VALUE_SCALE).abs() <= 1).all())
    assert bool((torch.remainder(values, 2) == 1).all())  # odd integers: never exactly zero
    assert bool((module.ngram_values(torch.tensor([0])) == 0).all())  # the empty slot


# ---------------------------------------------------------------- (f) one file holds the spec for both halves
def test_both_halves_read_one_spec_file():
    import eelbert_hf.modeling.ngram_hashing as model_side
    from eelbert_hf import EELBertConfig, EELBertTokenizer
    import eelbert_hf.tokenization.tokenization_eelbert as tokenizer_module

    # the tokenizer's `.ngram_hashing` is the model's module itself, not a second copy of the file
    assert sys.modules[tokenizer_module.check_ngram_params.__module__] is model_side
    assert tokenizer_module.token_ngram_ids is model_side.token_ngram_ids
    assert model_side.HASH_SCHEME == GOLDEN["hash_scheme"]
    assert EELBertConfig().hash_scheme == EELBertTokenizer.from_bundled_vocab().hash_scheme == GOLDEN["hash_scheme"]


def test_no_symlink_in_the_repository():
    # a Windows checkout turns a git symlink into a one-line text file, and the package would not import
    root = pathlib.Path(__file__).parents[1]
    if not (root / ".git").exists():
        pytest.skip("the tests run outside a git checkout: no index to read the file modes from")
    listing = subprocess.run(["git", "ls-files", "-s"], cwd=root, capture_output=True, text=True, check=True).stdout
    assert [line for line in listing.splitlines() if line.startswith("120000")] == []


# ---------------------------------------------------------------- (g) token formats beyond WordPiece
FORMATS = json.loads((pathlib.Path(__file__).parent / "golden" / "ngram_token_formats.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("entry", FORMATS["tokens"], ids=lambda e: f"{e['token_format']}:{e['token']!r}")
def test_package_token_formats_match_golden(entry):
    from eelbert_hf.modeling.ngram_hashing import token_symbols

    params = {k: v for k, v in FORMATS["params"].items() if k != "whole_token"}
    assert [s.hex() for s in token_symbols(entry["token"], entry["token_format"])] == entry["symbols_hex"]
    assert token_ngram_ids_of(entry["token"], token_format=entry["token_format"], **params) == entry["ngram_ids"]


def token_ngram_ids_of(token, **params):
    from eelbert_hf.modeling.ngram_hashing import token_ngram_ids

    return token_ngram_ids(token, **params)


def byte_level_alphabet():
    from eelbert_hf.modeling.ngram_hashing import BYTE_OF

    return BYTE_OF


@pytest.mark.parametrize("word", ["run", "café", "中文", "😀"])
def test_a_word_start_hashes_alike_in_every_format_that_marks_it(word):
    """The formats differ only in how a vocabulary spells a word start or a piece: the same word start (and the same
    continuation piece) gets the same n-gram ids, so features mean the same across vocabularies."""
    byte_level = "".join({b: c for c, b in byte_level_alphabet().items()}[b] for b in (" " + word).encode("utf-8"))
    start = token_ngram_ids_of(word)
    assert token_ngram_ids_of("\u2581" + word, token_format="metaspace") == start
    assert token_ngram_ids_of(byte_level, token_format="byte_level") == start
    piece = token_ngram_ids_of("##" + word)
    assert token_ngram_ids_of(word, token_format="metaspace") == piece
    assert token_ngram_ids_of(byte_level[1:], token_format="byte_level") == piece
    assert token_ngram_ids_of(word, token_format="plain") == piece


def test_the_byte_level_alphabet_is_gpt2s():
    """256 characters for 256 bytes; printable Latin-1 stands for itself, the space is "Ġ" and the newline "Ċ"."""
    table = byte_level_alphabet()
    assert sorted(table.values()) == list(range(256)) and len(table) == 256
    assert table["Ġ"] == 0x20 and table["Ċ"] == 0x0A and table["a"] == 0x61 and table["é"] == 0xE9


def test_partial_utf8_characters_are_tagged_raw_byte_symbols():
    from eelbert_hf.modeling.ngram_hashing import RAW_BYTE, utf8_symbols

    euro = "€".encode("utf-8")  # E2 82 AC
    assert utf8_symbols(euro) == [euro]
    assert utf8_symbols(euro[:2]) == [RAW_BYTE + b"\xe2", RAW_BYTE + b"\x82"]  # a lead byte without its last byte
    assert utf8_symbols(euro[1:] + b"a") == [RAW_BYTE + b"\x82", RAW_BYTE + b"\xac", b"a"]
    assert utf8_symbols(b"\xed\xa0\x80") == [RAW_BYTE + bytes([b]) for b in b"\xed\xa0\x80"]  # a surrogate: not UTF-8
    assert utf8_symbols(b"\xc0\xaf") == [RAW_BYTE + b"\xc0", RAW_BYTE + b"\xaf"]  # nor is an overlong form


@pytest.mark.parametrize("token_format, raw_ff, marker", [("byte_level", "ÿ", "Ġ"), ("metaspace", "<0xFF>", "▁")])
def test_the_raw_byte_0xff_is_not_the_word_start_marker(token_format, raw_ff, marker):
    """The word-start marker is the byte 0xFF; a piece that is the raw byte 0xFF (GPT-2's "ÿ", SentencePiece's
    byte fallback <0xFF>) is tagged, so the two tokens no longer share their n-gram ids."""
    from eelbert_hf.modeling.ngram_hashing import token_ngram_ids

    assert token_ngram_ids(raw_ff, token_format=token_format) != token_ngram_ids(marker, token_format=token_format)
    # and an ASCII byte-fallback piece is the character itself
    assert token_ngram_ids("<0x41>", token_format="metaspace") == token_ngram_ids("A", token_format="metaspace")


@pytest.mark.parametrize("bad", ["bpe", "", None])
def test_unknown_token_format_is_refused_by_config(bad):
    from eelbert_hf import EELBertConfig

    with pytest.raises(ValueError, match="token_format"):
        EELBertConfig(token_format=bad)


@pytest.mark.parametrize("bad", ["bpe", ""])
def test_unknown_token_format_is_refused_by_tokenizer(bad):
    from eelbert_hf import EELBertTokenizer

    with pytest.raises(ValueError, match="token_format"):
        EELBertTokenizer.from_bundled_vocab(token_format=bad)


def test_tokenizer_without_token_format_takes_the_base_s_own():
    """None (or leaving it out) means the format the base tokenizer's pieces are written in."""
    from eelbert_hf import EELBertTokenizer

    assert EELBertTokenizer.from_bundled_vocab(token_format=None).token_format == "wordpiece"


def test_a_wordpiece_vocabulary_takes_the_wordpiece_format_only():
    from eelbert_hf import EELBertTokenizer

    with pytest.raises(ValueError, match="does not fit this vocabulary, whose tokens are in the 'wordpiece' format"):
        EELBertTokenizer.from_bundled_vocab(token_format="metaspace")
