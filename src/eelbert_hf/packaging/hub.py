"""Saving EELBERT as a Hub-ready folder (weights, config, tokenizer, the flat remote-code files, a model card)
and pushing it to the Hub."""

import json
import os

from ..loading import check_compatible, load_checkpoint
from ..modeling.configuration_eelbert import PRESETS

# architecture -> (pipeline tag, Auto class)
HEADS = {
    "EELBertModel": ("feature-extraction", "AutoModel"),
    "EELBertForMaskedLM": ("fill-mask", "AutoModelForMaskedLM"),
    "EELBertForSequenceClassification": ("text-classification", "AutoModelForSequenceClassification"),
    "EELBertForTokenClassification": ("token-classification", "AutoModelForTokenClassification"),
    "EELBertForQuestionAnswering": ("question-answering", "AutoModelForQuestionAnswering"),
    "EELBertForMultipleChoice": ("multiple-choice", "AutoModelForMultipleChoice"),
}
# what a complete folder holds: weights, config, tokenizer, card and the flat remote-code files
HUB_REQUIRED = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "README.md",
                "configuration_eelbert.py", "modeling_eelbert.py", "ngram_embedding.py", "tokenization_eelbert.py",
                "ngram_hashing.py")


def save_hub_folder(model, tokenizer, folder: str, training_data: str | None = None,
                    metrics: dict | None = None) -> dict:
    """Write model + tokenizer + their .py files + a model card to `folder` (what `eelbert push` uploads);
    return the file sizes."""
    check_compatible(model.config, tokenizer)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with open(os.path.join(folder, "README.md"), "w", encoding="utf-8") as f:
        f.write(model_card(model, os.path.getsize(os.path.join(folder, "model.safetensors")), training_data, metrics))
    return {name: os.path.getsize(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}


def _preset_name(config) -> str:
    return next((name for name, sizes in PRESETS.items() if all(getattr(config, k) == v for k, v in sizes.items())),
                "custom")


def model_card(model, checkpoint_bytes: int, training_data: str | None = None, metrics: dict | None = None) -> str:
    """A Hub model card (README.md with YAML metadata) describing an EELBERT checkpoint."""
    config, architecture = model.config, type(model).__name__
    pipeline_tag, auto_class = HEADS.get(architecture, ("feature-extraction", "AutoModel"))
    params = sum(p.numel() for p in model.parameters())
    dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    metric_lines = "".join(f"| {k} | {v:.4f} |\n" for k, v in sorted((metrics or {}).items())
                           if isinstance(v, float) and not k.endswith(("runtime", "per_second")))
    return f"""---
library_name: transformers
pipeline_tag: {pipeline_tag}
license: apache-2.0
tags:
- eelbert
- bert
- hashed-embeddings
- custom_code
---

# EELBERT ({_preset_name(config)}, {architecture})

A BERT whose checkpoint holds **no input-embedding table**: each token's input embedding is computed on the
fly from hashes of its character n-grams (EELBERT, Cohn et al. 2023, arXiv:2310.20144). The modeling and
tokenization code ships in this repository (`trust_remote_code=True`).

| | |
|---|---|
| architecture | {architecture} |
| preset | {_preset_name(config)} (L{config.num_hidden_layers} / H{config.hidden_size} / A{config.num_attention_heads}) |
| embedding_type | {config.embedding_type} |
| hash scheme | {config.hash_scheme} (n = {config.ngram_min_n}..{config.ngram_max_n}, {config.max_ngrams_per_token} n-grams per token) |
| parameters | {params:,} |
| model.safetensors | {checkpoint_bytes / 1e6:.3f} MB ({dtype}) |
| training data | {training_data or "not recorded"} |

{"| metric | value |" + chr(10) + "|---|---|" + chr(10) + metric_lines if metric_lines else "No evaluation metrics recorded."}

## Use

```python
from transformers import AutoTokenizer, {auto_class}
tokenizer = AutoTokenizer.from_pretrained("<repo_id>", trust_remote_code=True)
model = {auto_class}.from_pretrained("<repo_id>", trust_remote_code=True)
```

The tokenizer returns `ngram_ids` next to `input_ids`; pass everything it returns to the model.
"""


def push(folder: str, repo_id: str, private: bool = False, token: str | None = None):
    """Upload a folder written by `save_hub_folder` / `eelbert export` to the Hub as `repo_id`."""
    from huggingface_hub import HfApi

    missing = [name for name in HUB_REQUIRED if not os.path.exists(os.path.join(folder, name))]
    if missing:
        raise ValueError(f"{folder} is not a complete EELBERT folder (missing {', '.join(missing)}): "
                         "write it with `eelbert export` first")
    card = os.path.join(folder, "README.md")
    with open(card, encoding="utf-8") as f:
        text = f.read()
    with open(card, "w", encoding="utf-8") as f:
        f.write(text.replace("<repo_id>", repo_id))  # the card's loading snippet names the real repository
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=folder, repo_id=repo_id, commit_message="Upload EELBERT model")


def export(checkpoint: str, output_dir: str, fp16: bool = False, training_data: str | None = None,
           head: str | None = None) -> dict:
    """A training checkpoint (MLM or classifier) -> a Hub-ready folder, optionally in float16; returns sizes.

    `head`: a pipeline tag or Auto class of `HEADS` (e.g. "feature-extraction"): the folder then holds that model
    only, e.g. the encoder of an MLM checkpoint without its 30,522-row output layer. Default: the checkpoint's own."""
    import torch
    from transformers.utils import logging as hf_logging

    architecture = None
    if head is not None:
        names = {tag: arch for arch, pair in HEADS.items() for tag in (arch, *pair)}
        if head not in names:
            raise ValueError(f"unknown head {head!r}; choose one of {', '.join(t for t, _ in HEADS.values())}")
        architecture = names[head]
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # another head than the checkpoint's: its load report lists the dropped layers
    try:
        model, tokenizer = load_checkpoint(checkpoint, architecture, torch.float16 if fp16 else torch.float32)
    finally:
        hf_logging.set_verbosity(verbosity)
    metrics_file = os.path.join(checkpoint, "metrics.json")
    metrics = json.load(open(metrics_file, encoding="utf-8")) if os.path.exists(metrics_file) else None
    return save_hub_folder(model, tokenizer, output_dir, training_data, metrics)


def save_sentence_transformers_config(folder: str, config) -> list[str]:
    """Write the sentence-transformers files (Transformer + mean Pooling) into an exported folder; return their
    names. `SentenceTransformer(folder, trust_remote_code=True)` then loads it without guessing the pooling."""
    files = {
        "modules.json": [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
                         {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}],
        "sentence_bert_config.json": {"max_seq_length": config.max_position_embeddings, "do_lower_case": False},
        os.path.join("1_Pooling", "config.json"): {"word_embedding_dimension": config.hidden_size,
                                                   "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": False,
                                                   "pooling_mode_max_tokens": False, "include_prompt": True},
    }
    for name, content in files.items():
        os.makedirs(os.path.dirname(os.path.join(folder, name)), exist_ok=True)
        with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
            json.dump(content, f, indent=2)
    return list(files)
