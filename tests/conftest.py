import pytest
from transformers import TrainerCallback

from eelbert_hf import EELBertConfig, EELBertTokenizer

SENTENCES = [
    "The runner kept running, and everyone cheered!",
    "Un café naïve — 文字 and emoji 😀 too.",
    "short",
]


@pytest.fixture(scope="session")
def tokenizer():
    return EELBertTokenizer.from_bundled_vocab()


@pytest.fixture(scope="session")
def batch(tokenizer):
    """SENTENCES, padded, as tensors: the standard input of the model tests."""
    return tokenizer(SENTENCES, padding=True, return_tensors="pt")


def small_config(**overrides):
    """A 1-layer, 32-wide EELBERT: fast enough for every unit test."""
    fields = dict(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return EELBertConfig(**{**fields, **overrides})


class CrashAt(TrainerCallback):
    """Stands in for a crash or a kill: the run dies at the end of step `step`, after the checkpoints before it."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")
