"""Resolving what a user names as a model (a local folder or a Hub name) and pairing it with its tokenizer."""

import os

from .modeling.configuration_eelbert import EELBertConfig
from .tokenization.tokenization_eelbert import EELBertTokenizer

NGRAM_FIELDS = ("hash_scheme", "ngram_min_n", "ngram_max_n", "max_ngrams_per_token")


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
    return name_or_path


def check_compatible(config: EELBertConfig, tokenizer) -> None:
    """Raise a ValueError if `tokenizer` emits n-gram ids that `config`'s model does not expect."""
    embedding_type = getattr(config, "embedding_type", "dynamic")
    if embedding_type in ("table", "hash_init"):
        return  # these read input_ids only
    want_features = "whole_token" if embedding_type == "random_hash" else "ngram"
    if getattr(tokenizer, "feature_type", None) != want_features:
        raise ValueError(f"embedding_type={embedding_type!r} needs a tokenizer with feature_type={want_features!r}, "
                         f"got {getattr(tokenizer, 'feature_type', None)!r}")
    for field in NGRAM_FIELDS:
        want, got = getattr(config, field), getattr(tokenizer, field, None)
        if want != got:
            raise ValueError(f"tokenizer and model disagree on {field}: the model expects {want!r}, the tokenizer "
                             f"produces {got!r}. Load the tokenizer saved with this model, or build one with "
                             f"EELBertTokenizer.from_pretrained(..., {field}={want!r}).")


def load_tokenizer(path: str | None, config=None) -> EELBertTokenizer:
    """The tokenizer saved in `path` if it holds one, else the bundled vocabulary with `config`'s hash fields."""
    has_files = path and any(os.path.exists(os.path.join(path, f)) for f in ("tokenizer_config.json", "vocab.txt"))
    if has_files or (path and not os.path.isdir(path)):
        tokenizer = EELBertTokenizer.from_pretrained(path)
    else:
        params = {}
        if config is not None:
            params = {k: getattr(config, k) for k in ("ngram_min_n", "ngram_max_n", "max_ngrams_per_token")}
            params["feature_type"] = "whole_token" if config.embedding_type == "random_hash" else "ngram"
        tokenizer = EELBertTokenizer.from_bundled_vocab(**params)
    if config is not None:
        check_compatible(config, tokenizer)
    return tokenizer
