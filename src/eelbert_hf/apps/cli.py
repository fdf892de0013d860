"""What the `eelbert` command runs: one function per subcommand, thin over library functions.

The command line is parsed in `eelbert_cli` (src/eelbert_cli.py, the console script), which imports this module
only after parsing, so that `eelbert --help` does not wait for torch; `dispatch` runs the parsed command. `main`,
`run` and `threads_for_a_shared_machine` are eelbert_cli's, importable from here too.

`pretrain`, `finetune` and `distill` accept every `TrainingArguments` flag (`--output_dir`, `--max_steps`,
`--num_train_epochs`, `--per_device_train_batch_size`, `--learning_rate`, `--seed`, ...) next to their own.
"""

import os
import sys

from eelbert_cli import main, run, threads_for_a_shared_machine

from ..loading import DATA_DIR, resolve
from .classify import training_data

__all__ = ["dispatch", "main", "run", "threads_for_a_shared_machine"]


def dispatch(args):
    """Run the command that `eelbert_cli.parse` parsed into `args`."""
    return COMMANDS[args.command](args)


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
    from transformers.utils import logging as hf_logging

    from ..packaging.hub import export as export_folder

    hf_logging.disable_progress_bar()  # loading and writing ~1 MB: the bars are noise here

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


def classify_command(args):
    from transformers.utils import logging as hf_logging

    from .classify import classify as classify_texts

    hf_logging.disable_progress_bar()  # a command-line tool: print the predictions only

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
              f"texts/s, BERT twin {row['bert_texts_per_s']:8.0f} texts/s, ratio {row['ratio']:.2f}", flush=True)


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
            "classify": classify_command, "bench": bench_command, "push": push_command}


if __name__ == "__main__":
    run()
