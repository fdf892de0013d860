"""Which of transformers' own progress bars the `eelbert` commands and the quickstart show."""

from contextlib import contextmanager

# transformers' bars for moving weights between a file and memory: for models of a few MB they flash between the
# commands' own lines and say nothing. Download bars, Trainer's bars and this package's bars are kept.
WEIGHT_BARS = ("Loading weights", "Writing model shards")


@contextmanager
def quiet_weight_bars():
    """Within the block, transformers draws no `WEIGHT_BARS` (through its tqdm hook, so the user's own progress-bar
    settings and any hook already set apply to every other bar); the previous hook is restored on exit."""
    from transformers.utils import logging as hf_logging

    def hook(factory, args, kwargs):
        if kwargs.get("desc") in WEIGHT_BARS:
            kwargs = {**kwargs, "disable": True}
        return previous(factory, args, kwargs) if previous else factory(*args, **kwargs)

    previous = hf_logging.set_tqdm_hook(hook)
    try:
        yield
    finally:
        hf_logging.set_tqdm_hook(previous)
