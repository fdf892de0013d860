"""Resolving what a user names as a model (a local folder, a Hub name or `bundled`) and pairing it with its
tokenizer; `pipeline` and `load_classifier` hand both to transformers' pipelines."""

import os

from .modeling.configuration_eelbert import EELBertConfig
from .modeling import ngram_hashing
from .modeling.ngram_hashing import NGRAM_FIELDS
from .tokenization.tokenization_eelbert import EELBertTokenizer

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")  # the package's bundled files
BUNDLED_CLASSIFIER = os.path.join(DATA_DIR, "uno-rt")  # UNO-EELBERT sentiment (its README.md is the model card)



def check_model_path(name_or_path: str, flag: str | None = None) -> str:
    """`name_or_path` if it is a folder that exists or has the shape of a Hub name (org/name); else a ValueError
    that says the folder is missing, instead of a Hub lookup that fails on the name's characters."""
    if os.path.isdir(name_or_path):
        return name_or_path
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        looks_local = True
    if looks_local:
        raise ValueError(f"{flag + ': ' if flag else ''}no folder {name_or_path!r} (and it is not a Hub name like "
                         "org/name)")
    check_hub_reachable(name_or_path, flag)
    return name_or_path


def check_hub_reachable(repo_id: str, flag: str | None = None) -> None:
    """A ValueError at once for a Hub name that is neither in the local cache nor downloadable because the Hub's
    host name does not resolve (no network), instead of huggingface_hub's retries (about 30 s)."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        return  # offline mode fails fast by itself; a cached download loads without the network
    host = urlparse(constants.ENDPOINT).hostname
    try:
        socket.getaddrinfo(host, 443)
    except OSError as error:
        raise ValueError(f"{flag + ': ' if flag else ''}{repo_id!r} is not in the local Hub cache and {host} cannot be "
                         f"reached ({error.strerror or error}): pass a local folder, or connect and try again") from None


def check_compatible(config: EELBertConfig, tokenizer) -> None:
    """Raise a ValueError if `tokenizer` emits n-gram ids that `config`'s model does not expect."""
    model_fields = {field: getattr(config, field, None) for field in ("embedding_type", "vocab_size", *NGRAM_FIELDS)}
    tokenizer_fields = {**(getattr(tokenizer, "ngram_params", None) or {"feature_type": None}), "vocab_size": len(tokenizer)}
    ngram_hashing.check_compatible(model_fields, tokenizer_fields)


def load_tokenizer(path: str | None, config=None, new_model: bool = False) -> EELBertTokenizer:
    """The tokenizer saved in `path`, or any fast tokenizer there (a folder or Hub name) wrapped as an EELBERT
    tokenizer; without tokenizer files, the bundled vocabulary. For a `new_model` (or the bundled vocabulary) it
    takes `config`'s n-gram fields and `config` takes its vocab_size, pad_token_id and token_format; a trained
    model's folder must already match (a mismatch is refused, not silently re-hashed)."""
    params = {}
    if config is not None:
        params = {k: getattr(config, k) for k in ("ngram_min_n", "ngram_max_n", "max_ngrams_per_token")}
        params["feature_type"] = "whole_token" if config.embedding_type == "random_hash" else "ngram"
    files = ("tokenizer_config.json", "tokenizer.json", "vocab.txt")
    if path and (any(os.path.exists(os.path.join(path, f)) for f in files) or not os.path.isdir(path)):
        tokenizer = EELBertTokenizer.from_pretrained(path, **(params if new_model else {}))
    else:
        tokenizer = EELBertTokenizer.from_bundled_vocab(**params)
    if config is not None:
        if new_model:
            config.vocab_size, config.pad_token_id = len(tokenizer), tokenizer.pad_token_id
            config.token_format = tokenizer.token_format
        check_compatible(config, tokenizer)
    return tokenizer


def resolve(name_or_path: str | None) -> str:
    """`None` or `"bundled"` -> the bundled classifier's folder; a folder or Hub name is returned unchanged, a
    missing folder is a ValueError."""
    return BUNDLED_CLASSIFIER if name_or_path in (None, "bundled") else check_model_path(name_or_path)


def pipeline(task: str, model, tokenizer=None, **kwargs):
    """transformers.pipeline(...), refusing a tokenizer whose n-gram features the model does not expect."""
    from transformers import pipeline as hf_pipeline

    pipe = hf_pipeline(task, model=model, tokenizer=tokenizer, **kwargs)
    check_compatible(pipe.model.config, pipe.tokenizer)
    return pipe


def load_classifier(name_or_path: str | None = None):
    """A transformers text-classification pipeline for an EELBERT classifier (default: the bundled one)."""
    import torch

    from .modeling.modeling_eelbert import EELBertForSequenceClassification

    path = resolve(name_or_path)
    model = EELBertForSequenceClassification.from_pretrained(path, dtype=torch.float32).eval()
    return pipeline("text-classification", model=model, tokenizer=load_tokenizer(path, model.config))


def load_checkpoint(checkpoint: str, architecture: str | None = None, dtype=None):
    """(model, tokenizer) of an EELBERT checkpoint folder: the class its config names (or `architecture`, e.g.
    "EELBertModel" for the encoder of an MLM checkpoint), and the tokenizer that matches it."""
    import torch
    from transformers import AutoConfig

    from .modeling import modeling_eelbert

    if not os.path.isdir(checkpoint):
        raise ValueError(f"no checkpoint folder {checkpoint!r}")
    config = AutoConfig.from_pretrained(checkpoint)
    architecture = architecture or (config.architectures or ["EELBertModel"])[0]
    model_class = getattr(modeling_eelbert, architecture, None)
    if model_class is None or not architecture.startswith("EELBert"):
        raise ValueError(f"{checkpoint} holds a {architecture}, not an EELBERT model")
    model = model_class.from_pretrained(checkpoint, dtype=dtype or torch.float32)
    return model, load_tokenizer(checkpoint, config)
