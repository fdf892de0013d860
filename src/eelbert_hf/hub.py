"""Saving EELBERT as a Hub-ready folder: weights, config, tokenizer and the flat remote-code files."""

import os

from .modeling.configuration_eelbert import EELBertConfig

NGRAM_FIELDS = ("hash_scheme", "ngram_min_n", "ngram_max_n", "max_ngrams_per_token")


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


def save_hub_folder(model, tokenizer, folder: str) -> dict:
    """Write model + tokenizer + their .py files to `folder` (what `push_to_hub` uploads); return file sizes."""
    check_compatible(model.config, tokenizer)
    os.makedirs(folder, exist_ok=True)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {name: os.path.getsize(os.path.join(folder, name)) for name in sorted(os.listdir(folder))}


def export(checkpoint: str, output_dir: str, fp16: bool = False) -> dict:
    """A training checkpoint (MLM or classifier) -> a Hub-ready folder, optionally in float16; returns sizes."""
    import torch
    from transformers import AutoConfig

    from .modeling import modeling_eelbert
    from .training import load_tokenizer

    config = AutoConfig.from_pretrained(checkpoint)
    architecture = (config.architectures or ["EELBertModel"])[0]
    model_class = getattr(modeling_eelbert, architecture, None)
    if model_class is None or not architecture.startswith("EELBert"):
        raise ValueError(f"{checkpoint} holds a {architecture}, not an EELBERT model")
    model = model_class.from_pretrained(checkpoint, dtype=torch.float16 if fp16 else torch.float32)
    return save_hub_folder(model, load_tokenizer(checkpoint, config), output_dir)
