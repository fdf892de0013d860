"""EELBERT -> ONNX (float32 and int8 dynamic-quantised), with onnxruntime parity and accuracy checks.

The graph takes ``input_ids``, ``ngram_ids``, ``attention_mask`` and ``token_type_ids`` (batch and sequence
axes dynamic) and computes the dynamic embedding inside it with integer ops (``Mul``, ``Add`` and the Mersenne
reduction mod 2**31 - 1 on int64/uint64, as in ``DynamicNgramEmbeddings.reference``), so a runtime needs only the
tokenizer and the ``.onnx`` file. Beside it, the same model as two graphs for runtimes that reuse token embeddings
across calls (``onnx_runtime.load_onnx_classifier``, js/): ``token_embeddings.onnx`` (n-gram ids -> token
embeddings) and ``model_from_embeddings.onnx`` (token embeddings + masks -> outputs). The folder follows transformers.js's layout (``onnx/model.onnx``, ``onnx/model_quantized.onnx``, ``config.json`` with
the n-gram fields, ``tokenizer.json``), which the JavaScript port in ``js/`` reads (docs/browser.md).
Needs the ``onnx`` extra: ``pip install -e ".[onnx]"`` from a clone.
"""

import json
import os

import numpy as np
import torch
from tokenizers import Tokenizer
from torch import nn

from ..tokenization.tokenization_eelbert import token_format_of

ONNX_INPUTS = ("input_ids", "ngram_ids", "attention_mask", "token_type_ids")
# the two graphs of the same model for runtimes that reuse token embeddings across calls
TOKEN_EMBEDDINGS_FILE = "token_embeddings.onnx"  # ngram_ids (T, K) -> token_embeddings (T, d)
FROM_EMBEDDINGS_INPUTS = ("token_embeddings", "attention_mask", "token_type_ids")
FROM_EMBEDDINGS_FILES = {"fp32": "model_from_embeddings.onnx", "int8": "model_from_embeddings_quantized.onnx"}
SINGLE_GRAPH_FILES = {"fp32": "model.onnx", "int8": "model_quantized.onnx"}
# beside onnx/, what a runtime without Python (js/, examples/browser/) reads: the transformers.js folder layout
RUNTIME_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json")
# the config.json fields that define the n-gram ids (embedding_type "random_hash" means one atom per token)
RUNTIME_CONFIG_FIELDS = ("hash_scheme", "ngram_min_n", "ngram_max_n", "max_ngrams_per_token", "token_format",
                         "embedding_type")
PARITY_TEXTS = ["The runner kept running, and everyone cheered!", "a dull, lifeless film", "short"]


class _PositionalInputs(nn.Module):
    """The model with the four ONNX inputs as positional arguments and its first output (logits or hidden states)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, ngram_ids, attention_mask, token_type_ids):
        return self.model(input_ids=input_ids, ngram_ids=ngram_ids, attention_mask=attention_mask,
                          token_type_ids=token_type_ids, return_dict=True)[0]


class _TokenEmbeddings(nn.Module):
    """n-gram ids (T, K) -> token embeddings (T, d): the spec's computation, ``DynamicNgramEmbeddings.reference``."""

    def __init__(self, model):
        super().__init__()
        self.ngram_embeddings = model.base_model.embeddings.ngram_embeddings

    def forward(self, ngram_ids):
        return self.ngram_embeddings.reference(ngram_ids)


class _FromEmbeddings(nn.Module):
    """The model fed token embeddings (B, S, d) instead of ids, with the masks; its first output."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, token_embeddings, attention_mask, token_type_ids):
        return self.model(inputs_embeds=token_embeddings, attention_mask=attention_mask,
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
    _finish_graph(path)
    return path


def export_split(model, tokenizer, output_dir: str, opset: int = 20) -> tuple[str, str]:
    """Write `model` as two graphs into `output_dir`: TOKEN_EMBEDDINGS_FILE (``ngram_ids`` (T, K) ->
    ``token_embeddings`` (T, d), the spec) and FROM_EMBEDDINGS_FILES["fp32"] (``token_embeddings`` (B, S, d),
    ``attention_mask``, ``token_type_ids`` -> the model's first output). Composed, they compute what the single graph
    computes; apart, a runtime runs the first only for tokens whose embedding it has not stored yet."""
    if getattr(model.config, "embedding_type", "dynamic") != "dynamic":
        raise ValueError(f"ONNX export supports embedding_type='dynamic', got {model.config.embedding_type!r}")
    model = model.float().eval()
    encoded = tokenizer(PARITY_TEXTS[:2], padding=True, return_tensors="pt")
    os.makedirs(output_dir, exist_ok=True)
    tokens_path = os.path.join(output_dir, TOKEN_EMBEDDINGS_FILE)
    model_path = os.path.join(output_dir, FROM_EMBEDDINGS_FILES["fp32"])
    ngram_ids = encoded["ngram_ids"].reshape(-1, encoded["ngram_ids"].shape[-1])  # (B, S, K) -> (T, K)
    batch, seq, tokens = torch.export.Dim("batch"), torch.export.Dim("sequence"), torch.export.Dim("tokens")
    with torch.no_grad():
        torch.onnx.export(_TokenEmbeddings(model).eval(), (ngram_ids,), tokens_path, input_names=["ngram_ids"],
                          output_names=["token_embeddings"], dynamic_shapes={"ngram_ids": {0: tokens}},
                          opset_version=opset, dynamo=True, external_data=False, verbose=False)
        embeddings = model.base_model.embeddings.ngram_embeddings.reference(encoded["ngram_ids"])  # (B, S, d)
        inputs = (embeddings, encoded["attention_mask"], encoded["token_type_ids"])
        torch.onnx.export(_FromEmbeddings(model).eval(), inputs, model_path, input_names=list(FROM_EMBEDDINGS_INPUTS),
                          output_names=[output_name(model)], opset_version=opset, dynamo=True, external_data=False,
                          dynamic_shapes={name: {0: batch, 1: seq} for name in FROM_EMBEDDINGS_INPUTS}, verbose=False)
    _finish_graph(tokens_path)
    _finish_graph(model_path)
    return tokens_path, model_path


def _finish_graph(path: str) -> None:
    """Strip the exporter's debug info and give the hash's ``Mod`` nodes cheaper exact equivalents."""
    import onnx

    model = onnx.load(path)
    _strip_debug_info(model)
    _cheaper_mods(model.graph)
    onnx.save(model, path)


def _cheaper_mods(graph) -> None:
    """Replace ``Mod(x, 2**31 - 1)`` by the Mersenne reduction and ``Mod(x, 2**k)`` by ``BitwiseAnd(x, 2**k - 1)``
    (onnxruntime's int64 ``Mod`` is the slowest op of the hash).

    Mersenne: 2**31 = 1 (mod P), so with x = hi * 2**31 + lo, x = hi + lo (mod P), and s = hi + lo < 2 * P as long as
    x < 2**62 - 2**32: true for every hash input, (a_j * id + b_j) with a_j, b_j < P and ids <= MAX_NGRAM_ID
    (n-gram ids outside the spec's range, which the torch model refuses, would give other values). Then
    x mod P = min(s, s - P) in uint64, where s - P wraps around to a huge number when s < P. Power of two: for int64
    x, floor-mod 2**k is x & (2**k - 1) in two's complement, negative x included; ONNX ``Mod`` (fmod=0) is floor-mod."""
    from onnx import TensorProto, helper, numpy_helper

    from ..modeling.ngram_hashing import HASH_PRIME

    constants = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    nodes = []
    for node in graph.node:
        divisor = constants.get(node.input[1]) if node.op_type == "Mod" and len(node.input) == 2 else None
        if divisor is None or divisor.size != 1 or divisor.dtype != np.int64:
            nodes.append(node)
            continue
        d, (x,), (out,), tag = int(divisor.reshape(())), node.input[:1], node.output, node.output[0]
        if d == HASH_PRIME:
            names = {k: f"{tag}_mersenne_{k}" for k in ("p", "shift", "xu", "lo", "hi", "s", "t", "r")}
            graph.initializer.extend([numpy_helper.from_array(np.array(HASH_PRIME, np.uint64), names["p"]),
                                      numpy_helper.from_array(np.array(31, np.uint64), names["shift"])])
            nodes += [helper.make_node("Cast", [x], [names["xu"]], to=TensorProto.UINT64),
                      helper.make_node("BitwiseAnd", [names["xu"], names["p"]], [names["lo"]]),
                      helper.make_node("BitShift", [names["xu"], names["shift"]], [names["hi"]], direction="RIGHT"),
                      helper.make_node("Add", [names["lo"], names["hi"]], [names["s"]]),
                      helper.make_node("Sub", [names["s"], names["p"]], [names["t"]]),
                      helper.make_node("Min", [names["s"], names["t"]], [names["r"]]),
                      helper.make_node("Cast", [names["r"]], [out], to=TensorProto.INT64)]
        elif d > 0 and d & (d - 1) == 0:
            mask = f"{tag}_mask"
            graph.initializer.append(numpy_helper.from_array(np.array(d - 1, np.int64), mask))
            nodes.append(helper.make_node("BitwiseAnd", [x, mask], [out]))
        else:
            nodes.append(node)
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in _all_nodes(graph) for name in node.input}
    kept = [init for init in graph.initializer if init.name in used]  # the divisors replaced above
    del graph.initializer[:]
    graph.initializer.extend(kept)


def _all_nodes(graph):
    """The nodes of `graph` and of its subgraphs (the Loop body of embedding_bag, If branches, ...)."""
    for node in graph.node:
        yield node
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs]:
                yield from _all_nodes(subgraph)


def _strip_debug_info(model) -> None:
    """Drop the exporter's per-node metadata (Python stack traces with local paths, FX names): ~0.3 MB for UNO,
    as much as its int8 weights."""
    for node in _all_nodes(model.graph):
        del node.metadata_props[:]
        node.doc_string = ""


def save_runtime_files(model, tokenizer, output_dir: str) -> list[str]:
    """Write what a runtime without Python needs beside ``onnx/`` (RUNTIME_FILES) where missing, then check it:
    config.json carries the n-gram fields of `model`, tokenizer.json holds the base tokenizer (which
    tokenizers.js reads) in the model's token format and flags as special exactly the tokenizer's special tokens (the JS hash makes those
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
    found = token_format_of(Tokenizer.from_file(tokenizer_path))
    if found != model.config.token_format:  # the JS hash reads the symbols in the model's format
        raise ValueError(f"{tokenizer_path} holds a vocabulary in the {found!r} token format, the model expects "
                         f"{model.config.token_format!r}: export into an empty folder or the folder of this model")
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


def run_split(token_session, model_session, encoded) -> np.ndarray:
    """Run the two graphs of ``export_split`` on tokenizer output: every token's embedding, then the model."""
    ngram_ids = np.asarray(encoded["ngram_ids"], dtype=np.int64)
    embeddings = token_session.run(None, {"ngram_ids": ngram_ids.reshape(-1, ngram_ids.shape[-1])})[0]
    feeds = {"token_embeddings": embeddings.reshape(*ngram_ids.shape[:2], -1),
             **{name: np.asarray(encoded[name], dtype=np.int64) for name in FROM_EMBEDDINGS_INPUTS[1:]}}
    return model_session.run(None, feeds)[0]


def split_parity(model, tokenizer, tokens_path: str, model_path: str, texts=PARITY_TEXTS) -> float:
    """Largest absolute difference between the torch model's first output and the two graphs' on `texts`."""
    encoded = tokenizer(list(texts), padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = _PositionalInputs(model.float().eval())(*(encoded[name] for name in ONNX_INPUTS)).numpy()
    got = run_split(onnx_session(tokens_path), onnx_session(model_path), encoded)
    return float(np.abs(got - expected).max())


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
    """Checkpoint -> ``output_dir/onnx/model.onnx`` (+ ``model_quantized.onnx``), the two graphs of ``export_split``
    (+ the second one quantised) and, where missing, RUNTIME_FILES
    (the transformers.js layout that js/ reads); returns sizes, the ONNX-vs-torch difference and, for a classifier
    with `eval_file`, the float32 and int8 accuracies. A bar counts the steps and names the one running;
    transformers' `disable_progress_bar()` hides it."""
    from transformers.utils.logging import tqdm

    from ..loading import load_checkpoint

    model, tokenizer = load_checkpoint(checkpoint)
    model.eval()
    classifier = type(model).__name__ == "EELBertForSequenceClassification" and eval_file is not None
    with tqdm(total=3 + 2 * quantize, desc="ONNX", unit=" steps") as bar:
        bar.set_description("ONNX: export float32")
        path = export_onnx(model, tokenizer, os.path.join(output_dir, "onnx", "model.onnx"))
        bar.update()
        bar.set_description("ONNX: check float32 against torch")
        result = {"onnx": path, "onnx_bytes": os.path.getsize(path), "max_diff": parity(model, tokenizer, path),
                  "runtime_files": save_runtime_files(model, tokenizer, output_dir)}
        if classifier:
            result["accuracy"] = accuracy(onnx_session(path), tokenizer, eval_file)
        bar.update()
        bar.set_description("ONNX: export the two graphs for runtimes with a token cache")
        tokens_path, split_path = export_split(model, tokenizer, os.path.dirname(path))
        result.update(split=[tokens_path, split_path], split_bytes=[os.path.getsize(tokens_path), os.path.getsize(split_path)],
                      split_max_diff=split_parity(model, tokenizer, tokens_path, split_path))
        bar.update()
        if quantize:
            bar.set_description("ONNX: quantise to int8")
            quantized = quantize_onnx(path, os.path.join(output_dir, "onnx", "model_quantized.onnx"))
            bar.update()
            bar.set_description("ONNX: check int8 against torch")
            result.update(onnx_int8=quantized, onnx_int8_bytes=os.path.getsize(quantized),
                          int8_max_diff=parity(model, tokenizer, quantized))
            split_int8 = quantize_onnx(split_path, os.path.join(os.path.dirname(path), FROM_EMBEDDINGS_FILES["int8"]))
            result.update(split_int8=split_int8, split_int8_bytes=os.path.getsize(split_int8),
                          split_int8_max_diff=split_parity(model, tokenizer, tokens_path, split_int8))
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
    if "split" in result:
        line = (f"{' + '.join(result['split'])}: {sum(result['split_bytes']) / 1e6:.3f} MB float32 as two graphs (token "
                f"embeddings, then the model), max |ONNX - torch| {result['split_max_diff']:.2e}")
        if "split_int8" in result:
            line += (f"; with {os.path.basename(result['split_int8'])}: {result['split_int8_bytes'] / 1e6:.3f} MB int8, "
                     f"max |int8 - torch| {result['split_int8_max_diff']:.2e}")
        lines.append(line)
    if "runtime_files" in result:
        lines.append(f"for JavaScript and the browser (js/, examples/browser/): onnx/ with {', '.join(result['runtime_files'])}")
    return "\n".join(lines)
