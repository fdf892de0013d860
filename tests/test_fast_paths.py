"""Fast paths against their references, by behaviour: `DynamicNgramEmbeddings.forward(ngram_ids, input_ids)` (its
per-token table) is bit-identical to `reference` under every mutation a user makes, and the tokenizer's lazily filled
table equals `token_ngram_ids` applied per token. No timing here: speed lives in `benchmarks/`."""

import threading

import pytest
import torch

from conftest import SENTENCES, small_config
from eelbert_hf import EELBertForMaskedLM, EELBertForSequenceClassification, EELBertModel, EELBertTokenizer
from eelbert_hf.modeling.ngram_embedding import DynamicNgramEmbeddings

PURE = small_config(ngram_weight_buckets=0)  # the hash alone, without the learned n-gram gates

TEXTS = SENTENCES + [
    "A taut, intelligent psychological drama.",
    "Bisset delivers a game performance, but she is unable to save the movie.",
    "Edie Falco sparkles as a mermaid on dry land; supercalifragilisticexpialidocious!",
]


@pytest.fixture(scope="module")
def batches(tokenizer):
    """Overlapping (ngram_ids, input_ids) batches: shared tokens, padding rows, different lengths."""
    encoded = [tokenizer(texts, padding=True, return_tensors="pt") for texts in (TEXTS[:3], TEXTS[2:], TEXTS,
                                                                                    TEXTS[::-1][:2])]
    return [(e["ngram_ids"], e["input_ids"]) for e in encoded]


def assert_matches_reference(module, ngram_ids, input_ids):
    out = module(ngram_ids, input_ids)
    assert torch.equal(out, module.reference(ngram_ids))
    return out


def held_bytes(module) -> int:
    """Bytes of the tensors a module holds outside its parameters and buffers."""
    tensors = [v for k, v in vars(module).items() if isinstance(v, torch.Tensor) and not k.startswith("_parameters")]
    return sum(t.numel() * t.element_size() for t in tensors)


def test_fast_path_is_bit_identical_to_reference(batches):
    module = DynamicNgramEmbeddings(PURE)
    for _ in range(2):  # cold, partly warm, fully warm
        for ngram_ids, input_ids in batches:
            out = assert_matches_reference(module, ngram_ids, input_ids)
            assert out.dtype == torch.float32 and out.shape == (*ngram_ids.shape[:2], 32)
    assert torch.equal(module(batches[0][0]), module.reference(batches[0][0]))  # without input_ids


def test_same_token_id_with_other_features(batches):
    """A row that differs from the stored one for that token id in a single slot must not get the stored vector."""
    module = DynamicNgramEmbeddings(PURE)
    ngram_ids, input_ids = batches[0]
    before = module(ngram_ids, input_ids)
    changed = ngram_ids.clone()
    changed[0, 1, 3] = changed[0, 1, 3] % (2**31 - 2) + 1  # same token id, one n-gram id different
    changed[0, 2, -1] = 12345  # a slot that was padding now holds an id
    assert not torch.equal(assert_matches_reference(module, changed, input_ids)[0, 1], before[0, 1])
    assert torch.equal(module(ngram_ids, input_ids), before)  # and the original rows still get their own
    other_ids = input_ids.flip(1)  # every row under another token's id
    assert_matches_reference(module, ngram_ids, other_ids)


def test_token_ids_outside_the_vocabulary_still_match(batches):
    module = DynamicNgramEmbeddings(PURE)
    ngram_ids, input_ids = batches[0]
    for ids in (input_ids + PURE.vocab_size, input_ids - input_ids.max() - 1, input_ids):
        assert_matches_reference(module, ngram_ids, ids)


@pytest.mark.parametrize("bad", [-1, 2**31 - 1])
def test_out_of_range_ids_are_refused_whatever_the_table_holds(batches, bad):
    """The model refuses a bad row on a cold table, next to stored rows, under a stored token's id, with the table off
    and without input_ids."""
    ngram_ids, input_ids = batches[0]
    cold, warm, off = (EELBertModel(PURE).eval() for _ in range(3))
    warm(ngram_ids=ngram_ids, input_ids=input_ids)
    off.embeddings.ngram_embeddings.cache_bytes = 0
    rows = torch.full((1, 2, 48), bad, dtype=torch.int64)
    mixed = ngram_ids.clone()
    mixed[0, 1, 0] = bad
    for model, bad_ids, ids in ((cold, rows, input_ids[:1, :2]), (warm, rows, input_ids[:1, :2]),
                                (warm, mixed, input_ids), (off, rows, input_ids[:1, :2]), (warm, rows, None)):
        with pytest.raises(ValueError, match=r"must lie in \[0, 2147483646\]"):
            model(ngram_ids=bad_ids, input_ids=ids)
    assert_matches_reference(warm.embeddings.ngram_embeddings, ngram_ids, input_ids)  # still answers good rows


def test_memory_is_bounded(batches):
    module = DynamicNgramEmbeddings(PURE)
    module.cache_bytes = 8 * PURE.vocab_size + 5 * (8 * 48 + 4 * 32)  # the id index and five rows
    for ngram_ids, input_ids in batches * 2:
        assert_matches_reference(module, ngram_ids, input_ids)
        assert held_bytes(module) <= module.cache_bytes
    for off in (0, 1000):  # off, and a budget too small for the per-token-id slots themselves
        module.cache_bytes = off
        module.clear_cache()
        assert_matches_reference(module, *batches[1])
        assert held_bytes(module) == 0


def test_table_fills_and_then_answers_everything(monkeypatch):
    """Enough distinct tokens to grow the table twice; afterwards every row is answered without the reference."""
    module = DynamicNgramEmbeddings(PURE)
    generator = torch.Generator().manual_seed(0)
    input_ids = torch.randperm(PURE.vocab_size, generator=generator)[:1000].view(10, 100)
    ngram_ids = torch.randint(1, 2**31 - 1, (10, 100, 48), generator=generator)
    ngram_ids[:, :, 20:] = 0  # padded rows, as from the tokenizer
    for ngram_batch, id_batch in zip(ngram_ids.split(3), input_ids.split(3)):
        assert_matches_reference(module, ngram_batch, id_batch)
    expected = module.reference(ngram_ids)
    monkeypatch.setattr(module, "reference", None)  # a miss would call it and fail
    assert torch.equal(module(ngram_ids, input_ids), expected)


def test_concurrent_calls(batches):
    module, errors = DynamicNgramEmbeddings(PURE), []

    def work(offset):
        for i in range(40):
            ngram_ids, input_ids = batches[(i + offset) % len(batches)]
            if not torch.equal(module(ngram_ids, input_ids), module.reference(ngram_ids)):
                errors.append(offset)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_dtype_moves_and_new_constants(batches):
    module = DynamicNgramEmbeddings(small_config(ngram_weight_buckets=64))
    with torch.no_grad():
        module.bucket_weights.uniform_(-0.005, 0.005, generator=torch.Generator().manual_seed(0))
        for move in (lambda m: m.half(), lambda m: m.to(torch.float64), lambda m: m.float()):
            assert_matches_reference(module, *batches[0])
            move(module)
            assert_matches_reference(module, *batches[0])
        module.ngram_seed = 7  # new constants: stored vectors are stale
        module.reset_constants()
        fresh = DynamicNgramEmbeddings(small_config(ngram_seed=7, ngram_weight_buckets=64))
        fresh.bucket_weights.copy_(module.bucket_weights)
        assert torch.equal(module(*batches[0]), fresh.reference(batches[0][0]))


def test_gate_updates_in_place_and_with_gradients(batches):
    """Gates != 1: fast == reference; after an in-place gate update the old vectors are never answered; while the
    gates take gradients the output carries a graph to them."""
    module = DynamicNgramEmbeddings(small_config(ngram_weight_buckets=64))
    ngram_ids, input_ids = batches[0]
    with torch.no_grad():
        module.bucket_weights.uniform_(-0.005, 0.005, generator=torch.Generator().manual_seed(0))
        before = assert_matches_reference(module, ngram_ids, input_ids)
        module.bucket_weights[ngram_ids[0, 1, 0] % 64] += 0.01  # in place, as an optimizer step would
        after = assert_matches_reference(module, ngram_ids, input_ids)
        assert not torch.equal(before, after)
    out = module(ngram_ids, input_ids)  # grad mode, gates require grad
    out.sum().backward()
    assert module.bucket_weights.grad is not None and module.bucket_weights.grad.abs().sum() > 0


@pytest.mark.parametrize("update", ["fused AdamW", "foreach AdamW", ".data write"])
def test_gate_updates_that_skip_the_version_counter(batches, update):
    """Trainer's default optimizer (fused AdamW) and `.data` writes change the gates without bumping their version
    counter: evaluation after a training step must still see the new gates, not the embeddings stored before it."""
    ngram_ids, input_ids = batches[0]
    model = EELBertForSequenceClassification(small_config(num_labels=2, ngram_weight_buckets=64))
    module = model.bert.embeddings.ngram_embeddings
    with torch.no_grad():
        module.bucket_weights.uniform_(-0.005, 0.005, generator=torch.Generator().manual_seed(0))
    model.eval()
    with torch.no_grad():
        before = module(ngram_ids, input_ids)
    if update == ".data write":
        module.bucket_weights.data[ngram_ids[0, 1, 0] % 64] += 0.01
    else:
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, **{update.split()[0]: True})
        model.train()
        model(ngram_ids=ngram_ids, input_ids=input_ids, labels=torch.zeros(len(ngram_ids), dtype=torch.long)).loss.backward()
        optimizer.step()
        model.eval()
    with torch.no_grad():
        after = assert_matches_reference(module, ngram_ids, input_ids)
        assert not torch.equal(before, after)


def test_compiled_module_matches(batches):
    module = DynamicNgramEmbeddings(PURE)
    compiled = torch.compile(module, backend="eager")  # dynamo traces forward for real
    for ngram_ids, input_ids in batches[:2]:
        assert torch.equal(compiled(ngram_ids, input_ids), module.reference(ngram_ids))


def test_state_dict_unchanged_by_the_fast_path(tokenizer):
    model = EELBertModel(small_config()).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    buffers = [name for name, _ in model.named_buffers()]
    model(**tokenizer(TEXTS, padding=True, return_tensors="pt"))
    after = model.state_dict()
    assert list(after) == list(before) and all(torch.equal(before[k], after[k]) for k in before)
    assert [name for name, _ in model.named_buffers()] == buffers


def test_model_outputs_and_gradients_match_without_the_fast_path(tokenizer):
    """Train mode, with autograd: the stored embeddings carry no graph, and loss and gradients are identical."""
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    results = []
    for cache_bytes in (DynamicNgramEmbeddings.cache_bytes, 0):
        torch.manual_seed(0)
        model = EELBertForMaskedLM(small_config(ngram_weight_buckets=0)).train()
        model.bert.embeddings.ngram_embeddings.cache_bytes = cache_bytes
        for _ in range(2):  # the second call is answered from the table
            model.zero_grad()
            loss = model(**batch, labels=labels).loss
            loss.backward()
        results.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    (loss_a, grads_a), (loss_b, grads_b) = results
    assert torch.equal(loss_a, loss_b) and all(torch.equal(a, b) for a, b in zip(grads_a, grads_b))


def test_tokenizer_table_fill_equals_per_token_spec():
    """A fresh tokenizer's lazily filled table (added tokens included): a few ids one call at a time, then the rest
    of the vocabulary in one call."""
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    tokenizer.add_tokens(["naïvely", "[bracketed]", "##😀"])
    ids = list(range(len(tokenizer)))
    for token_id in ids[::997]:
        tokenizer.ngram_ids_for([token_id])
    table = tokenizer.ngram_ids_for(ids)
    for token_id, row in zip(ids, table.tolist()):
        expected = tokenizer.token_ngram_ids(tokenizer.convert_ids_to_tokens(token_id))
        assert row == expected + [0] * (48 - len(expected)), token_id
