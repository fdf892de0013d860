"""The `eelbert` console command: its argument parser and entry point, from the standard library alone.

Importing `eelbert_hf` takes seconds (it registers the Auto classes, which imports torch and transformers), so
this module parses the command line first and imports `eelbert_hf.apps.cli`, whose functions run the commands,
only afterwards: `eelbert --help`, `eelbert classify --help`, `eelbert export --help`, a missing or unknown
command and a bad flag are answered without importing torch, transformers or eelbert_hf. `pretrain`, `finetune`
and `distill` accept every `TrainingArguments` flag (`--output_dir`, `--max_steps`, `--num_train_epochs`,
`--per_device_train_batch_size`, `--learning_rate`, `--seed`, ...) next to their own and are parsed by transformers'
`HfArgumentParser`, so they, and their `--help`, import torch.
"""

import argparse
import os
import sys
import time

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
    report = commands.add_parser("hash-report", help="collisions, shared rows and neighbours of the n-gram hash")
    report.add_argument("--corpus", required=True, help="a text file, one sentence or document per line")
    report.add_argument("--tokenizer", default=None, help="tokenizer folder (default: the bundled vocabulary)")
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
                       help="comma-separated rows to time (onnx needs the onnx extra)")
    push = commands.add_parser("push", help="upload an exported folder (or `bundled`, the bundled classifier) to the Hub")
    push.add_argument("folder", help="a folder written by `eelbert export`, a training checkpoint (exported "
                      "first) or `bundled`")
    push.add_argument("repo_id", help="e.g. your-name/uno-eelbert")
    push.add_argument("--private", action="store_true")
    return parser


def parse(argv: list[str]) -> argparse.Namespace:
    """The parsed command line (argparse exits on --help and on errors). A training command's arguments are left
    unparsed, as `training_args`, for `HfArgumentParser` in `eelbert_hf.apps.arguments`."""
    if argv and argv[0] in TRAINING_COMMANDS:
        return argparse.Namespace(command=argv[0], training_args=list(argv[1:]))
    return build_parser().parse_args(argv)


def execute(args: argparse.Namespace):
    """Run a parsed command: the first point where eelbert_hf (with torch and transformers) is imported."""
    from eelbert_hf.apps.cli import dispatch

    return dispatch(args)


def main(argv=None):
    """Parse `argv` (default: sys.argv[1:]) and run its command; errors propagate (`run` prints them as one line)."""
    return execute(parse(sys.argv[1:] if argv is None else list(argv)))


def threads_for_a_shared_machine() -> int | None:
    """Give torch only the cores that other processes leave free, unless OMP_NUM_THREADS says otherwise; return the
    thread count set, or None. An intra-op thread whose core another process holds stalls every parallel op: on 2
    cores beside one CPU-bound process the quickstart took 184 s with 2 threads and 63 s with 1 (61 s with 2 threads
    when idle). Busy cores: the 1-minute load average, but no more than the processes running right now (so the load
    a finished job such as `pip install` leaves behind does not count). Imports torch only to set the count."""
    if "OMP_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
        return None
    cores, load = os.cpu_count() or 1, os.getloadavg()[0]
    busy = round(load)
    if busy:  # only then look at what runs now (five looks, 40 ms)
        running = _running_elsewhere()
        busy = busy if running is None else min(busy, running)
    free = max(1, cores - busy)
    if free >= cores:
        return None
    import torch

    torch.set_num_threads(free)
    print(f"eelbert: the machine is busy (load average {load:.1f} on {cores} cores): {free} torch "
          "thread(s); set OMP_NUM_THREADS to choose", file=sys.stderr)
    return free


def _running_elsewhere() -> int | None:
    """How many other processes are running on a CPU now (Linux /proc/loadavg: the median of 5 looks, 10 ms apart);
    None where that is unknown."""
    counts = []
    try:
        for _ in range(5):
            with open("/proc/loadavg", encoding="ascii") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)  # "running/total": this process is one
            time.sleep(0.01)
    except (OSError, ValueError, IndexError):
        return None
    return sorted(counts)[len(counts) // 2]


def run(argv=None):
    """The `eelbert` console command: `main`, with a user error (a bad value, a missing file or folder) printed as
    one line and exit status 2; `--debug` (or EELBERT_DEBUG=1) shows the traceback instead. The torch thread
    count is chosen (`threads_for_a_shared_machine`) after the arguments are parsed, before the command runs."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("EELBERT_DEBUG") == "1"
    args = parse([a for a in argv if a != "--debug"])
    try:
        threads_for_a_shared_machine()
        return execute(args)
    except (ValueError, TypeError, OSError) as error:
        if debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"eelbert: error: {message} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    run()
