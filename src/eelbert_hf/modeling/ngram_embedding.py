"""Model half of the EELBERT n-gram hash, scheme ``eelbert-ngram-v1``: n-gram ids -> token embeddings.

EELBERT (Cohn et al., 2023, arXiv:2310.20144) computes each token's input embedding on the fly from the
hashes of its character n-grams, so the checkpoint stores no vocab_size x hidden_size table. The tokenizer
turns a token into n-gram ids; here every id becomes a vector in [-1, 1]^d by a seeded integer hash of
(id, dimension), and a token's embedding is the mean of its n-gram vectors. ``docs/hash-spec.md``
restates the spec for other languages.

Every step is exact integer arithmetic or a single correctly rounded float32 operation, so numpy, torch on
CPU or GPU and ONNX agree bit for bit:
- ``x = (a_j * id + b_j) mod P`` with P = 2**31 - 1: products stay below 2**62, no int64 overflow;
- the vector value is the odd integer ``2 * (x mod 2**17) - (2**17 - 1)``, later divided by 2**17 - 1;
- a token sums at most 128 such integers, so |sum| < 2**24 and float32 adds them exactly in any order;
- the mean is one float32 division by ``count * (2**17 - 1)`` (< 2**24, exact).
Since nothing here is trained, ``forward`` also keeps the embeddings of the token rows it has seen (bounded).
"""

import threading
from typing import NamedTuple

import torch
from torch import nn

HASH_SCHEME = "eelbert-ngram-v1"
HASH_PRIME = 2**31 - 1
MAX_NGRAM_ID = 2**31 - 2  # the tokenizer emits ids 1 ..= MAX_NGRAM_ID; 0 is an empty slot
MAX_NGRAMS_LIMIT = 128
VALUE_BITS = 17
VALUE_SCALE = 2**VALUE_BITS - 1  # 131071: 2 * u - VALUE_SCALE is odd and lies in [-VALUE_SCALE, VALUE_SCALE]
MASK64 = 2**64 - 1


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
    """Per-dimension constants: draw j gives ``a_j = 1 + r_{2j} mod (P - 1)`` and ``b_j = r_{2j+1} mod P``."""
    draws = splitmix64(seed, 2 * dim)
    return [1 + r % (HASH_PRIME - 1) for r in draws[0::2]], [r % HASH_PRIME for r in draws[1::2]]


class RowCache(NamedTuple):
    """Token rows already embedded. A lookup binary-searches a row's 64-bit fingerprint, then compares the stored
    row with the incoming one. Readers take one snapshot; an insert publishes a new one and writes only storage
    rows past those that older snapshots use."""

    weights: torch.Tensor  # (K,) fingerprint of a row = sum of ids * weights; weights < 2**24, ids < 2**31
    keys: torch.Tensor  # (N,) sorted fingerprints of the cached rows
    slots: torch.Tensor  # (N,) where the row with fingerprint keys[i] is stored
    rows: torch.Tensor  # (capacity, K) stored rows, the first N in use; grows by doubling
    embeddings: torch.Tensor  # (capacity, d) their embeddings
    gates: torch.Tensor | None  # the gate values they were computed with (compared by value: fused optimizers
    # and `.data` writes update parameters without bumping their version counter)


class DynamicNgramEmbeddings(nn.Module):
    """Token embeddings from n-gram ids: (B, S, K) int64 -> (B, S, d) float32.

    Optional learned gates (``config.ngram_weight_buckets`` = B > 0): n-gram ``id`` enters the mean with
    weight ``1 + config.ngram_gate_scale * bucket_weights[id mod B]``. B scalars, however large the vocabulary;
    at their initial value 0 every weight is exactly 1.0 and the embedding is the spec's, bit for bit. The gates let
    fine-tuning turn single n-grams up or down (a frozen random vector cannot learn that a piece means "good").

    ``forward`` answers from a cache of whole token rows: the embedding is a pure function of a token's
    n-gram row and has nothing to train, so a row computed once can be reused in eval and train mode alike.
    The cache is keyed on the row itself (a 64-bit fingerprint finds the candidate, then the stored row is
    compared with the incoming one), so the same token id with different features never gets a stale vector.
    It holds at most ``cache_bytes`` (rows and vectors together; first come, first kept, never evicted; growing
    it briefly holds the old storage too), is not part of the state dict, is emptied by ``.to()``/``.half()``/
    ``reset_constants()``, and is skipped under ``torch.compile``/tracing. ``reference`` is the uncached
    computation; the two give bit-identical results.
    """

    cache_bytes = 16 * 2**20  # per module; 0 turns the cache off. K=48: 18,724 rows at d=128, 4,854 at d=768

    def __init__(self, config):
        super().__init__()
        self.hidden_size = config.hidden_size
        self.ngram_seed = config.ngram_seed
        a, b = hash_constants(config.ngram_seed, config.hidden_size)
        # Recomputable from the config, so not saved (the checkpoint keeps no embedding state at all).
        self.hash_a = nn.Buffer(torch.tensor(a, dtype=torch.int64), persistent=False)
        self.hash_b = nn.Buffer(torch.tensor(b, dtype=torch.int64), persistent=False)
        self.weight_buckets = getattr(config, "ngram_weight_buckets", 0)
        if self.weight_buckets:
            self.gate_scale = float(config.ngram_gate_scale)  # Adam is scale-free: the gates learn this much faster
            self.bucket_weights = nn.Parameter(torch.zeros(self.weight_buckets))
        self.clear_cache()

    def reset_constants(self):
        """Refill the constants (used by ``_init_weights``: buffers are re-created after meta-device loading)."""
        a, b = hash_constants(self.ngram_seed, self.hidden_size)
        with torch.no_grad():
            self.hash_a.copy_(torch.tensor(a, dtype=torch.int64))
            self.hash_b.copy_(torch.tensor(b, dtype=torch.int64))
        self.clear_cache()

    _cache_lock = threading.Lock()  # inserts append to shared storage, one at a time; lookups need no lock

    def clear_cache(self):
        with self._cache_lock:
            self._cache: RowCache | None = None

    def _apply(self, fn, recurse=True):
        self.clear_cache()  # .to(device), .half(), .cuda(), ...: cached tensors would sit on the old device
        return super()._apply(fn, recurse)

    def ngram_values(self, ids: torch.Tensor) -> torch.Tensor:
        """Integer-valued vectors ``2 * ((a_j * id + b_j) mod P mod 2**17) - (2**17 - 1)``: (U,) -> (U, d).

        Id 0 (an empty slot) gives the zero vector.
        """
        x = torch.remainder(ids[:, None] * self.hash_a + self.hash_b, HASH_PRIME)  # (U, 1) * (d,) -> (U, d)
        values = (2 * torch.remainder(x, 2**VALUE_BITS) - VALUE_SCALE).to(torch.float32)
        return values.masked_fill((ids == 0)[:, None], 0.0)  # +0.0, never -0.0

    def reference(self, ngram_ids: torch.Tensor) -> torch.Tensor:
        """The spec, uncached: (..., K) -> (..., d). Each distinct n-gram id of the input is hashed once."""
        width = ngram_ids.shape[-1]
        if width > MAX_NGRAMS_LIMIT:  # beyond it the float32 sums would no longer be exact
            raise ValueError(f"at most {MAX_NGRAMS_LIMIT} n-grams per token, got {width}")
        flat = ngram_ids.reshape(-1, width)  # (..., K) -> (T, K)
        unique_ids, inverse = torch.unique(flat, return_inverse=True)
        values = self.ngram_values(unique_ids)  # (U, d)
        if self.weight_buckets:  # learned gates: (U,) weights, exactly 1.0 while untrained
            values = values * (1.0 + self.gate_scale * self.bucket_weights[unique_ids % self.weight_buckets])[:, None]
        sums = nn.functional.embedding_bag(inverse, values, mode="sum")  # (T, K) -> (T, d), exact when unweighted
        counts = (flat != 0).sum(dim=1, keepdim=True).clamp(min=1)  # a token with no n-gram gets zeros
        embeddings = sums / (counts * VALUE_SCALE).to(torch.float32)
        return embeddings.view(*ngram_ids.shape[:-1], self.hidden_size)  # (T, d) -> (..., d)

    @staticmethod
    def check_range(ngram_ids: torch.Tensor):
        """Raise a ``ValueError`` for ids outside [0, MAX_NGRAM_ID] (one pass; skipped while compiling)."""
        if ngram_ids.numel() and not torch.compiler.is_compiling():
            smallest, largest = (int(v) for v in torch.aminmax(ngram_ids))
            if smallest < 0 or largest > MAX_NGRAM_ID:
                raise ValueError(f"ngram_ids values must lie in [0, {MAX_NGRAM_ID}], got [{smallest}, {largest}]; pass "
                                 "the `ngram_ids` that EELBertTokenizer returns next to input_ids")

    def forward(self, ngram_ids: torch.Tensor) -> torch.Tensor:
        """``reference``, answered from the row cache where it can be. Ids out of range raise a ``ValueError``; a
        cached row was checked when it was inserted, so only rows that miss are checked."""
        width = ngram_ids.shape[-1]
        if self.cache_bytes <= 0 or width > MAX_NGRAMS_LIMIT or torch.compiler.is_compiling() or torch.jit.is_tracing():
            self.check_range(ngram_ids)
            return self.reference(ngram_ids)
        if self.weight_buckets and torch.is_grad_enabled() and self.bucket_weights.requires_grad:
            self.check_range(ngram_ids)
            return self.reference(ngram_ids)  # no cache while the gates take gradients
        flat = ngram_ids.reshape(-1, width)  # (B, S, K) -> (T, K)
        cache = self._cache
        if (cache is None or cache.keys.device != flat.device or cache.rows.shape[1] != width or (
                cache.gates is not None and not torch.equal(cache.gates, self.bucket_weights))):  # gates changed
            gates = self.bucket_weights.detach() if self.weight_buckets else None
            cache = self._cache = self._new_cache(flat.device, width, gates)  # start afresh
        if len(cache.keys) == 1:  # only the sentinel row (-1s), which an input equal to it would match unchecked
            self.check_range(flat)
        # (T, K) -> (T,) fingerprints, exact (no int64 overflow); one matrix-vector product on CPU
        row_keys = torch.mv(flat, cache.weights) if flat.device.type == "cpu" else (flat * cache.weights).sum(dim=1)
        slot = cache.slots.index_select(0, torch.searchsorted(cache.keys, row_keys))  # (T,); the sentinel's key is last
        stored, out = cache.rows.index_select(0, slot), cache.embeddings.index_select(0, slot)  # (T, K), (T, d)
        if not torch.equal(stored, flat):  # the rows themselves must match, not just their fingerprints
            miss = (stored != flat).any(dim=1).nonzero().squeeze(1)
            self.check_range(flat[miss])
            out[miss] = computed = self.reference(flat[miss])  # (M, d)
            self._insert(cache.weights, row_keys[miss], flat[miss], computed)
        return out.view(*ngram_ids.shape[:-1], self.hidden_size)  # (T, d) -> (B, S, d)

    def _new_cache(self, device, width, gates) -> RowCache:
        """A cache holding one sentinel row of -1s, which matches no input (ids are >= 0), under the largest key:
        a binary search always lands on a stored row."""
        weights = torch.tensor([r >> 40 for r in splitmix64(self.ngram_seed ^ 0x5EED, width)], device=device)
        sentinel = torch.full((1, width), -1, dtype=torch.int64, device=device)
        key = torch.full((1,), torch.iinfo(torch.int64).max, device=device)  # real keys are < 2**62
        embeddings = torch.zeros(1, self.hidden_size, dtype=torch.float32, device=device)
        return RowCache(weights, key, torch.zeros_like(key), sentinel, embeddings, None if gates is None else gates.clone())

    def _insert(self, weights, new_keys, new_rows, new_embeddings):
        """Cache one row per fingerprint not cached yet, while there is room; a colliding row stays uncached."""
        with self._cache_lock:
            cache = self._cache
            if cache is None or cache.weights is not weights:  # cleared or rebuilt meanwhile
                return
            used, width = len(cache.keys), new_rows.shape[1]
            room = self.cache_bytes // (8 * width + 4 * self.hidden_size) - used  # rows that still fit the budget
            order = torch.argsort(new_keys, stable=True)
            sorted_keys = new_keys[order]
            new = torch.ones_like(sorted_keys, dtype=torch.bool)
            new[1:] = sorted_keys[1:] != sorted_keys[:-1]  # the first row of each fingerprint, if not cached yet:
            new &= cache.keys[torch.searchsorted(cache.keys, sorted_keys)] != sorted_keys
            take = order[new][: max(room, 0)]
            if len(take) == 0:
                return
            stop, rows, embeddings = used + len(take), cache.rows, cache.embeddings
            if stop > len(rows):  # grow the storage by doubling, within the budget
                capacity = min(max(stop, 2 * len(rows), 256), used + room)
                rows = torch.cat([rows[:used], rows.new_empty(capacity - used, width)])
                embeddings = torch.cat([embeddings[:used], embeddings.new_empty(capacity - used, self.hidden_size)])
            rows[used:stop], embeddings[used:stop] = new_rows[take], new_embeddings[take]  # past what readers see
            keys, by_key = torch.sort(torch.cat([cache.keys, new_keys[take]]))
            slots = torch.cat([cache.slots, torch.arange(used, stop, device=keys.device)])[by_key]
            self._cache = RowCache(weights, keys, slots, rows, embeddings, cache.gates)
