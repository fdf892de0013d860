"""Model half of the EELBERT n-gram hash (``ngram_hashing.py`` holds the spec): n-gram ids -> token embeddings.

Each n-gram id becomes a vector in [-1, 1]^d by a seeded integer hash of (id, dimension); a token's embedding is the
(gated) mean of its n-gram vectors, so no vocab_size x hidden_size table is stored. Every step is exact integer
arithmetic or one correctly rounded float32 operation, so torch on CPU or GPU, autocast and ONNX agree bit for bit
(learned gates: float64 sums rounded once, within 1e-6):
- ``x = (a_j * id + b_j) mod P`` with P = 2**31 - 1 in int64: products stay below 2**62;
- the value is the odd integer ``2 * (x mod 2**17) - (2**17 - 1)``; a token sums at most 128 of them, so
  |sum| < 2**24 and float32 adds them exactly in any order;
- the mean is one float32 division by ``count * (2**17 - 1)`` (< 2**24, exact).
"""

import threading

import torch
from torch import nn

from .ngram_hashing import HASH_PRIME, VALUE_SCALE, hash_constants


def _row_sums(values: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
    """Sums of consecutive runs of rows: ``values`` (N + 1, d) holds ``counts[0]`` rows of token 0, then
    ``counts[1]`` of token 1, ..., then a row of zeros; -> (T, d). Differences of a running sum, so the graph has no
    ScatterND with reduction=add, which onnxruntime's multi-threaded CPU kernel can compute with lost updates
    (a wrong sum that changes from run to run)."""
    running = values.cumsum(0)  # running[i] = values[0] + ... + values[i]
    ends = counts.cumsum(0)  # (T,): one past each token's last row; a token with no rows starts at its end
    first = ends - counts  # <= N: the zero row is there for a token with no rows at the end
    # values[first] + ... + values[end - 1]; a token with no rows gets zeros (not a float rounding of 0)
    sums = running.index_select(0, (ends - 1).clamp(min=0)) - running.index_select(0, first) \
        + values.index_select(0, first)
    return sums * (counts > 0).to(sums.dtype)[:, None]


class DynamicNgramEmbeddings(nn.Module):
    """Token embeddings from n-gram ids: (B, S, K) int64 -> (B, S, d) float32.

    Learned gates (``config.ngram_weight_buckets`` = B > 0): n-gram ``id`` enters the mean with weight
    ``1 + config.ngram_gate_scale * bucket_weights[id mod B]``, exactly 1.0 at their initial value 0 (the spec's
    embedding); fine-tuning turns single n-grams up or down, which frozen random vectors cannot.

    Learned codebook (``config.ngram_codebook_buckets`` = C > 0): a token adds ``mean_i codebook[id_i mod C] @
    codebook_map``, a (C, k) table and a (k, d) map. The map starts at zero, so the sum starts as the spec's
    embedding; the codebook stores what a token's n-grams mean, which the fixed random vectors cannot. Its size
    grows with C, not with the vocabulary.

    Fast path: with ``input_ids``, a lazily filled table indexed by token id holds the token's n-gram row and its
    embedding; a stored embedding is used only where the stored row equals the incoming one, all other rows go
    through ``reference`` (the computation itself, also used while gates or codebook train, under ``torch.compile``,
    tracing and ONNX export). The table is no parameter or buffer, holds at most ``cache_bytes`` (first come, first
    kept), and starts afresh after ``.to()``/``.half()``, ``reset_constants()`` and whenever the learned values
    (gates, codebook) change.
    """

    cache_bytes = 16 * 2**20  # per module; 0 turns the table off
    _lock = threading.Lock()  # one caller at a time reads and fills the table (a class attribute: modules pickle)

    def __init__(self, config):
        super().__init__()
        self.hidden_size, self.ngram_seed, self.vocab_size = config.hidden_size, config.ngram_seed, config.vocab_size
        # Recomputable from the config, so not saved (the checkpoint keeps no embedding state at all).
        self.hash_a = nn.Buffer(torch.empty(self.hidden_size, dtype=torch.int64), persistent=False)
        self.hash_b = nn.Buffer(torch.empty(self.hidden_size, dtype=torch.int64), persistent=False)
        self.weight_buckets = config.ngram_weight_buckets
        if self.weight_buckets:
            self.gate_scale = float(config.ngram_gate_scale)  # Adam is scale-free: the gates learn this much faster
            self.bucket_weights = nn.Parameter(torch.zeros(self.weight_buckets))
        self.codebook_buckets = getattr(config, "ngram_codebook_buckets", 0)  # configs written before it: none
        if self.codebook_buckets:  # initialised in EELBertPreTrainedModel._init_weights
            self.codebook = nn.Parameter(torch.empty(self.codebook_buckets, config.ngram_codebook_dim))
            self.codebook_map = nn.Parameter(torch.zeros(config.ngram_codebook_dim, self.hidden_size))
        self.reset_constants()

    def reset_constants(self):
        """Fill the constants (``_init_weights`` calls this too: buffers are re-created after meta-device loading)."""
        a, b = hash_constants(self.ngram_seed, self.hidden_size)
        with torch.no_grad():
            self.hash_a.copy_(torch.tensor(a, dtype=torch.int64))
            self.hash_b.copy_(torch.tensor(b, dtype=torch.int64))
        self.clear_cache()

    def clear_cache(self):
        self._slot = None  # (V,) token id -> its row in _rows / _embeddings; 0 = not stored
        self._rows = self._embeddings = self._gates = None  # (N, K) n-gram rows, (N, d) embeddings, learned values
        self._used = 1  # row 0: the slot of every token not stored (all -1s, so no valid row equals it)

    def _apply(self, fn, recurse=True):
        self.clear_cache()  # .to(device), .half(), .cuda(), ...: stored tensors would sit on the old device
        return super()._apply(fn, recurse)

    def ngram_values(self, ids: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Integer vectors ``2 * ((a_j * id + b_j) mod P mod 2**17) - (2**17 - 1)``, zeros for id 0: (U,) -> (U, d)."""
        x = torch.remainder(ids[:, None] * self.hash_a + self.hash_b, HASH_PRIME)  # (U, 1) * (d,) -> (U, d)
        values = (2 * (x & VALUE_SCALE) - VALUE_SCALE).to(dtype)  # x >= 0: x & (2**17 - 1) == x mod 2**17
        return values.masked_fill((ids == 0)[:, None], 0)  # +0.0, never -0.0

    def reference(self, ngram_ids: torch.Tensor) -> torch.Tensor:
        """The embedding computed from the spec: (..., K) -> (..., d). Each distinct n-gram id is hashed once.
        K is the config's ``max_ngrams_per_token``, which the config holds to at most ``MAX_NGRAMS_LIMIT`` = 128 (where
        the float32 sums stay exact) and ``EELBertEmbeddings`` checks the inputs against."""
        flat = ngram_ids.reshape(-1, ngram_ids.shape[-1])  # (..., K) -> (T, K)
        # torch.compile, ONNX export: embedding_bag would export as an ONNX Loop, and a Gather over all T x K slots
        # would spend most of the graph's time on empty ones, so only the non-empty slots are gathered (row-major)
        compiling, filled = torch.compiler.is_compiling(), flat != 0
        rows, slots = filled.nonzero(as_tuple=True) if compiling else (None, None)  # (N,), (N,)
        unique_ids, inverse = torch.unique(flat[rows, slots] if compiling else flat, return_inverse=True)
        # Integer sums are exact, so their bits do not depend on the order of the summands: in float32 (below
        # 2**24) or int64 (the graph's running sum). Gated values are summed in float64 and rounded once to float32,
        # so two summation orders agree within that one rounding (MPS has no float64: there the gated sums round).
        wide = torch.float32 if unique_ids.device.type == "mps" else torch.float64
        dtype = wide if self.weight_buckets else torch.int64 if compiling else torch.float32
        values = self.ngram_values(unique_ids, dtype)  # (U, d)
        if self.weight_buckets:  # learned gates: (U,) weights, exactly 1.0 while untrained
            gates = 1.0 + self.gate_scale * self.bucket_weights[unique_ids % self.weight_buckets]
            values = values * gates.to(dtype)[:, None]
        counts = filled.sum(dim=1, keepdim=True)  # (T, 1)
        if compiling:  # the slots' values, then a zero row
            slot_values = torch.cat([values, values.new_zeros(1, values.shape[1])]).index_select(
                0, torch.cat([inverse, inverse.new_full((1,), values.shape[0])]))
            sums = _row_sums(slot_values, counts[:, 0])
        else:
            sums = nn.functional.embedding_bag(inverse, values, mode="sum")  # (T, K) -> (T, d)
        # float32, or float64 where the gates are (a module moved with .double())
        out = torch.promote_types(torch.float32, self.bucket_weights.dtype) if self.weight_buckets else torch.float32
        filled_counts = counts[:, 0]  # (T,), before the clamp: the codebook's running sum below needs the zeros
        sums, counts = sums.to(out), counts.clamp(min=1)  # a token with no n-gram gets zeros
        embeddings = sums / (counts * VALUE_SCALE).to(out)
        if self.codebook_buckets:  # + the mean of the n-grams' codebook rows, mapped to d
            if compiling:  # (N, k) rows of the non-empty slots, summed per token as above
                rows_k = self.codebook.index_select(0, flat[rows, slots] % self.codebook_buckets).to(wide)
                rows_k = torch.cat([rows_k, rows_k.new_zeros(1, rows_k.shape[1])])  # wide: a running sum
                codes = _row_sums(rows_k, filled_counts).to(self.codebook.dtype)
            else:  # empty slots weigh 0: (T, K) -> (T, k)
                codes = nn.functional.embedding_bag(flat % self.codebook_buckets, self.codebook, mode="sum",
                                                    per_sample_weights=filled.to(self.codebook.dtype))
            embeddings = embeddings + (codes / counts.to(codes.dtype)) @ self.codebook_map  # (T, k) @ (k, d)
        return embeddings.view(*ngram_ids.shape[:-1], self.hidden_size)  # (T, d) -> (..., d)

    def forward(self, ngram_ids: torch.Tensor, input_ids: torch.Tensor | None = None) -> torch.Tensor:
        """``reference(ngram_ids)``, read from the table where a token's stored row matches (``EELBertEmbeddings``
        checks that the ids lie in [0, MAX_NGRAM_ID]). A token id only says where to look, since a hit is verified
        by its row, so ids the vocabulary doesn't have are clamped into it."""
        learned = self.learned_tensors()
        learning = torch.is_grad_enabled() and any(p.requires_grad for p in learned)
        if (input_ids is None or learning or self.cache_bytes <= 8 * self.vocab_size  # no room beyond the slots
                or torch.compiler.is_compiling() or torch.jit.is_tracing()):
            return self.reference(ngram_ids)
        flat, ids = ngram_ids.reshape(-1, ngram_ids.shape[-1]), input_ids.reshape(-1).clamp(0, self.vocab_size - 1)
        gates = [p.detach() for p in learned]
        with self._lock:
            if (self._slot is None or self._slot.device != flat.device or self._rows.shape[1] != flat.shape[1]
                    or not all(map(torch.equal, gates, self._gates))):  # compared by value: fused
                self._start_table(flat.device, flat.shape[1], gates)  # optimizers don't bump the version counter
            slot = self._slot.index_select(0, ids)  # (T,)
            stored, out = self._rows.index_select(0, slot), self._embeddings.index_select(0, slot)  # (T, K), (T, d)
            if not (torch.equal(stored, flat) and bool(slot.all())):  # slot 0: not stored, whatever the row holds
                miss = ((stored != flat).any(dim=1) | (slot == 0)).nonzero().squeeze(1)  # (M,)
                out[miss] = computed = self.reference(flat[miss])  # (M, d)
                self._store(ids[miss], flat[miss], computed)
        return out.view(*ngram_ids.shape[:-1], self.hidden_size)  # (T, d) -> (..., d)

    def learned_tensors(self) -> list:
        """The parameters an embedding depends on: the gates and the codebook, where the config has them."""
        return ([self.bucket_weights] if self.weight_buckets else []) + (
            [self.codebook, self.codebook_map] if self.codebook_buckets else [])

    def _start_table(self, device, width, gates):
        self.clear_cache()
        self._budget = max((self.cache_bytes - 8 * self.vocab_size) // (8 * width + 4 * self.hidden_size), 1)  # rows
        self._slot = torch.zeros(self.vocab_size, dtype=torch.int64, device=device)
        # The whole budget at once, uninitialised: on CPU its pages take memory only once rows are written.
        self._rows = torch.empty(self._budget, width, dtype=torch.int64, device=device)
        self._rows[0] = -1  # the row of every token not stored: no valid row equals it
        dtype = torch.float32
        for tensor in gates:  # reference's dtype
            dtype = torch.promote_types(dtype, tensor.dtype)
        self._embeddings = torch.empty(self._budget, self.hidden_size, dtype=dtype, device=device)
        self._gates = [tensor.clone() for tensor in gates]

    def _store(self, ids, rows, embeddings):
        """Store one row of each token id not stored yet, while the budget lasts (stored ones stay)."""
        unique, inverse = torch.unique(ids, return_inverse=True)  # (U,): one occurrence of each id, any one
        take = unique.new_empty(len(unique)).scatter_(0, inverse, torch.arange(len(ids), device=ids.device))
        take = take[self._slot[ids[take]] == 0][: max(self._budget - self._used, 0)]
        start, stop = self._used, self._used + len(take)
        self._rows[start:stop], self._embeddings[start:stop] = rows[take], embeddings[take]
        self._slot[ids[take]] = torch.arange(start, stop, device=ids.device)
        self._used = stop
