"""An exported EELBERT classifier under onnxruntime, tokenizer included: ``load_onnx_classifier(folder)(texts)``.

The folder is what ``eelbert export MODEL DIR --onnx [--quantize]`` writes. The classifier runs the export's two
graphs (``onnx_export.export_split``): ``token_embeddings.onnx`` only for token ids whose embedding it has not
stored yet, then ``model_from_embeddings[_quantized].onnx`` on the stored embeddings (when every token of a call is
stored, that graph with a ``Gather`` in front, fed the table and the tokens' rows: ``_reading_rows``). A token's
embedding is a
function of its id alone (the tokenizer's n-gram row of that id), so stored values are exact; the table is bounded
in memory like the PyTorch model's (``cache_bytes``, first come, first kept) and filled under a lock, so threads may
share one classifier. ``cache_bytes=0`` runs the single graph (``model[_quantized].onnx``) on every call instead.
"""

import json
import os
import threading

import numpy as np

from ..tokenization.tokenization_eelbert import _clean_text
from . import onnx_export

CACHE_BYTES = 16 * 2**20  # as DynamicNgramEmbeddings.cache_bytes: the whole 30,522-token vocabulary at d=128 fits


class OnnxClassifier:
    """texts -> logits (n, num_labels) float32. Build it with ``load_onnx_classifier``."""

    def __init__(self, folder: str, threads: int | None = None, dtype: str = "int8", cache_bytes: int = CACHE_BYTES,
                 max_length: int = 128):
        from ..tokenization.tokenization_eelbert import EELBertTokenizer

        if dtype not in onnx_export.SINGLE_GRAPH_FILES:
            raise ValueError(f"dtype must be one of {sorted(onnx_export.SINGLE_GRAPH_FILES)}, got {dtype!r}")
        if not isinstance(cache_bytes, int) or cache_bytes < 0:
            raise ValueError(f"cache_bytes must be an int >= 0, got {cache_bytes!r}")
        self.config = _read_config(folder)
        self.labels = [label for _, label in sorted((int(k), v) for k, v in self.config.get("id2label", {}).items())]
        self.max_length, self.cached = max_length, cache_bytes > 0
        onnx_dir = os.path.join(folder, "onnx")
        if self.cached:
            paths = [os.path.join(onnx_dir, onnx_export.TOKEN_EMBEDDINGS_FILE),
                     os.path.join(onnx_dir, onnx_export.FROM_EMBEDDINGS_FILES[dtype])]
            self.token_session, self.session = (_session(path, threads) for path in paths)
            _check_inputs(self.token_session, paths[0], ("ngram_ids",))
            _check_inputs(self.session, paths[1], onnx_export.FROM_EMBEDDINGS_INPUTS)
            self.rows_session = _session(paths[1], threads, _reading_rows)
        else:
            path = os.path.join(onnx_dir, onnx_export.SINGLE_GRAPH_FILES[dtype])
            self.token_session, self.session, self.rows_session = None, _session(path, threads), None
            _check_inputs(self.session, path, onnx_export.ONNX_INPUTS)
        try:
            self.tokenizer = EELBertTokenizer.from_pretrained(folder)
        except (OSError, ValueError) as error:
            raise ValueError(f"{folder}: no EELBERT tokenizer loads from it ({str(error).splitlines()[0]})") from None
        self._encoder = _batch_encoder(self.tokenizer, max_length)
        hidden, vocab = int(self.config["hidden_size"]), len(self.tokenizer)
        # slot[token id] = its row in `embeddings`, 0 = not stored (row 0 is never written)
        self.budget = max((cache_bytes - 4 * vocab) // (4 * hidden), 1) if self.cached else 0
        self._slot = np.zeros(vocab if self.cached else 0, np.int32)
        self._embeddings = np.empty((self.budget, hidden), np.float32)  # pages take memory only once written
        self._used, self._lock = 1, threading.Lock()

    def cache_info(self) -> dict:
        """Tokens stored, the bytes they and the slot index take, and the bound on those bytes."""
        with self._lock:
            tokens = self._used - 1
        row = 4 * self._embeddings.shape[1]
        return {"tokens": tokens, "bytes": self._slot.nbytes + row * self._used,
                "max_bytes": self._slot.nbytes + row * self.budget}

    def __call__(self, texts) -> np.ndarray:
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("pass a non-empty list of strings")
        input_ids, masks = self.encode(texts)
        if not self.cached:
            return self.session.run(None, {**masks, "input_ids": input_ids,
                                           "ngram_ids": self.tokenizer.ngram_ids_for(input_ids)})[0]
        with self._lock:
            rows = self._slot[input_ids]  # (B, S) int32
            stored = np.count_nonzero(rows) == rows.size  # count_nonzero: no ufunc overhead
            table = self._embeddings  # rows in use are written once, before their slot: safe to read unlocked
        if stored:  # the graph gathers the rows itself: no (B, S, d) array is built per call
            return self.rows_session.run(None, {"token_table": table, "token_rows": rows, **masks})[0]
        return self.session.run(None, {"token_embeddings": self.token_embeddings(input_ids), **masks})[0]

    def encode(self, texts) -> tuple:
        """Texts -> (input_ids, {"attention_mask", "token_type_ids"}), int64 (B, S): what
        ``tokenizer(texts, padding=True, truncation=True, max_length=128)`` returns, from the base tokenizer's own
        batch encoder (transformers' argument handling costs more than the Rust tokenizer itself on one text)."""
        encodings = self._encoder.encode_batch(_clean_text(list(texts), "texts"))
        columns = [[getattr(e, field) for e in encodings] for field in ("ids", "attention_mask", "type_ids")]
        input_ids, attention_mask, token_type_ids = (np.array(c, dtype=np.int64) for c in columns)
        return input_ids, {"attention_mask": attention_mask, "token_type_ids": token_type_ids}

    def token_embeddings(self, input_ids: np.ndarray) -> np.ndarray:
        """Token ids (B, S) -> their embeddings (B, S, d): stored ones read, the others computed (and stored while
        the budget lasts)."""
        with self._lock:  # one caller at a time reads and fills the table
            slot = self._slot[input_ids]  # (B, S)
            if np.count_nonzero(slot) == slot.size:  # every token stored (count_nonzero: no ufunc overhead)
                return self._embeddings[slot]  # (B, S) -> (B, S, d)
            missing = np.unique(input_ids[slot == 0])  # (M,)
            computed = self.token_session.run(None, {"ngram_ids": self.tokenizer.ngram_ids_for(missing)})[0]  # (M, d)
            keep = min(len(missing), self.budget - self._used)
            if keep > 0:
                self._embeddings[self._used : self._used + keep] = computed[:keep]
                self._slot[missing[:keep]] = np.arange(self._used, self._used + keep)
                self._used += keep
            out = self._embeddings[self._slot[input_ids]]
            unstored = self._slot[input_ids] == 0  # beyond the budget: computed on every call
            if unstored.any():
                out[unstored] = computed[np.searchsorted(missing, input_ids[unstored])]
            return out


def _batch_encoder(tokenizer, max_length: int):
    """A copy of `tokenizer`'s Rust tokenizer set to cut at `max_length` and pad to the longest, as transformers sets
    its own for ``padding=True, truncation=True`` (a copy: the tokenizer's own settings change with each call)."""
    from tokenizers import Tokenizer

    encoder = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    encoder.enable_truncation(max_length, stride=0, strategy="longest_first", direction=tokenizer.truncation_side)
    encoder.enable_padding(direction=tokenizer.padding_side, pad_id=tokenizer.pad_token_id,
                           pad_type_id=tokenizer.pad_token_type_id, pad_token=tokenizer.pad_token)
    return encoder


def _reading_rows(model):
    """The model graph with its ``token_embeddings`` input replaced by ``Gather(token_table, token_rows)``: the stored
    table (R, d) float32 and each token's row (B, S) int32. onnxruntime reads a contiguous numpy input in place, so
    the table crosses into the runtime without a copy and the gather runs inside the graph, as BERT's does."""
    from onnx import TensorProto, helper

    graph = model.graph
    (embeddings,) = [i for i in graph.input if i.name == "token_embeddings"]
    hidden = embeddings.type.tensor_type.shape.dim[2]
    graph.input.remove(embeddings)
    graph.input.insert(0, helper.make_tensor_value_info("token_rows", TensorProto.INT32, ["batch", "sequence"]))
    graph.input.insert(0, helper.make_tensor_value_info(
        "token_table", TensorProto.FLOAT, ["rows", hidden.dim_value or hidden.dim_param or "hidden"]))
    graph.node.insert(0, helper.make_node("Gather", ["token_table", "token_rows"], ["token_embeddings"], axis=0))
    return model.SerializeToString()


def _read_config(folder: str) -> dict:
    if not os.path.isdir(folder):
        raise ValueError(f"{folder!r} is not a folder: pass the folder `eelbert export MODEL DIR --onnx` wrote")
    path = os.path.join(folder, "config.json")
    try:
        with open(path, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: not a readable EELBERT config ({type(error).__name__}): "
                         "pass the folder `eelbert export MODEL DIR --onnx` wrote") from None
    if config.get("model_type") != "eelbert" or "EELBertForSequenceClassification" not in config.get("architectures", []):
        raise ValueError(f"{path} describes a {config.get('model_type')!r} model {config.get('architectures')}, "
                         "not an EELBertForSequenceClassification")
    return config


def _session(path: str, threads: int | None, edit=None):
    if not os.path.isfile(path):
        raise ValueError(f"{path} is missing: export with `eelbert export MODEL DIR --onnx` (add --quantize for int8)")
    try:
        if edit is not None:
            import onnx

            return onnx_export.onnx_session(edit(onnx.load(path)), threads)
        return onnx_export.onnx_session(path, threads)
    except ImportError:
        raise
    except Exception as error:  # onnxruntime raises its own exception types, with multi-line messages
        raise ValueError(f"{path} is not a model onnxruntime loads: {str(error).splitlines()[0][:200]}") from None


def _check_inputs(session, path: str, names: tuple) -> None:
    got = tuple(i.name for i in session.get_inputs())
    if sorted(got) != sorted(names):
        raise ValueError(f"{path} takes inputs {list(got)}, not the EELBERT export's {list(names)}")


def load_onnx_classifier(folder: str, threads: int | None = None, *, dtype: str = "int8",
                         cache_bytes: int = CACHE_BYTES) -> OnnxClassifier:
    """The exported classifier in `folder` as a callable: list of texts -> logits (numpy, (n, num_labels)).

    Texts are cut to 128 tokens and padded to the longest, as ``eelbert export --eval-file`` and ``classify`` do.
    `threads`: onnxruntime's intra-op threads (default: OMP_NUM_THREADS, else onnxruntime's own). `dtype`: "int8"
    (``--quantize``'s graphs) or "fp32". `cache_bytes`: the bound on the stored token embeddings and their index;
    0 runs the single graph instead. A missing or foreign folder is a ValueError."""
    return OnnxClassifier(folder, threads, dtype, cache_bytes)
