"""`eelbert bench`: an EELBERT classifier's `pipeline("text-classification")` against a transformers BERT of the
same dimensions (`BertForSequenceClassification` + `BertTokenizerFast` on the same vocabulary), in one process.

The two pipelines run on the same texts in alternation (EELBERT, BERT, EELBERT, ...), so background load hits
both alike; a row is the median texts per second of each and their ratio EELBERT / BERT. The BERT twin has
random weights: its speed, not its answers, is what is compared.
"""

import json
import os
import statistics
import time

from .classify import BUNDLED_CLASSIFIER, load_classifier

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


def pipeline_throughput(texts: list[str], model: str | None = None, batch_sizes=(1, 64), repeats: int = 3) -> list:
    """[{"batch_size", "eelbert_texts_per_s", "bert_texts_per_s", "ratio"}, ...] for each batch size."""
    if not texts:
        raise ValueError("no texts to time")
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    eelbert = load_classifier(model)
    pipes = {"eelbert": eelbert, "bert": bert_twin_pipeline(eelbert.model.config)}
    rows = []
    for batch_size in batch_sizes:
        seconds = {name: [] for name in pipes}
        for name, pipe in pipes.items():  # warm-up: first calls build caches and pick kernels
            pipe(texts[:batch_size], batch_size=batch_size, truncation=True, max_length=128)
        for _ in range(repeats):
            for name, pipe in pipes.items():
                start = time.perf_counter()
                pipe(texts, batch_size=batch_size, truncation=True, max_length=128)
                seconds[name].append(time.perf_counter() - start)
        rate = {name: len(texts) / statistics.median(s) for name, s in seconds.items()}
        rows.append({"batch_size": batch_size, "eelbert_texts_per_s": rate["eelbert"],
                     "bert_texts_per_s": rate["bert"], "ratio": rate["eelbert"] / rate["bert"]})
    return rows
