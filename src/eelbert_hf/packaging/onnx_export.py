"""EELBERT -> ONNX (float32 and int8 dynamic-quantised), with onnxruntime parity and accuracy checks.

The graph takes ``input_ids``, ``ngram_ids``, ``attention_mask`` and ``token_type_ids`` (batch and sequence
axes dynamic) and computes the dynamic embedding inside it with integer ops (``Mod``, ``Mul``, ``Add`` on int64,
as in ``DynamicNgramEmbeddings.reference``), so a runtime needs only the tokenizer and the ``.onnx`` file. The
folder follows transformers.js's layout (``onnx/model.onnx``, ``onnx/model_quantized.onnx``, ``config.json`` with
the n-gram fields, ``tokenizer.json``), which the JavaScript port in ``js/`` reads (docs/browser.md).
Needs the ``onnx`` extra: ``pip install -e ".[onnx]"`` from a clone.
"""

import json
import os

import numpy as np
import torch
from torch import nn

ONNX_INPUTS = ("input_ids", "ngram_ids", "attention_mask", "token_type_ids")
# beside onnx/, what a runtime without Python (js/, examples/browser/) reads: the transformers.js folder layout
RUNTIME_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
# the config.json fields that define the n-gram ids (embedding_type "random_hash" means one atom per token)
RUNTIME_CONFIG_FIELDS = ("hash_scheme", "ngram_min_n", "ngram_max_n", "max_ngrams_per_token", "embedding_type")
PARITY_TEXTS = ["The runner kept running, and everyone cheered!", "a dull, lifeless film", "short"]


class _PositionalInputs(nn.Module):
    """The model with the four ONNX inputs as positional arguments and its first output (logits or hidden states)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, ngram_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, ngram_ids=ngram_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids, return_dict=True)[0]


def output_name(model) -> str:
    return "last_hidden_state" if type(model).__name__ == "EELBertModel" else "logits"


def export_onnx(model, tokenizer, path: str, opset: int = 20) -> str:
    """Write `model` (any EELBERT head, dynamic embedding) as one self-contained ONNX file at `path`. (Opset 20 has
    a Gelu op; below it GELU is five nodes that onnxruntime does not fuse, ~6% of the int8 graph's time at batch 64.)"""
    if getattr(model.config, "embedding_type", "dynamic") != "dynamic":
        raise ValueError(f"ONNX export supports embedding_type='dynamic', got {model.config.embedding_type!r}")
    wrapper = _PositionalInputs(model.float().eval()).eval()
    encoded = tokenizer(PARITY_TEXTS[:2], padding=True, return_tensors="pt")
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: seq} for name in ONNX_INPUTS}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with torch.no_grad():  # torch.export traces the uncached `reference` path (is_compiling() is True there)
        torch.onnx.export(wrapper, tuple(encoded[name] for name in ONNX_INPUTS), path, input_names=list(ONNX_INPUTS),
                          output_names=[output_name(model)], dynamic_shapes=dynamic, opset_version=opset,
                          dynamo=True, external_data=False, verbose=False)
    _strip_debug_info(path)
    return path


def _strip_debug_info(path: str) -> None:
    """Drop the exporter's per-node metadata (Python stack traces with local paths, FX names): ~0.3 MB for UNO,
    as much as its int8 weights."""
    import onnx

    def nodes(graph):
        for node in graph.node:
            yield node
            for attribute in node.attribute:  # the Loop body of embedding_bag, If branches, ...
                for subgraph in [attribute.g, *attribute.graphs]:
                    yield from nodes(subgraph)

    model = onnx.load(path)
    for node in nodes(model.graph):
        del node.metadata_props[:]
        node.doc_string = ""
    onnx.save(model, path)


def save_runtime_files(model, tokenizer, output_dir: str) -> list[str]:
    """Write what a runtime without Python needs beside ``onnx/`` (RUNTIME_FILES) where missing, then check it:
    config.json carries the n-gram fields of `model`, tokenizer.json holds the WordPiece pipeline (which
    tokenizers.js reads) and flags as special exactly the tokenizer's special tokens (the JS hash makes those
    atoms). An `eelbert export` folder already holds all three; returns their names."""
    os.makedirs(output_dir, exist_ok=True)
    config_path = os.path.join(output_dir, "config.json")
    if not os.path.exists(config_path):
        model.config.save_pretrained(output_dir)
    tokenizer_path = os.path.join(output_dir, "tokenizer.json")
    if not (os.path.exists(tokenizer_path) and os.path.exists(os.path.join(output_dir, "tokenizer_config.json"))):
        tokenizer.save_pretrained(output_dir)
    if not os.path.exists(tokenizer_path):  # a tokenizer without a `tokenizers` backend writes vocab.txt only
        tokenizer.backend_tokenizer.save(tokenizer_path)
    with open(config_path, encoding="utf-8") as f:
        saved = json.load(f)
    for field in RUNTIME_CONFIG_FIELDS:
        want = getattr(model.config, field, None)
        if saved.get(field) != want:
            raise ValueError(f"{config_path} has {field}={saved.get(field)!r} but the exported model has {want!r}: "
                             "export into an empty folder or the folder of this model")
    with open(tokenizer_path, encoding="utf-8") as f:
        backend = json.load(f)
    if backend.get("model", {}).get("type") != "WordPiece":
        raise ValueError(f"{tokenizer_path} holds a {backend.get('model', {}).get('type')} model, not WordPiece")
    special = {token["content"] for token in backend.get("added_tokens", []) if token.get("special")}
    if special != set(tokenizer.all_special_tokens):
        raise ValueError(f"{tokenizer_path} flags {sorted(special)} as special, the tokenizer "
                         f"{sorted(tokenizer.all_special_tokens)}: the JS hash would treat other tokens as atoms")
    return list(RUNTIME_FILES)


def quantize_onnx(path: str, quantized_path: str) -> str:
    """int8 dynamic quantisation (onnxruntime.quantization.quantize_dynamic): the weights of MatMul/Gemm, and the
    position and segment tables behind their Gather nodes, become uint8; LayerNorms, biases and the hash stay float."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(path, quantized_path, weight_type=QuantType.QInt8)
    return quantized_path


def onnx_session(path: str, threads: int | None = None):
    """An onnxruntime CPU session with `threads` intra-op threads (default: OMP_NUM_THREADS, else onnxruntime's)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "0")) if threads is None else threads
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def run_onnx(session, encoded) -> np.ndarray:
    """Run an ONNX session on tokenizer output (a BatchEncoding of numpy arrays or torch tensors)."""
    feeds = {name: np.asarray(encoded[name], dtype=np.int64) for name in ONNX_INPUTS}
    return session.run(None, feeds)[0]


def parity(model, tokenizer, path: str, texts=PARITY_TEXTS) -> float:
    """Largest absolute difference between the torch model's and the ONNX model's first output on `texts`."""
    encoded = tokenizer(list(texts), padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = _PositionalInputs(model.float().eval())(*(encoded[name] for name in ONNX_INPUTS)).numpy()
    return float(np.abs(run_onnx(onnx_session(path), encoded) - expected).max())


def accuracy(session, tokenizer, jsonl_path: str, batch_size: int = 64, max_length: int = 128) -> float:
    """Classification accuracy of an ONNX classifier on a .jsonl file with "text" and "label" fields (a progress bar
    over the texts while it runs: transformers' tqdm, which `disable_progress_bar()` hides)."""
    from transformers.utils.logging import tqdm

    with open(jsonl_path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    correct = 0
    with tqdm(total=len(rows), desc=f"accuracy on {os.path.basename(jsonl_path)}", unit=" texts", leave=False) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            encoded = tokenizer([row["text"] for row in batch], padding=True, truncation=True, max_length=max_length,
                                return_tensors="np")
            predicted = run_onnx(session, encoded).argmax(-1)
            correct += int(sum(int(p) == int(row["label"]) for p, row in zip(predicted, batch)))
            bar.update(len(batch))
    return correct / len(rows)


def export_checkpoint(checkpoint: str, output_dir: str, quantize: bool = False, eval_file: str | None = None) -> dict:
    """Checkpoint -> ``output_dir/onnx/model.onnx`` (+ ``model_quantized.onnx``) and, where missing, RUNTIME_FILES
    (the transformers.js layout that js/ reads); returns sizes, the ONNX-vs-torch difference and, for a classifier
    with `eval_file`, the float32 and int8 accuracies. A bar counts the steps and names the one running;
    transformers' `disable_progress_bar()` hides it."""
    from transformers.utils.logging import tqdm

    from ..loading import load_checkpoint

    model, tokenizer = load_checkpoint(checkpoint)
    model.eval()
    classifier = type(model).__name__ == "EELBertForSequenceClassification" and eval_file is not None
    with tqdm(total=2 + 2 * quantize, desc="ONNX", unit=" steps") as bar:
        bar.set_description("ONNX: export float32")
        path = export_onnx(model, tokenizer, os.path.join(output_dir, "onnx", "model.onnx"))
        bar.update()
        bar.set_description("ONNX: check float32 against torch")
        result = {"onnx": path, "onnx_bytes": os.path.getsize(path), "max_diff": parity(model, tokenizer, path),
                  "runtime_files": save_runtime_files(model, tokenizer, output_dir)}
        if classifier:
            result["accuracy"] = accuracy(onnx_session(path), tokenizer, eval_file)
        bar.update()
        if quantize:
            bar.set_description("ONNX: quantise to int8")
            quantized = quantize_onnx(path, os.path.join(output_dir, "onnx", "model_quantized.onnx"))
            bar.update()
            bar.set_description("ONNX: check int8 against torch")
            result.update(onnx_int8=quantized, onnx_int8_bytes=os.path.getsize(quantized),
                          int8_max_diff=parity(model, tokenizer, quantized))
            if classifier:
                result["int8_accuracy"] = accuracy(onnx_session(quantized), tokenizer, eval_file)
            bar.update()
        bar.set_description("ONNX: done")
    return result


def describe(result: dict) -> str:
    """The lines `eelbert export --onnx` prints."""
    lines = [f"{result['onnx']}: {result['onnx_bytes'] / 1e6:.3f} MB float32, max |ONNX - torch| "
             f"{result['max_diff']:.2e}" + (f", accuracy {result['accuracy']:.4f}" if "accuracy" in result else "")]
    if "onnx_int8" in result:
        line = (f"{result['onnx_int8']}: {result['onnx_int8_bytes'] / 1e6:.3f} MB int8 "
                f"({result['onnx_int8_bytes'] / result['onnx_bytes']:.0%} of float32), max |int8 - torch| "
                f"{result['int8_max_diff']:.2e}")
        if "int8_accuracy" in result:
            line += (f", accuracy {result['int8_accuracy']:.4f} "
                     f"({100 * (result['int8_accuracy'] - result['accuracy']):+.2f} points)")
        lines.append(line)
    if "runtime_files" in result:
        lines.append(f"for JavaScript and the browser (js/, examples/browser/): onnx/ with {', '.join(result['runtime_files'])}")
    return "\n".join(lines)
