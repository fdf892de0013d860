"""`eelbert bench`: the paths users take, an EELBERT classifier against a transformers BERT of the same dimensions
(`BertForSequenceClassification` + `BertTokenizerFast` on the same vocabulary), measured in the same run.

Rows: `pipeline("text-classification")` and `pipeline("feature-extraction")` at each batch size; `eelbert classify
--file` against the same texts through a transformers pipeline of the saved twin, process start to last label; the
int8 ONNX models under onnxruntime, features included (`load_onnx_classifier` as one graph and with its cache of
token embeddings; BERT's tokenizer + session); with the `browser` part, the demo page's classifier in headless
Chromium against the twin through onnxruntime-web. The two sides run on the same texts in alternation (EELBERT,
BERT, EELBERT, ...), so background load hits both alike; a row is the median texts per second of each and their
ratio EELBERT / BERT. The BERT twin has random weights: its speed, not its answers, is what is compared.
"""

import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

from ..loading import BUNDLED_CLASSIFIER, load_classifier, resolve

SAMPLE = os.path.join(os.path.dirname(BUNDLED_CLASSIFIER), "rt_sample_validation.jsonl")


def read_texts(path: str) -> list[str]:
    """Texts from a .jsonl file (its "text" field) or a text file (one a line)."""
    if not os.path.isfile(path):
        raise ValueError(f"--texts: no such file {path!r}")
    with open(path, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()]
    return [json.loads(line)["text"] for line in lines] if path.endswith(".jsonl") else lines


def bert_twin_pipeline(config):
    """A text-classification pipeline of a randomly initialised BertForSequenceClassification with `config`'s
    dimensions and BertTokenizerFast on the bundled vocabulary."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast, pipeline

    fields = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size", "num_labels")
    model = BertForSequenceClassification(BertConfig(**{f: getattr(config, f) for f in fields})).eval()
    tokenizer = BertTokenizerFast.from_pretrained(os.path.dirname(BUNDLED_CLASSIFIER))  # the folder with vocab.txt
    if len(tokenizer) != config.vocab_size:  # BertTokenizerFast(vocab_file=...) would silently hold 5 tokens
        raise ValueError(f"the BERT twin's tokenizer has {len(tokenizer)} tokens, not {config.vocab_size}")
    return pipeline("text-classification", model=model, tokenizer=tokenizer)


def _race(runs: dict, texts: list[str], batch_sizes, repeats: int, what: str) -> list:
    """Time `runs[name](texts, batch_size)` for "eelbert" and "bert" in alternation: one row per batch size."""
    if not texts:
        raise ValueError("no texts to time")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    rows = []
    for batch_size in batch_sizes:
        seconds = {name: [] for name in runs}
        for run in runs.values():  # warm-up: first calls build caches and pick kernels
            run(texts[:batch_size], batch_size)
        for _ in range(repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run(texts, batch_size)
                seconds[name].append(time.perf_counter() - start)
        rate = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
        rows.append({"what": what, "batch_size": batch_size, "eelbert_texts_per_s": rate["eelbert"],
                     "bert_texts_per_s": rate["bert"], "ratio": rate["eelbert"] / rate["bert"]})
    return rows


def _pipeline_run(pipe):
    return lambda texts, batch_size: pipe(texts, batch_size=batch_size, truncation=True, max_length=128)


def pipeline_throughput(texts: list[str], model: str | None = None, batch_sizes=(1, 64), repeats: int = 3,
                        task: str = "text-classification") -> list:
    """[{"what", "batch_size", "eelbert_texts_per_s", "bert_texts_per_s", "ratio"}, ...] for each batch size, for a
    text-classification or a feature-extraction pipeline (the classifier's encoder, BERT's `BertModel`)."""
    from transformers import pipeline

    eelbert = load_classifier(model)
    bert = bert_twin_pipeline(eelbert.model.config)
    if task == "feature-extraction":
        eelbert = pipeline(task, model=eelbert.model.bert, tokenizer=eelbert.tokenizer)
        bert = pipeline(task, model=bert.model.bert, tokenizer=bert.tokenizer)
    elif task != "text-classification":
        raise ValueError(f"task must be text-classification or feature-extraction, got {task!r}")
    runs = {"eelbert": _pipeline_run(eelbert), "bert": _pipeline_run(bert)}
    return _race(runs, texts, batch_sizes, repeats, f"pipeline {task}")


BERT_CLASSIFY = ("import sys, transformers; transformers.logging.disable_progress_bar(); "
                 "pipe = transformers.pipeline('text-classification', model=sys.argv[1]); "
                 "texts = [t for t in open(sys.argv[2], encoding='utf-8').read().splitlines() if t.strip()]; "
                 "print('\\n'.join(r['label'] for r in pipe(texts, batch_size=64, truncation=True, max_length=128)))")


def classify_file_throughput(texts: list[str], model: str | None = None, repeats: int = 3) -> list:
    """`eelbert classify --file` (process start to last label) against the same texts through
    `transformers.pipeline("text-classification")` of the saved BERT twin in a fresh process of its own."""
    eelbert = load_classifier(model)
    with tempfile.TemporaryDirectory() as tmp:
        path, twin = os.path.join(tmp, "texts.txt"), os.path.join(tmp, "bert-twin")
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(t.replace("\n", " ") for t in texts) + "\n")
        bert = bert_twin_pipeline(eelbert.model.config)
        bert.model.save_pretrained(twin)
        bert.tokenizer.save_pretrained(twin)
        model_args = [] if model in (None, "bundled") else ["--model", model]
        commands = {"eelbert": [sys.executable, "-m", "eelbert_hf", "classify", *model_args, "--file", path],
                    "bert": [sys.executable, "-c", BERT_CLASSIFY, twin, path]}

        def run(command):
            result = subprocess.run(command, capture_output=True, text=True)
            if result.returncode != 0 or len(result.stdout.splitlines()) != len(texts):
                raise RuntimeError(f"{command[:4]} failed: {result.stderr[-2000:]}")

        runs = {name: (lambda texts_, batch_size, command=command: run(command)) for name, command in commands.items()}
        return _race(runs, texts, [64], repeats, "classify --file, process start to last label")


def export_bert_twin(bert, folder: str, texts: list[str]) -> str:
    """The twin pipeline's model as ONNX (``folder/onnx/model.onnx``, dynamic batch and sequence axes) and int8
    (``model_quantized.onnx``, quantised as ours), with its tokenizer files beside; returns the int8 path."""
    import torch

    from ..packaging import onnx_export

    names = ("input_ids", "attention_mask", "token_type_ids")
    sample = bert.tokenizer(texts[:2], padding=True, return_tensors="pt")
    dim = {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}
    path = os.path.join(folder, "onnx", "model.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(bert.model.eval(), (), path, kwargs={n: sample[n] for n in names}, input_names=list(names),
                          output_names=["logits"], dynamic_shapes={n: dim for n in names}, dynamo=True,
                          external_data=False, verbose=False)
    bert.tokenizer.save_pretrained(folder)
    return onnx_export.quantize_onnx(path, path.replace(".onnx", "_quantized.onnx"))


def _exports(texts, model, folder):
    """Our export (``--onnx --quantize``) and the BERT twin's, into `folder`: (ours, twin folder, twin pipeline)."""
    from ..packaging import onnx_export

    eelbert = load_classifier(model)
    bert = bert_twin_pipeline(eelbert.model.config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' and quantizer's notes on their internals
        logging.disable(logging.WARNING)
        try:
            ours = os.path.join(folder, "eelbert")
            onnx_export.export_checkpoint(resolve(model), ours, quantize=True)
            twin = os.path.join(folder, "bert")
            export_bert_twin(bert, twin, texts)
        finally:
            logging.disable(logging.NOTSET)
    return ours, twin, bert


def _cache_note(info: dict) -> str:
    return f"cache: {info['tokens']:,} tokens, {info['bytes'] / 2**20:.2f} MiB (bound {info['max_bytes'] / 2**20:.0f} MiB)"


def onnx_int8_throughput(texts: list[str], model: str | None = None, batch_sizes=(1, 64), repeats: int = 3) -> list:
    """The int8 ONNX classifier under onnxruntime through ``load_onnx_classifier`` (tokenizer and features
    included), as one graph on every call and with its token-embedding cache (warm: the texts' tokens are stored
    after the warm-up and first repeat), each against an int8 ONNX BERT twin under onnxruntime with BERT's tokenizer
    (both dynamic-quantised the same way; needs the onnx extra). The cached rows note the cache's memory. The
    classifier tokenizes with the base's Rust tokenizer directly (``OnnxClassifier.encode``), so the cached path is
    also raced against BERT tokenized the same way, the stricter comparison."""
    import numpy as np
    import torch

    from ..packaging import onnx_export, onnx_runtime

    threads = torch.get_num_threads()  # as many as the torch rows use
    with tempfile.TemporaryDirectory() as tmp:
        ours, twin, bert = _exports(texts, model, tmp)
        bert_session = onnx_export.onnx_session(os.path.join(twin, "onnx", "model_quantized.onnx"), threads)
        classifiers = {"single graph": onnx_runtime.load_onnx_classifier(ours, threads, cache_bytes=0),
                       "cached token embeddings": onnx_runtime.load_onnx_classifier(ours, threads)}
    names = [i.name for i in bert_session.get_inputs()]

    def run_bert(texts_, batch_size):
        for start in range(0, len(texts_), batch_size):
            encoded = bert.tokenizer(texts_[start : start + batch_size], padding=True, truncation=True, max_length=128,
                                     return_tensors="np")
            bert_session.run(None, {n: encoded[n].astype("int64") for n in names})

    bert_encoder = onnx_runtime._batch_encoder(bert.tokenizer, 128)

    def run_bert_rust(texts_, batch_size):  # BERT tokenized as load_onnx_classifier tokenizes: the Rust encoder alone
        for start in range(0, len(texts_), batch_size):
            encodings = bert_encoder.encode_batch(texts_[start : start + batch_size])
            columns = {"input_ids": "ids", "attention_mask": "attention_mask", "token_type_ids": "type_ids"}
            bert_session.run(None, {n: np.array([getattr(e, columns[n]) for e in encodings], np.int64) for n in names})

    rows = []
    for label, classifier in classifiers.items():
        def run(texts_, batch_size, classifier=classifier):
            for start in range(0, len(texts_), batch_size):
                classifier(texts_[start : start + batch_size])

        bert_runs = {"": run_bert}
        if classifier.cached:
            bert_runs[", BERT also through its Rust tokenizer directly"] = run_bert_rust
        for suffix, bert_run in bert_runs.items():
            race = _race({"eelbert": run, "bert": bert_run}, texts, batch_sizes, repeats,
                         f"onnxruntime int8, {label}{suffix}")
            for row in race if classifier.cached else []:
                row["note"] = _cache_note(classifier.cache_info())
            rows += race
    return rows


JS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "js")  # the repository's js/, beside src/


def browser_throughput(texts: list[str], model: str | None = None, batch_sizes=(1, 64), repeats: int = 3) -> list:
    """The demo page's classifier in headless Chromium (int8, cached and single graph) against the BERT twin's int8
    ONNX with tokenizers.js through the same onnxruntime-web (js/scripts/bench-browser.js; needs node, the
    repository's js/ after `npm ci`, and Chromium at /usr/bin/chromium or $CHROMIUM_PATH)."""
    script = os.path.abspath(os.path.join(JS_DIR, "scripts", "bench-browser.js"))
    if not os.path.isdir(os.path.join(JS_DIR, "node_modules", "playwright-core")):
        raise ValueError(f"the browser rows need the repository's js/ with its packages: cd {os.path.abspath(JS_DIR)} "
                         "&& npm ci (and Chromium: apt-get install chromium)")
    with tempfile.TemporaryDirectory() as tmp:
        ours, twin, _ = _exports(texts, model, tmp)
        texts_path = os.path.join(tmp, "texts.json")
        with open(texts_path, "w", encoding="utf-8") as f:
            json.dump(texts, f)
        result = subprocess.run(["node", script, ours, twin, texts_path, str(repeats), ",".join(map(str, batch_sizes))],
                                capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"bench-browser.js failed: {result.stderr.strip()[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])["rows"]


def all_rows(texts: list[str], model: str | None = None, batch_sizes=(1, 64), repeats: int = 3,
             parts=("text-classification", "feature-extraction", "classify-file", "onnx")) -> list:
    """Every row `eelbert bench` prints, for the chosen parts."""
    known = ("text-classification", "feature-extraction", "classify-file", "onnx", "browser")
    if unknown := [p for p in parts if p not in known]:
        raise ValueError(f"unknown bench parts {unknown}; choose from {known}")
    rows = []
    for part in parts:
        if part in ("text-classification", "feature-extraction"):
            rows += pipeline_throughput(texts, model, batch_sizes, repeats, task=part)
        elif part == "classify-file":
            rows += classify_file_throughput(texts, model, repeats)
        elif part == "onnx":
            rows += onnx_int8_throughput(texts, model, batch_sizes, repeats)
        else:
            rows += browser_throughput(texts, model, batch_sizes, repeats)
    return rows
