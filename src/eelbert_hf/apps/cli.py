"""What the `eelbert` command runs: one function per subcommand, thin over library functions.

`command_line.parse` parses the command line (the console script, src/eelbert_cli.py, runs that parser before
importing this module, so that `eelbert --help` does not wait for torch); `execute` runs a parsed command as the
console does, `main` and `run` parse and run in one call (for Python, tests and `python -m eelbert_hf`).

`pretrain`, `finetune` and `distill` accept every `TrainingArguments` flag (`--output_dir`, `--max_steps`,
`--num_train_epochs`, `--per_device_train_batch_size`, `--learning_rate`, `--seed`, ...) next to their own.
"""

import os
import sys
import time

from ..loading import DATA_DIR, resolve
from .classify import training_data
from .command_line import parse
from .progress import quiet_weight_bars

__all__ = ["dispatch", "execute", "main", "run", "threads_for_a_shared_machine"]


def main(argv=None):
    """Parse `argv` (default: sys.argv[1:]) and run its command; errors propagate (`run` prints them as one line)."""
    return dispatch(parse(argv))


def run(argv=None):
    """`eelbert` from Python or `python -m eelbert_hf`: `execute` the parsed `argv` (default: sys.argv[1:])."""
    return execute(parse(argv))


def execute(args):
    """Run a parsed command as the console does: the torch thread count is chosen first
    (`threads_for_a_shared_machine`); a user error (a bad value, a missing file or folder) is printed as one line
    with exit status 2, unless `--debug` (or EELBERT_DEBUG=1) asks for the traceback."""
    try:
        threads_for_a_shared_machine()
        return dispatch(args)
    except (ValueError, TypeError, OSError) as error:
        if args.debug or os.environ.get("EELBERT_DEBUG") == "1":
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"eelbert: error: {message} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(2) from None


def dispatch(args):
    """Run the command that `command_line.parse` parsed into `args`, without transformers' bars for loading and
    saving weights (`quiet_weight_bars`)."""
    with quiet_weight_bars():
        return COMMANDS[args.command](args)


def threads_for_a_shared_machine() -> int | None:
    """Give torch only the cores that other processes leave free, unless OMP_NUM_THREADS says otherwise; return the
    thread count set, or None. An intra-op thread whose core another process holds stalls every parallel op, so
    a busy machine runs faster with fewer threads (docs/design.md has the measurements). Busy cores: the 1-minute
    load average, but no more than the processes running right now (so the load a finished job such as
    `pip install` leaves behind does not count)."""
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


def training_command(args):
    """`eelbert pretrain | finetune | distill`: args.training_args parsed with HfArgumentParser."""
    from .. import training
    from .arguments import parse_training_args

    kind = args.command
    if kind == "distill":
        from ..distillation import distill

        trainer, metrics = distill(*parse_training_args(kind, args.training_args))
        if trainer.is_world_process_zero():
            print(f"saved the distilled student and metrics.json to {trainer.args.output_dir}: {metrics}")
        return _end_cpu_process_group(trainer)
    model_args, data_args, training_args = parse_training_args(kind, args.training_args)
    if kind == "pretrain":
        trainer = training.pretrain(model_args, data_args, training_args)
        evaluated = f", eval loss {trainer.evaluate()['eval_loss']:.4f}" if trainer.eval_dataset is not None else ""
        if trainer.is_world_process_zero():
            print(f"saved the MLM model to {training_args.output_dir} (world_size={training_args.world_size}, "
                  f"steps={trainer.state.global_step}{evaluated})")
    else:
        trainer, metrics = training.finetune(model_args, data_args, training_args)
        if trainer.is_world_process_zero():
            print(f"saved the classifier and metrics.json to {training_args.output_dir}: {metrics}")
    _end_cpu_process_group(trainer)


def _end_cpu_process_group(trainer):
    """A data-parallel CPU (gloo) worker whose outputs are written ends here, skipping interpreter teardown:
    there gloo's threads sometimes abort the process ("terminate called without an active exception", exit -6)
    after the work is done, and destroy_process_group can hang instead. No collective follows this point."""
    import torch

    if trainer.args.world_size > 1 and not torch.cuda.is_available():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def quickstart_command(args):
    from .quickstart import run_quickstart

    result = run_quickstart(args.output_dir, args.preset, args.epochs, args.copies)
    if result["max_diff"] > 1e-4:
        raise SystemExit(f"remote-code outputs differ by {result['max_diff']:.2e}")


def export_command(args):
    from transformers import AutoConfig

    from ..packaging.hub import export as export_folder

    checkpoint = resolve(args.checkpoint)
    head = args.head or ("feature-extraction" if args.sentence_transformers else None)
    sizes = export_folder(checkpoint, args.output_dir, fp16=args.fp16,
                          training_data=args.training_data or training_data(checkpoint), head=head)
    print(f"exported {checkpoint} to {args.output_dir}: model.safetensors {sizes['model.safetensors'] / 1e6:.3f} MB "
          f"({'float16' if args.fp16 else 'float32'}); files: {', '.join(sizes)}")
    if head is None and "MaskedLM" in str(AutoConfig.from_pretrained(checkpoint).architectures):
        print("  (an MLM checkpoint, with its output layer: --head feature-extraction writes the encoder alone)")
    if args.sentence_transformers:
        from ..packaging.hub import save_sentence_transformers_config

        written = save_sentence_transformers_config(args.output_dir, AutoConfig.from_pretrained(checkpoint))
        print(f"sentence-transformers: wrote {', '.join(written)}")
    if args.onnx:
        from ..packaging import onnx_export

        import logging
        import warnings

        eval_file = args.eval_file or os.path.join(DATA_DIR, "rt_sample_validation.jsonl")
        with warnings.catch_warnings():  # the exporter's and quantizer's notes on internals, not on the result
            warnings.simplefilter("ignore")
            logging.disable(logging.WARNING)
            try:
                # with --head, from the exported folder: the model that head chose, not the whole checkpoint
                source = args.output_dir if head else checkpoint
                result = onnx_export.export_checkpoint(source, args.output_dir, args.quantize, eval_file)
            finally:
                logging.disable(logging.NOTSET)
        print(onnx_export.describe(result))


def hash_report_command(args):
    from itertools import islice

    from ..diagnostics.hash_report import DEFAULT_WORDS, hash_report, print_report
    from ..loading import load_tokenizer

    with open(args.corpus, encoding="utf-8") as f:
        lines = [line for line in islice(f, args.max_lines) if line.strip()]
    print_report(hash_report(load_tokenizer(args.tokenizer), lines, words=args.words or DEFAULT_WORDS))


def train_tokenizer_command(args):
    from ..tokenization.tokenization_eelbert import EELBertTokenizer
    from ..training import train_base_tokenizer

    base = train_base_tokenizer(args.files, args.model, args.vocab_size, lowercase=args.lowercase)
    tokenizer = EELBertTokenizer.from_base(base)
    tokenizer.save_pretrained(args.output_dir)
    print(f"saved a {args.model} tokenizer of {len(tokenizer):,} tokens (token_format {tokenizer.token_format!r}) to "
          f"{args.output_dir}; train on it with: eelbert pretrain --tokenizer {args.output_dir} ...")


def classify_command(args):
    from .classify import classify as classify_texts

    texts = list(args.texts)
    if args.file:
        if not os.path.isfile(args.file):
            raise ValueError(f"--file: no such file {args.file!r}")
        with open(args.file, encoding="utf-8") as f:
            texts += [line.rstrip("\n") for line in f if line.strip()]
    if not texts:
        raise SystemExit('eelbert classify: give texts (eelbert classify "a gripping, funny film") or --file')
    for text, prediction in zip(texts, classify_texts(texts, args.model)):
        if prediction["label"] is None:  # nothing known in the text: say so instead of guessing
            print(f"-\t-\t{text}\t({prediction['warning']})")
        else:
            print(f"{prediction['label']}\t{prediction['score']:.3f}\t{text}")


def bench_command(args):
    import torch
    from transformers.utils import logging as hf_logging

    from ..diagnostics.bench import SAMPLE, all_rows, read_texts

    hf_logging.disable_progress_bar()
    if args.threads:
        torch.set_num_threads(args.threads)
    texts = read_texts(args.texts or SAMPLE)
    print(f"{len(texts)} texts, truncation at 128 tokens, {torch.get_num_threads()} torch threads; "
          f"median of {args.repeats}; EELBERT against a BERT of the same dimensions, same run")
    for row in all_rows(texts, args.model, args.batch_sizes, args.repeats, args.parts.split(",")):
        print(f"  {row['what']:<46} batch {row['batch_size']:>4}: EELBERT {row['eelbert_texts_per_s']:8.0f} "
              f"texts/s, BERT twin {row['bert_texts_per_s']:8.0f} texts/s, ratio {row['ratio']:.2f}"
              + (f"; {row['note']}" if "note" in row else ""), flush=True)


def push_command(args):
    import tempfile

    from ..packaging.hub import HUB_REQUIRED
    from ..packaging.hub import export as export_folder
    from ..packaging.hub import push as push_folder

    folder = resolve(args.folder)
    with tempfile.TemporaryDirectory() as tmp:
        have = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        if not set(HUB_REQUIRED) <= have and {"config.json", "model.safetensors"} <= have:  # a checkpoint
            export_folder(folder, tmp, training_data=training_data(folder))
            folder = tmp
        commit = push_folder(folder, args.repo_id, private=args.private)
    print(f"uploaded {args.folder} to https://huggingface.co/{args.repo_id} ({commit})")


COMMANDS = {"quickstart": quickstart_command, "pretrain": training_command, "finetune": training_command,
            "distill": training_command, "export": export_command, "hash-report": hash_report_command,
            "train-tokenizer": train_tokenizer_command,
            "classify": classify_command, "bench": bench_command, "push": push_command}


if __name__ == "__main__":
    run()
