"""Resolving what a user names as a model: a local folder, or a Hub name."""

import os


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
