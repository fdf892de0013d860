"""Fast paths against their references: the cached `DynamicNgramEmbeddings.forward` vs `reference` (bit for bit),
and the tokenizer's vectorised n-gram table fill vs `token_ngram_ids` applied per token. No timing here:
speed lives in `benchmarks/`."""

import numpy as np
import pytest
import torch

from conftest import SENTENCES, small_config
from eelbert_hf import EELBertForMaskedLM, EELBertForSequenceClassification, EELBertModel, EELBertTokenizer
from eelbert_hf.modeling.ngram_embedding import DynamicNgramEmbeddings
from eelbert_hf.tokenization.ngram_hashing import token_ngram_ids, token_ngram_ids_array

PURE = small_config(ngram_weight_buckets=0)  # the hash alone, without the learned n-gram gates

TEXTS = SENTENCES + [
    "A taut, intelligent psychological drama.",
    "Bisset delivers a game performance, but she is unable to save the movie.",
    "Edie Falco sparkles as a mermaid on dry land; supercalifragilisticexpialidocious!",
]


@pytest.fixture(scope="module")
def batches(tokenizer):
    """Overlapping batches of n-gram ids (shared tokens, padding rows, different lengths)."""
    return [tokenizer(texts, padding=True, return_tensors="pt")["ngram_ids"]
            for texts in (TEXTS[:3], TEXTS[2:], TEXTS, TEXTS[::-1][:2])]


def test_cached_forward_is_bit_identical_to_reference(batches):
    module = DynamicNgramEmbeddings(PURE)
    for _ in range(2):  # cold (empty cache), partly warm, fully warm
        for ngram_ids in batches:
            out = module(ngram_ids)
            assert torch.equal(out, module.reference(ngram_ids))
            assert out.dtype == torch.float32 and out.shape == (*ngram_ids.shape[:2], 32)
    assert module._cache is not None and len(module._cache.keys) > 1  # the cache was really used


def test_cache_is_keyed_on_the_row_not_the_token(batches):
    """A row that differs from a cached one in a single slot must not get the cached vector."""
    module = DynamicNgramEmbeddings(PURE)
    ngram_ids = batches[0]
    module(ngram_ids)
    changed = ngram_ids.clone()
    changed[0, 1, 3] = changed[0, 1, 3] % (2**31 - 2) + 1  # same "token", one n-gram id different
    changed[0, 2, -1] = 12345  # a slot that was padding now holds an id
    out = module(changed)
    assert torch.equal(out, module.reference(changed))
    assert not torch.equal(out[0, 1], module(ngram_ids)[0, 1])


@pytest.mark.parametrize("bad", [-1, 2**31 - 1])
def test_out_of_range_ids_are_refused_on_every_path(batches, bad):
    """The cached path checks only rows that miss: a row equal to the empty cache's sentinel (-1s), a bad row next to
    cached ones, and the uncached path must all raise, never answer with a stored vector."""
    cold, warm, off = (DynamicNgramEmbeddings(PURE) for _ in range(3))
    warm(batches[0])
    off.cache_bytes = 0
    rows = torch.full((1, 2, 48), bad, dtype=torch.int64)
    mixed = batches[0].clone()
    mixed[0, 1, 0] = bad
    for module, ngram_ids in ((cold, rows), (warm, rows), (warm, mixed), (off, rows)):
        with pytest.raises(ValueError, match=r"must lie in \[0, 2147483646\]"):
            module(ngram_ids)
    assert torch.equal(warm(batches[0]), warm.reference(batches[0]))  # still answers good rows


def test_fingerprint_collisions_stay_correct(batches):
    """With all-zero fingerprint weights every row has the same key: rows must still be verified one by one."""
    module = DynamicNgramEmbeddings(PURE)
    module(batches[0])
    cache = module._cache
    module._cache = cache._replace(weights=torch.zeros_like(cache.weights), keys=cache.keys * 0)
    for ngram_ids in batches:
        assert torch.equal(module(ngram_ids), module.reference(ngram_ids))
        assert len(module._cache.keys) == len(cache.keys)  # key 0 is taken: nothing more is cached


def test_cache_is_bounded(batches):
    module = DynamicNgramEmbeddings(PURE)
    module.cache_bytes = 5 * (8 * 48 + 4 * 32)  # room for five rows (the sentinel row included)
    for ngram_ids in batches:
        assert torch.equal(module(ngram_ids), module.reference(ngram_ids))
        assert len(module._cache.keys) == 5 and len(module._cache.rows) <= 5
    module.cache_bytes = 0  # off
    module.clear_cache()
    assert torch.equal(module(batches[1]), module.reference(batches[1])) and module._cache is None


def test_cache_grows_and_then_answers_everything():
    """Enough distinct rows to double the storage twice; afterwards every row is a hit and results still match."""
    module = DynamicNgramEmbeddings(PURE)
    generator = torch.Generator().manual_seed(0)
    ngram_ids = torch.randint(1, 2**31 - 1, (10, 100, 48), generator=generator)
    ngram_ids[:, :, 20:] = 0  # padded rows, as from the tokenizer
    ngram_ids[:, ::7] = ngram_ids[:1, ::7]  # and rows repeated across batches
    for batch in ngram_ids.split(3):
        assert torch.equal(module(batch), module.reference(batch))
    assert len(module._cache.keys) == 1 + len(torch.unique(ngram_ids.reshape(-1, 48), dim=0)) > 512
    expected, rows_before = module.reference(ngram_ids), module._cache.rows
    module.reference = None  # all hits from here: a miss would call it and fail
    assert torch.equal(module(ngram_ids), expected) and module._cache.rows is rows_before


def test_cache_under_concurrent_calls(batches):
    import threading

    module, errors = DynamicNgramEmbeddings(PURE), []

    def work(offset):
        for i in range(40):
            ngram_ids = batches[(i + offset) % len(batches)]
            if not torch.equal(module(ngram_ids), module.reference(ngram_ids)):
                errors.append(offset)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_cache_cleared_by_to_and_reset_constants(batches):
    module = DynamicNgramEmbeddings(PURE)
    module(batches[0])
    module.to(torch.float64)  # any _apply: .to(device), .half(), .cuda()
    assert module._cache is None
    module(batches[0])
    module.ngram_seed = 7  # new constants: cached vectors are stale
    module.reset_constants()
    assert module._cache is None
    assert torch.equal(module(batches[0]), DynamicNgramEmbeddings(small_config(ngram_seed=7, ngram_weight_buckets=0)).reference(batches[0]))


def test_cache_with_learned_gates(batches):
    """Gates != 1: cached == reference; after a gate update the cache never answers with the old vectors; while the
    gates take gradients the cache is not used at all."""
    module = DynamicNgramEmbeddings(small_config(ngram_weight_buckets=64))
    with torch.no_grad():
        module.bucket_weights.uniform_(-0.005, 0.005, generator=torch.Generator().manual_seed(0))
        for _ in range(2):
            for ngram_ids in batches:
                assert torch.equal(module(ngram_ids), module.reference(ngram_ids))
        before = module(batches[0])
        module.bucket_weights[batches[0][0, 1, 0] % 64] += 0.01  # in place, as an optimizer step would
        after = module(batches[0])
        assert not torch.equal(before, after) and torch.equal(after, module.reference(batches[0]))
    module.clear_cache()
    out = module(batches[1])  # grad mode, gates require grad: the uncached path, with a graph to the gates
    assert out.requires_grad and module._cache is None


@pytest.mark.parametrize("update", ["fused AdamW", "foreach AdamW", ".data write"])
def test_cache_follows_gate_updates_that_skip_the_version_counter(batches, update):
    """Trainer's default optimizer (fused AdamW) and `.data` writes change the gates without bumping their version
    counter: evaluation after a training step must still see the new gates, not the embeddings cached before it."""
    model = EELBertForSequenceClassification(small_config(num_labels=2, ngram_weight_buckets=64))
    module = model.bert.embeddings.ngram_embeddings
    with torch.no_grad():
        module.bucket_weights.uniform_(-0.005, 0.005, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        before = module(batches[0])  # fills the cache
    if update == ".data write":
        module.bucket_weights.data[batches[0][0, 1, 0] % 64] += 0.01
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, **{update.split()[0]: True})
        model.train()
        model(ngram_ids=batches[0], labels=torch.zeros(len(batches[0]), dtype=torch.long)).loss.backward()
        optimizer.step()
        model.eval()
    with torch.no_grad():
        after = module(batches[0])
        assert not torch.equal(before, after) and torch.equal(after, module.reference(batches[0]))


def test_cache_skipped_while_compiling(batches, monkeypatch):
    module = DynamicNgramEmbeddings(PURE)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    assert torch.equal(module(batches[0]), module.reference(batches[0]))
    assert module._cache is None
    monkeypatch.undo()
    compiled = torch.compile(module, backend="eager")  # dynamo traces forward for real
    assert torch.equal(compiled(batches[1]), module.reference(batches[1]))
    assert module._cache is None


def test_state_dict_unchanged_by_the_cache(tokenizer):
    model = EELBertModel(small_config()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = [name for name, _ in model.named_buffers()]
    model(**tokenizer(TEXTS, padding=True, return_tensors="pt"))
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert [name for name, _ in model.named_buffers()] == buffers
    assert not any("cache" in k for k in after)


def test_model_outputs_and_gradients_match_without_cache(tokenizer):
    """Train mode, with autograd: the cached embeddings carry no graph, and loss and gradients are identical."""
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    results = []
    for cache_bytes in (DynamicNgramEmbeddings.cache_bytes, 0):
        torch.manual_seed(0)
        model = EELBertForMaskedLM(small_config(ngram_weight_buckets=0)).train()
        model.bert.embeddings.ngram_embeddings.cache_bytes = cache_bytes
        for _ in range(2):  # the second call is answered from the cache
            model.zero_grad()
            loss = model(**batch, labels=labels).loss
            loss.backward()
        embedded = model.bert.embeddings.token_embeddings(ngram_ids=batch["ngram_ids"])
        assert not embedded.requires_grad
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b) and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


TRICKY_TOKENS = [
    "", "#", "##", "###", "##a", "[]", "[x]", "a]", "[a", "\ud800", "##\udfff", "😀", "##😀x", "👩‍👩‍👧", "naïve",
    "文字", "\x00", "a\x00", "ab\x00\x00", "\xff\xfe", "[MASK]", "runner", "##running", "x" * 17, "y" * 200,
    "##" + "é" * 70, "supercalifragilistic", "##ungefährlichkeiten", "антидисестаблишментарианизм", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢𝔰𝔱𝔯𝔦𝔫𝔤",
]


@pytest.mark.parametrize("params", [
    {},
    dict(ngram_min_n=2, ngram_max_n=5, max_ngrams_per_token=7),
    dict(ngram_min_n=1, ngram_max_n=1, max_ngrams_per_token=128),
    dict(ngram_min_n=3, ngram_max_n=4, max_ngrams_per_token=2),
    dict(whole_token=True),
])
def test_vectorised_ngram_ids_equal_the_spec_function(tokenizer, params):
    """The whole bundled vocabulary (numpy path) plus odd tokens, in groups big and small (per-token path)."""
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    if params:
        vocab = vocab[::7]  # the full vocabulary once (default parameters) is enough
    for tokens in (vocab + TRICKY_TOKENS, TRICKY_TOKENS[:5], TRICKY_TOKENS[-9:], ["x" * 17]):
        atoms = [token in ("[MASK]", "[PAD]", "runner") for token in tokens]  # "runner": an atom by request
        fast = token_ngram_ids_array(tokens, atoms, **params)
        width = params.get("max_ngrams_per_token", 48)
        assert fast.shape == (len(tokens), width) and fast.dtype == np.int64
        for token, atom, row in zip(tokens, atoms, fast.tolist()):
            expected = token_ngram_ids(token, atom=atom, **params)
            assert row == expected + [0] * (width - len(expected)), token


def test_tokenizer_table_fill_equals_per_token_spec():
    """A fresh tokenizer's lazily filled table (added tokens included): a few ids one call at a time (per-token
    path), then the rest of the vocabulary in one call (numpy path)."""
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    tokenizer.add_tokens(["naïvely", "[bracketed]", "##😀"])
    ids = np.arange(len(tokenizer))
    for token_id in ids[::997]:
        tokenizer.ngram_ids_for([token_id])
    table = tokenizer.ngram_ids_for(ids)
    for token_id, row in zip(ids.tolist(), table.tolist()):
        expected = tokenizer.token_ngram_ids(tokenizer.convert_ids_to_tokens(token_id))
        assert row == expected + [0] * (48 - len(expected)), token_id
