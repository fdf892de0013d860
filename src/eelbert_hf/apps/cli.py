"""The `eelbert` command: thin argument parsing over library functions.

`pretrain`, `finetune` and `distill` accept every `TrainingArguments` flag (`--output_dir`, `--max_steps`,
`--num_train_epochs`, `--per_device_train_batch_size`, `--learning_rate`, `--seed`, ...) next to their own.
"""

import argparse
import os
import sys


def _training_command(kind: str, argv: list[str]):
    from .. import training
    from .arguments import parse_training_args

    if kind == "distill":
        from ..distillation import distill

        trainer, metrics = distill(*parse_training_args(kind, argv))
        if trainer.is_world_process_zero():
            print(f"saved the distilled student and metrics.json to {trainer.args.output_dir}: {metrics}")
        return _end_cpu_process_group(trainer)
    model_args, data_args, training_args = parse_training_args(kind, argv)
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


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
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
    if argv and argv[0] in ("pretrain", "finetune", "distill"):
        return _training_command(argv[0], argv[1:])
    args = parser.parse_args(argv)
    from ..loading import DATA_DIR, resolve
    from .classify import training_data

    if args.command == "quickstart":
        from .quickstart import run_quickstart

        result = run_quickstart(args.output_dir, args.preset, args.epochs, args.copies)
        if result["max_diff"] > 1e-4:
            raise SystemExit(f"remote-code outputs differ by {result['max_diff']:.2e}")
    elif args.command == "export":
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
    elif args.command == "hash-report":
        from itertools import islice

        from ..diagnostics.hash_report import DEFAULT_WORDS, hash_report, print_report
        from ..loading import load_tokenizer

        with open(args.corpus, encoding="utf-8") as f:
            lines = [line for line in islice(f, args.max_lines) if line.strip()]
        print_report(hash_report(load_tokenizer(args.tokenizer), lines, words=args.words or DEFAULT_WORDS))
    elif args.command == "classify":
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
    elif args.command == "bench":
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
    elif args.command == "push":
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


def threads_for_a_shared_machine() -> int | None:
    """Give torch only the cores that other processes leave free (1-minute load average), unless OMP_NUM_THREADS
    says otherwise; return the thread count set, or None. An intra-op thread whose core another process holds
    stalls every parallel op: on 2 cores beside one CPU-bound process the quickstart took 184 s with 2 threads
    and 63 s with 1 (61 s with 2 threads when idle)."""
    if "OMP_NUM_THREADS" in os.environ or not hasattr(os, "getloadavg"):
        return None
    cores = os.cpu_count() or 1
    free = max(1, cores - round(os.getloadavg()[0]))
    if free >= cores:
        return None
    import torch

    torch.set_num_threads(free)
    print(f"eelbert: the machine is busy (load average {os.getloadavg()[0]:.1f} on {cores} cores): {free} torch "
          "thread(s); set OMP_NUM_THREADS to choose", file=sys.stderr)
    return free


def run(argv=None):
    """The `eelbert` console command: `main`, with a user error (a bad value, a missing file or folder) printed as
    one line and exit status 2; `--debug` (or EELBERT_DEBUG=1) shows the traceback instead."""
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv or os.environ.get("EELBERT_DEBUG") == "1"
    if argv and argv[0] not in ("-h", "--help"):
        threads_for_a_shared_machine()
    try:
        return main([a for a in argv if a != "--debug"])
    except (ValueError, TypeError, OSError) as error:
        if debug:
            raise
        message = " ".join(str(error).split()) or type(error).__name__
        print(f"eelbert: error: {message} (--debug shows the traceback)", file=sys.stderr)
        raise SystemExit(2) from None


if __name__ == "__main__":
    run()
