"""Command-line flags of `eelbert pretrain | finetune | distill`: this package's argument dataclasses plus every
`TrainingArguments` flag, parsed by transformers' `HfArgumentParser`."""

import os

from transformers import HfArgumentParser, TrainingArguments

from .distillation import DistillArguments
from .training import DataArguments, ModelArguments

# Defaults that differ from TrainingArguments' (any flag given on the command line wins).
PRETRAIN_DEFAULTS = ["--eval_strategy", "steps", "--eval_steps", "500", "--save_steps", "500", "--logging_steps",
                     "50", "--report_to", "none", "--dataloader_pin_memory", "false", "--learning_rate", "1e-3",
                     "--per_device_train_batch_size", "32"]
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
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        defaults = defaults + ["--use_cpu", "true"]  # several processes, no GPU: data parallel on CPU (gloo)
    return parser.parse_args_into_dataclasses(args=defaults + argv)
