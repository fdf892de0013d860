import pathlib

import pytest
from transformers import TrainerCallback

import eelbert_hf
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


BASE_FORMATS = {"wordpiece": "wordpiece", "bpe": "byte_level", "unigram": "metaspace", "plain": "plain"}
MULTILINGUAL = ["Здравствуй, мир.", "你好，世界。", "नमस्ते दुनिया", "مرحبا بالعالم", "Γειά σου Κόσμε", "שלום עולם",
                "こんにちは世界", "안녕하세요 세계", "Olá, café naïve!", "😀 👍🏽 ok"]


@pytest.fixture(scope="session")
def base_tokenizers(tmp_path_factory):
    """One small base tokenizer of each family (`BASE_FORMATS`), trained here on ~8 KB of the bundled Brown sample
    and a line of each of a few scripts (no downloads): name -> a transformers fast tokenizer."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import TokenizersBackend

    from eelbert_hf.training import BASE_SPECIAL_TOKENS, train_base_tokenizer

    corpus = tmp_path_factory.mktemp("corpus") / "corpus.txt"
    brown = (pathlib.Path(eelbert_hf.__file__).parent / "data" / "brown_sample.txt").read_text(encoding="utf-8")
    corpus.write_text(brown[:8000] + "\n" + "\n".join(MULTILINGUAL * 3) + "\n", encoding="utf-8")
    bases = {name: train_base_tokenizer([str(corpus)], name, 300, progress=False)
             for name in ("wordpiece", "bpe", "unigram")}
    plain = Tokenizer(models.BPE(unk_token="[UNK]"))  # word pieces with no start or continuation marker
    plain.pre_tokenizer = pre_tokenizers.Whitespace()
    plain.train([str(corpus)], trainers.BpeTrainer(vocab_size=300, special_tokens=list(BASE_SPECIAL_TOKENS.values()),
                                                   show_progress=False))
    bases["plain"] = TokenizersBackend(tokenizer_object=plain, **BASE_SPECIAL_TOKENS)
    return bases
