"""Command-line flags of `eelbert pretrain | finetune | distill`: this package's argument dataclasses plus every
`TrainingArguments` flag, parsed by transformers' `HfArgumentParser`."""

from transformers import HfArgumentParser, TrainingArguments

from ..distillation import DistillArguments
from ..training import DataArguments, ModelArguments

# Defaults that differ from TrainingArguments' (any flag given on the command line wins).
PRETRAIN_DEFAULTS = ["--eval_strategy", "steps", "--eval_steps", "500", "--save_steps", "500", "--logging_steps",
                     "50", "--report_to", "none", "--dataloader_pin_memory", "false", "--learning_rate", "1e-3",
                     "--per_device_train_batch_size", "32",
                     "--include_num_input_tokens_seen", "true"]  # Trainer's token count ("all"): tokens/s in the logs
FINETUNE_DEFAULTS = ["--eval_strategy", "epoch", "--save_strategy", "epoch", "--logging_steps", "50",
                     "--report_to", "none", "--dataloader_pin_memory", "false", "--learning_rate", "5e-4",
                     "--per_device_train_batch_size", "32", "--num_train_epochs", "3"]


def parse_training_args(kind: str, argv: list[str]):
    """(ModelArguments, DataArguments, [DistillArguments,] TrainingArguments) for `eelbert pretrain|finetune|distill`
    command-line flags."""
    import torch

    classes = [ModelArguments, DataArguments, TrainingArguments]
    if kind == "distill":
        classes.insert(2, DistillArguments)
    parser = HfArgumentParser(classes, prog=f"eelbert {kind}")
    defaults = PRETRAIN_DEFAULTS if kind == "pretrain" else FINETUNE_DEFAULTS
    if not _has_accelerator(torch):
        # no GPU: train on CPU explicitly, which TrainingArguments asks for before it allows --bf16 / --fp16
        # (CPU autocast), and which several processes need for data parallelism over gloo
        defaults = defaults + ["--use_cpu", "true"]
    parsed = parser.parse_args_into_dataclasses(args=defaults + argv)
    if kind != "pretrain" and parsed[1].streaming:
        raise ValueError(f"--streaming is for `eelbert pretrain`; `eelbert {kind}` reads its (labelled) data whole")
    return parsed


def _has_accelerator(torch) -> bool:
    """Whether torch sees a GPU (CUDA, ROCm, MPS or XPU)."""
    if hasattr(torch, "accelerator"):
        return torch.accelerator.is_available()
    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available())
