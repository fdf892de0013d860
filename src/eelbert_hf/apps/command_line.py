"""The `eelbert` command line: its argument parser, from the standard library alone.

This module imports nothing but the standard library: the console script (src/eelbert_cli.py) runs this file
without importing eelbert_hf, whose `__init__` imports torch and transformers, so that `eelbert --help`, a
subcommand's `--help`, a missing or unknown command and a bad flag are answered at once. `eelbert_hf.apps.cli`
runs what it parses. `pretrain`, `finetune` and `distill` accept every `TrainingArguments` flag (`--output_dir`,
`--max_steps`, `--num_train_epochs`, `--per_device_train_batch_size`, `--learning_rate`, `--seed`, ...) next to
their own; their arguments are parsed by transformers' `HfArgumentParser` (`eelbert_hf.apps.arguments`), so they,
and their `--help`, import torch.
"""

import argparse
import sys

TRAINING_COMMANDS = ("pretrain", "finetune", "distill")


def build_parser() -> argparse.ArgumentParser:
    """The `eelbert` parser: every subcommand but the training ones' own flags (see `parse`)."""
    parser = argparse.ArgumentParser(prog="eelbert", description="EELBERT: BERT without an input-embedding table")
    commands = parser.add_subparsers(dest="command", required=True)
    quick = commands.add_parser("quickstart", help="classify, distill, export and remotely reload UNO, offline")
    quick.add_argument("--output-dir", default=None, help="where to save (default: a new temporary folder)")
    quick.add_argument("--preset", default="uno", choices=["uno", "tiny", "mini", "base"])
    quick.add_argument("--epochs", type=float, default=3.0, help="distillation epochs over the transfer set")
    quick.add_argument("--copies", type=int, default=8, help="augmented copies of each training review")
    commands.add_parser("pretrain", help="MLM pretraining with Trainer (see `eelbert pretrain --help`)", add_help=False)
    commands.add_parser("finetune", help="sequence classification with Trainer (`eelbert finetune --help`)",
                        add_help=False)
    commands.add_parser("distill", help="train a student on a teacher's soft labels (`eelbert distill --help`)",
                        add_help=False)
    export = commands.add_parser("export", help="checkpoint -> Hub-ready folder (weights, tokenizer, .py files)")
    export.add_argument("checkpoint", help="a training checkpoint folder, or `bundled` (the bundled classifier)")
    export.add_argument("output_dir")
    export.add_argument("--fp16", action="store_true", help="save the weights in float16 (half the size)")
    export.add_argument("--head", default=None, help="the model to write: feature-extraction (the encoder alone), "
                        "fill-mask, text-classification, ... (default: the checkpoint's own; --sentence-transformers "
                        "implies feature-extraction)")
    export.add_argument("--training-data", default=None, help="what the model was trained on (for the model card)")
    export.add_argument("--onnx", action="store_true", help="also write onnx/model.onnx (needs the onnx extra)")
    export.add_argument("--quantize", action="store_true", help="with --onnx: also onnx/model_quantized.onnx (int8)")
    export.add_argument("--eval-file", default=None, help="with --onnx: a .jsonl (text, label) to compare accuracies "
                        "on (default for classifiers: the bundled Rotten Tomatoes validation sample)")
    export.add_argument("--sentence-transformers", action="store_true",
                        help="also write modules.json and a mean-pooling config for SentenceTransformer")
    train_tok = commands.add_parser("train-tokenizer", help="train a base tokenizer (byte-level BPE, Unigram or "
                                    "WordPiece) on text files, saved as an EELBERT tokenizer for --tokenizer")
    train_tok.add_argument("files", nargs="+", help="text files to learn the vocabulary from")
    train_tok.add_argument("--output-dir", required=True, help="where to save the tokenizer")
    train_tok.add_argument("--model", default="bpe", choices=["bpe", "unigram", "wordpiece"],
                           help="bpe: byte-level BPE, any script without unknown tokens (default); unigram: "
                           "SentencePiece's Unigram; wordpiece: BERT's")
    train_tok.add_argument("--vocab-size", type=int, default=32000, help="tokens in the vocabulary, special included")
    train_tok.add_argument("--lowercase", action="store_true", help="lowercase the text first")
    report = commands.add_parser("hash-report", help="collisions, shared rows and neighbours of the n-gram hash")
    report.add_argument("--corpus", required=True, help="a text file, one sentence or document per line")
    report.add_argument("--tokenizer", default=None, help="an EELBERT tokenizer, or any fast tokenizer's folder or Hub "
                        "name (default: the bundled vocabulary)")
    report.add_argument("--max-lines", type=int, default=20000)
    report.add_argument("--words", nargs="+", default=None, help="words to show nearest neighbours for")
    classify = commands.add_parser("classify", help="sentiment of texts with the bundled UNO-EELBERT classifier")
    classify.add_argument("texts", nargs="*", help="texts to classify")
    classify.add_argument("--file", default=None, help="a text file, one text per line")
    classify.add_argument("--model", default="bundled", help="an EELBERT classifier folder or Hub name "
                          "(default: the UNO-EELBERT sentiment model bundled with the package)")
    bench = commands.add_parser("bench", help="texts/s of a classifier's pipeline against a BERT of the same size")
    bench.add_argument("--model", default="bundled", help="an EELBERT classifier folder or Hub name (default: bundled)")
    bench.add_argument("--texts", default=None, help="a .jsonl (text field) or text file (default: the bundled RT sample)")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 64])
    bench.add_argument("--repeats", type=int, default=3)
    bench.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    bench.add_argument("--parts", default="text-classification,feature-extraction,classify-file,onnx",
                       help="comma-separated rows to time (onnx needs the onnx extra; browser, not in the default, "
                       "needs node, the repository's js/ after npm ci, and Chromium)")
    push = commands.add_parser("push", help="upload an exported folder (or `bundled`, the bundled classifier) to the Hub")
    push.add_argument("folder", help="a folder written by `eelbert export`, a training checkpoint (exported "
                      "first) or `bundled`")
    push.add_argument("repo_id", help="e.g. your-name/uno-eelbert")
    push.add_argument("--private", action="store_true")
    return parser


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line (default: sys.argv[1:]; argparse exits on --help and on errors), with `debug`: whether
    `--debug` was given anywhere in it. A training command's arguments are left unparsed, as `training_args`, for
    `HfArgumentParser` in `eelbert_hf.apps.arguments`."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    if argv and argv[0] in TRAINING_COMMANDS:
        args = argparse.Namespace(command=argv[0], training_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    args.debug = debug
    return args
