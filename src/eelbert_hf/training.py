"""Pretraining (MLM) and fine-tuning EELBERT with transformers' Trainer, datasets and accelerate.

Everything here is plain transformers: `Trainer` does the loop, checkpoints, evaluation, progress bars, mixed
precision and data parallelism (run under `accelerate launch` or `torchrun`), and `datasets` reads, streams and
shards the corpus. EELBERT adds one thing: `ngram_ids` must describe the final `input_ids` of a batch, which
`DataCollatorForEELBertMLM` guarantees after masking.
"""

import ast
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from itertools import islice

import numpy as np
import torch
from transformers import (
    AutoConfig,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import PrinterCallback, ProgressCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy

from .loading import load_tokenizer
from .modeling.ngram_embedding import DynamicNgramEmbeddings
from .modeling.configuration_eelbert import EELBertConfig
from .modeling.modeling_eelbert import EELBertForMaskedLM, EELBertForSequenceClassification
from .modeling import ngram_hashing
from .modeling.ngram_hashing import NGRAM_FIELDS

# GLUE task -> (text columns, number of labels; 1 = regression), as in transformers' run_glue.py
GLUE_TASKS = {
    "cola": (("sentence", None), 2), "sst2": (("sentence", None), 2), "mrpc": (("sentence1", "sentence2"), 2),
    "qqp": (("question1", "question2"), 2), "stsb": (("sentence1", "sentence2"), 1),
    "mnli": (("premise", "hypothesis"), 3), "qnli": (("question", "sentence"), 2),
    "rte": (("sentence1", "sentence2"), 2), "wnli": (("sentence1", "sentence2"), 2),
}


@dataclass
class DataCollatorForEELBertMLM(DataCollatorForLanguageModeling):
    """transformers' MLM collator (80 % [MASK], 10 % random token, 10 % unchanged), then `ngram_ids`
    recomputed from the *masked* `input_ids`: a [MASK] position carries [MASK]'s features, a replaced
    position the random token's, so the features never leak the answer.

    With a `seed`, each batch is masked by a generator seeded from (seed, epoch, the batch's token ids),
    not from a running random state: a run resumed from a checkpoint masks every batch exactly as the
    uninterrupted run did, whatever the data loader prefetched. `MLMEpochCallback` keeps `epoch` current.
    """

    epoch: int = 0

    def __call__(self, features, return_tensors=None):
        if self.seed is None:
            batch = super().__call__(features, return_tensors)
        else:
            unmasked = self.tokenizer.pad([{"input_ids": f["input_ids"]} for f in features], return_tensors="np",
                                          pad_to_multiple_of=self.pad_to_multiple_of)["input_ids"]
            key = hashlib.blake2b(unmasked.astype("<i8").tobytes(), digest_size=8,
                                  key=f"{self.seed}/{self.epoch}".encode()).digest()
            self.generator = torch.Generator().manual_seed(int.from_bytes(key, "little") >> 1)
            self._generator_pid = os.getpid()
            batch = super().__call__(features, return_tensors)
        ngram_ids = self.tokenizer.ngram_ids_for(np.asarray(batch["input_ids"]))
        batch["ngram_ids"] = torch.from_numpy(ngram_ids) if isinstance(batch["input_ids"], torch.Tensor) else ngram_ids
        return batch


class MLMEpochCallback(TrainerCallback):
    """Tells the MLM collator which epoch it is masking for (so each epoch masks differently).

    A map-style dataset's epoch is `state.epoch` (whole on an epoch's first step, also after a resume). A stream has
    no length: Trainer makes each pass over it an epoch and, on a resume, counts them from 0 again (replaying the
    stream from its start), so for a stream the epoch is the number of passes this `train()` call has begun."""

    def __init__(self, collator: DataCollatorForEELBertMLM, streaming: bool = False):
        self.collator, self.streaming, self.passes = collator, streaming, 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = self.passes if self.streaming else int(state.epoch + 1e-6)
        self.passes += 1


class TokensPerSecondCallback(TrainerCallback):
    """Adds `tokens_per_s` to each training log: input tokens of all processes per second of wall time since the
    previous log. It reads Trainer's own count (`--include_num_input_tokens_seen true`, the pretraining default;
    packed blocks are full, so padding barely counts); without that count it logs nothing."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = (time.perf_counter(), state.num_input_tokens_seen)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is None or "loss" not in logs or args.include_num_input_tokens_seen == "no":
            return
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        seconds, new_tokens = now - self.last[0], tokens - self.last[1]
        self.last = (now, tokens)
        if seconds > 0 and new_tokens > 0:
            logs["tokens_per_s"] = round(new_tokens / seconds, 1)
            if state.log_history and state.log_history[-1].get("step") == state.global_step:
                state.log_history[-1]["tokens_per_s"] = logs["tokens_per_s"]  # trainer_state.json keeps it too


class StreamPositionCallback(TrainerCallback):
    """`--streaming` with `--ignore_data_skip true`: a fast, approximate resume. Each checkpoint keeps where every
    process's stream stood (datasets' `IterableDataset.state_dict()`, in `stream_state-rank<N>.json`); a resumed
    run continues each stream from there instead of replaying it from the start. Not trained on: the blocks that
    were in the shuffle buffer (it refills from the stream) and the batch the loader had fetched ahead. The
    position is that of the first pass (a stream's `state_dict` applies to the pass it was taken in), and it is
    read in the main process, hence `--dataloader_num_workers 0`."""

    FILE = "stream_state-rank{}.json"

    def __init__(self):
        self.resume_from, self.stream = None, None

    @staticmethod
    def stream_of(train_dataloader):
        """The datasets IterableDataset a prepared loader iterates (accelerate may have sharded or wrapped it)."""
        from accelerate.data_loader import IterableDatasetShard

        dataset = getattr(train_dataloader, "dataset", None)
        return dataset.dataset if isinstance(dataset, IterableDatasetShard) else dataset

    def on_train_begin(self, args, state, control, train_dataloader=None, **kwargs):
        self.stream = self.stream_of(train_dataloader)
        if self.resume_from is None:
            return
        path = os.path.join(self.resume_from, self.FILE.format(args.process_index))
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.stream.load_state_dict(json.load(f))
        elif args.process_index == 0:
            print(f"{self.resume_from} keeps no stream position ({os.path.basename(path)}): the stream starts from its "
                  "beginning")

    def on_save(self, args, state, control, **kwargs):
        folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, self.FILE.format(args.process_index)), "w", encoding="utf-8") as f:
            json.dump(self.stream.state_dict(), f)


@dataclass
class ModelArguments:
    preset: str = field(default="uno", metadata={"help": "base | mini | tiny | uno (ignored with --config)"})
    config: str | None = field(default=None, metadata={"help": "config.json file or folder to build the model from"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from this checkpoint"})
    embedding_type: str | None = field(default=None, metadata={"help": "dynamic | table | hash_init | random_hash"})
    tokenizer: str | None = field(default=None, metadata={
        "help": "a saved EELBERT tokenizer, or any fast tokenizer's folder or Hub name (WordPiece, BPE, byte-level BPE, "
                "Unigram; e.g. from `eelbert train-tokenizer`), wrapped with the model's n-gram fields; a new model "
                "takes its vocab_size from it (default: the bundled bert-base-uncased vocabulary)"})
    config_overrides: str | None = field(default=None, metadata={
        "help": "config fields to set, as in run_mlm.py: 'ngram_weight_buckets=0,classifier_pooling=mean'"})


@dataclass
class DataArguments:
    train_files: list[str] | None = field(default=None, metadata={"help": "text (.txt), .csv or .jsonl files"})
    validation_files: list[str] | None = field(default=None, metadata={"help": "held-out files for evaluation"})
    dataset_name: str | None = field(default=None, metadata={"help": "a `datasets` name, e.g. wikitext or glue"})
    dataset_config_name: str | None = field(default=None, metadata={"help": "its config, e.g. a GLUE task"})
    text_column: str = field(default="text", metadata={"help": "the text column (finetune: first sentence)"})
    text_pair_column: str | None = field(default=None, metadata={"help": "finetune: second sentence column"})
    label_column: str = field(default="label", metadata={"help": "finetune: the label column"})
    max_seq_length: int = field(default=128, metadata={"help": "tokens per example (pretraining: per block)"})
    validation_split_percentage: int = field(default=2, metadata={"help": "pretraining eval share without files"})
    max_train_samples: int | None = field(default=None, metadata={"help": "truncate the training set"})
    mlm_probability: float = field(default=0.15, metadata={"help": "share of tokens to predict"})
    resume: bool = field(default=False, metadata={"help": "continue from the last complete checkpoint"})
    streaming: bool = field(default=False, metadata={
        "help": "pretrain: read --train_files or --dataset_name as a stream (a datasets IterableDataset), tokenised "
                "and packed on the fly: nothing is preprocessed up front or held in memory; needs --max_steps"})
    shuffle_buffer_size: int = field(default=10_000, metadata={
        "help": "--streaming: blocks held in the shuffle buffer (0: the stream's own order)"})
    max_eval_samples: int | None = field(default=None, metadata={
        "help": "pretrain: blocks in the evaluation set (default: all; with --streaming: the first 1,000)"})


def build_config(args: ModelArguments, **overrides) -> EELBertConfig:
    if args.model_name_or_path:
        config = AutoConfig.from_pretrained(args.model_name_or_path, **overrides)
    elif args.config:
        config = EELBertConfig.from_pretrained(args.config, **overrides)
    else:
        config = EELBertConfig.from_preset(args.preset, **overrides)
    if args.embedding_type:
        config.embedding_type = args.embedding_type
    for item in filter(None, (args.config_overrides or "").split(",")):
        key, _, value = item.partition("=")
        if not hasattr(config, key.strip()):
            raise ValueError(f"--config_overrides: the config has no field {key.strip()!r}")
        try:
            value = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):  # a bare word, as in run_mlm.py: classifier_pooling=mean
            value = value.strip()
        setattr(config, key.strip(), value)
    config.check()
    return config


def load_model(model_class, args: ModelArguments, config, tokenizer):
    """`model_class` from `--model_name_or_path`, or new from `config`; a new `hash_init` table starts from the hash."""
    if args.model_name_or_path:
        return model_class.from_pretrained(args.model_name_or_path, config=config)
    model = model_class(config)
    if config.embedding_type == "hash_init":
        init_table_from_hash(model, tokenizer)
    return model


def load_raw_datasets(data: DataArguments, split_for_eval: bool):
    """A DatasetDict with "train" (and "validation") from local files or a `datasets` name; with `data.streaming`
    an IterableDatasetDict, read lazily (local files line by line, Hub datasets shard by shard)."""
    import datasets

    streaming = {"streaming": True} if data.streaming else {}
    if data.dataset_name:
        raw = datasets.load_dataset(data.dataset_name, data.dataset_config_name, **streaming)
    elif data.train_files:
        files = {"train": data.train_files}
        if data.validation_files:
            files["validation"] = data.validation_files
        suffix = data.train_files[0].rsplit(".", 1)[-1]
        builder = {"txt": "text", "csv": "csv", "jsonl": "json", "json": "json"}.get(suffix)
        if builder is None:
            raise ValueError(f"unsupported file type .{suffix}: use .txt, .csv or .jsonl")
        raw = datasets.load_dataset(builder, data_files=files, **streaming)
    else:
        raise ValueError("give --train_files (text/csv/jsonl) or --dataset_name")
    if "validation" not in raw and "validation_matched" in raw:
        raw["validation"] = raw["validation_matched"]
    if data.streaming:  # a stream cannot be split by percentage: evaluation needs its own files or split
        if data.max_train_samples:
            raw["train"] = raw["train"].take(data.max_train_samples)
        return raw
    if split_for_eval and "validation" not in raw and data.validation_split_percentage > 0:
        split = raw["train"].train_test_split(test_size=data.validation_split_percentage / 100, seed=0)
        raw["train"], raw["validation"] = split["train"], split["test"]
    if data.max_train_samples:
        raw["train"] = raw["train"].select(range(min(data.max_train_samples, len(raw["train"]))))
    return raw


def special_tokens_around(tokenizer) -> tuple[list[int], list[int]]:
    """The ids a tokenizer's post-processor puts before and after one text: ([CLS], [SEP]) for BERT, (<s>, </s>) for
    RoBERTa, ([], []) for a base that adds none."""
    with_special = tokenizer("a", return_ngram_ids=False)["input_ids"]
    body = tokenizer("a", add_special_tokens=False, return_ngram_ids=False)["input_ids"]
    start = next(i for i in range(len(with_special)) if with_special[i : i + len(body)] == body)
    return with_special[:start], with_special[start + len(body) :]


def text_packer(tokenizer, column: str, max_seq_length: int):
    """A batched `map` function: text lines -> blocks of `max_seq_length` tokens (with the tokenizer's own special
    tokens around each, [CLS] ... [SEP] for BERT), as run_mlm.py packs them. The lines of one batch are joined; tokens
    left over after its last full block are dropped (a batch shorter than one block gives one short block).
    `ngram_ids` are left to the collator, which computes them after masking."""
    before, after = special_tokens_around(tokenizer)
    body = max_seq_length - len(before) - len(after)

    def pack(batch):
        texts = [t for t in batch[column] if t and t.strip()]
        ids = tokenizer(texts, add_special_tokens=False, return_ngram_ids=False)["input_ids"]
        flat = [i for seq in ids for i in seq]
        blocks = [flat[i : i + body] for i in range(0, len(flat) - body + 1, body)] or ([flat] if flat else [])
        return {"input_ids": [[*before, *b, *after] for b in blocks],
                "special_tokens_mask": [[1] * len(before) + [0] * len(b) + [1] * len(after) for b in blocks]}

    return pack


PACK_BATCH_LINES = 2000  # lines joined per packing batch, streamed or not: both paths cut the same blocks


def _columns(dataset) -> list[str]:
    """A dataset's columns; a stream that declares no features is asked for its first row."""
    if dataset.column_names is not None:
        return list(dataset.column_names)
    return list(next(iter(dataset)).keys())


def _check_text_column(columns, column):
    if column not in columns:
        raise ValueError(f"no column {column!r} in the data (columns: {columns}); set --text_column")


def mlm_blocks(raw, tokenizer, data: DataArguments):
    """Tokenise text lines and pack them into blocks of `max_seq_length` tokens ([CLS] ... [SEP] for BERT), as
    run_mlm.py does; `ngram_ids` are left to the collator, which computes them after masking."""
    _check_text_column(raw["train"].column_names, data.text_column)
    blocks = raw.map(text_packer(tokenizer, data.text_column, data.max_seq_length), batched=True,
                     batch_size=PACK_BATCH_LINES, remove_columns=raw["train"].column_names,
                     desc="packing text into blocks")
    if data.max_eval_samples and "validation" in blocks:
        blocks["validation"] = blocks["validation"].select(range(min(data.max_eval_samples, len(blocks["validation"]))))
    return blocks


STREAMING_EVAL_BLOCKS = 1000  # the evaluation set of a stream, without --max_eval_samples


def mlm_stream(raw, tokenizer, data: DataArguments, seed: int):
    """(training blocks, evaluation blocks or None) for `--streaming`: the training stream is a datasets
    `IterableDataset` that tokenises and packs lines as they are read (the same blocks `mlm_blocks` cuts), then
    shuffles them in a buffer of `data.shuffle_buffer_size` blocks; Trainer starts each further pass with
    `set_epoch`, which reshuffles the shard order and the buffer. The evaluation set is the first
    `max_eval_samples` blocks (default 1,000) of the validation stream, read once into memory."""
    import datasets

    columns = _columns(raw["train"])
    _check_text_column(columns, data.text_column)
    pack = text_packer(tokenizer, data.text_column, data.max_seq_length)
    train = raw["train"].map(pack, batched=True, batch_size=PACK_BATCH_LINES, remove_columns=columns)
    if data.shuffle_buffer_size < 0:
        raise ValueError(f"--shuffle_buffer_size must be >= 0 (0: no shuffling), got {data.shuffle_buffer_size}")
    if data.shuffle_buffer_size > 0:
        train = train.shuffle(seed=seed, buffer_size=data.shuffle_buffer_size)
    evaluation = None
    if "validation" in raw:
        validation = raw["validation"]
        blocks = validation.map(pack, batched=True, batch_size=PACK_BATCH_LINES, remove_columns=_columns(validation))
        rows = list(islice(blocks, data.max_eval_samples or STREAMING_EVAL_BLOCKS))
        evaluation = datasets.Dataset.from_list(rows) if rows else None
    return train, evaluation


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest `checkpoint-N` that finished writing (its trainer_state.json exists and parses)."""
    if not os.path.isdir(output_dir):
        return None
    steps = sorted((int(d.split("-")[-1]), d) for d in os.listdir(output_dir)
                   if d.startswith(PREFIX_CHECKPOINT_DIR + "-") and d.split("-")[-1].isdigit())
    for _, name in reversed(steps):
        state = os.path.join(output_dir, name, "trainer_state.json")
        try:
            with open(state, encoding="utf-8") as f:
                json.load(f)
            return os.path.join(output_dir, name)
        except (OSError, ValueError):
            print(f"skipping incomplete checkpoint {name} (no readable trainer_state.json)")
    return None


def log_line(logs: dict, state) -> str:
    """One readable line for a Trainer log: `step 40/200 (epoch 0.31): loss 7.214 · learning_rate 0.0004 · ...`."""
    def value(v):
        return f"{v:,.0f}" if isinstance(v, float) and abs(v) >= 1000 else f"{v:.4g}" if isinstance(v, float) else str(v)

    fields = " · ".join(f"{k} {value(v)}" for k, v in logs.items() if k not in ("total_flos", "epoch"))
    epoch = f" (epoch {logs['epoch']:.2f})" if isinstance(logs.get("epoch"), (int, float)) else ""
    return f"step {state.global_step}/{state.max_steps}{epoch}: {fields}"


class ReadableProgressCallback(ProgressCallback):
    """transformers' progress bar, with each log written as one readable line instead of a dict of strings."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_world_process_zero and self.training_bar is not None and logs:
            self.training_bar.write(log_line(logs, state))


class ReadablePrinterCallback(PrinterCallback):
    """The same line, printed, when progress bars are off (`--disable_tqdm true`)."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        if state.is_local_process_zero and logs:
            print(log_line(logs, state), flush=True)


def _train(trainer: Trainer, training_args: TrainingArguments, resume: bool):
    for plain, readable in ((ProgressCallback, ReadableProgressCallback), (PrinterCallback, ReadablePrinterCallback)):
        if trainer.pop_callback(plain) is not None:
            trainer.add_callback(readable)
    checkpoint = training_args.resume_from_checkpoint
    if resume and checkpoint is None:
        checkpoint = last_complete_checkpoint(training_args.output_dir)
        if checkpoint is None:
            print(f"--resume: no complete checkpoint in {training_args.output_dir}, starting from scratch")
    for callback in trainer.callback_handler.callbacks:
        if isinstance(callback, StreamPositionCallback):
            callback.resume_from = checkpoint
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()
    trainer.save_state()  # trainer_state.json (the loss history) next to the final model
    return trainer


def pretrain(model_args: ModelArguments, data: DataArguments, training_args: TrainingArguments,
             callbacks=None) -> Trainer:
    """MLM pretraining with sparse prediction. Returns the Trainer (its model is the trained model)."""
    if data.streaming:
        check_streaming_args(data, training_args)
    set_seed(training_args.seed)  # model initialisation depends on it, as in run_mlm.py
    config = build_config(model_args)
    tokenizer = load_tokenizer(model_args.tokenizer, config, new_model=not model_args.model_name_or_path)
    model = load_model(EELBertForMaskedLM, model_args, config, tokenizer)
    if data.streaming:
        raw = load_raw_datasets(data, split_for_eval=True)
        train, evaluation = mlm_stream(raw, tokenizer, data, training_args.seed)
        prepare_streaming(train, evaluation, training_args)
    else:
        with training_args.main_process_first(desc="dataset preprocessing"):
            blocks = mlm_blocks(load_raw_datasets(data, split_for_eval=True), tokenizer, data)
        train, evaluation = blocks["train"], blocks.get("validation")
    collator = DataCollatorForEELBertMLM(tokenizer, mlm_probability=data.mlm_probability, seed=training_args.seed)
    fast_resume = [StreamPositionCallback()] if data.streaming and training_args.ignore_data_skip else []
    trainer = Trainer(model=model, args=training_args, train_dataset=train, eval_dataset=evaluation,
                      data_collator=collator, processing_class=tokenizer,
                      callbacks=[MLMEpochCallback(collator, streaming=data.streaming), TokensPerSecondCallback(),
                                 *fast_resume, *(callbacks or [])])
    return _train(trainer, training_args, data.resume)


def check_streaming_args(data: DataArguments, training_args: TrainingArguments):
    """Clear errors for flags a stream cannot honour."""
    if training_args.max_steps is None or training_args.max_steps <= 0:
        raise ValueError("--streaming needs --max_steps N: a stream has no length, so the run's length is given in "
                         "optimizer steps (each reads per_device_train_batch_size x gradient_accumulation_steps "
                         "blocks per process)")
    if training_args.ignore_data_skip and training_args.dataloader_num_workers > 0:
        raise ValueError("--streaming --ignore_data_skip true keeps each stream's position from the main process, "
                         "which loader workers bypass: use --dataloader_num_workers 0, or resume exactly (the "
                         "default, --ignore_data_skip false)")


def prepare_streaming(train, evaluation, training_args: TrainingArguments):
    """Settle how processes share a stream, and turn periodic evaluation off when there is nothing to evaluate.

    Each process reads its own part of the stream (accelerate's `dispatch_batches=False`, unless set otherwise with
    --accelerator_config): with at least as many shards (files, or a Hub dataset's shards) as processes, accelerate
    gives each process its own shards (`IterableDataset.shard`, as `datasets.distributed.split_dataset_by_node` does);
    with fewer, every process reads the whole stream and keeps its own share of the batches."""
    if training_args.accelerator_config.dispatch_batches is None:
        training_args.accelerator_config.dispatch_batches = False
    world, shards = training_args.world_size, train.num_shards
    if world > 1 and shards < world and training_args.process_index == 0:
        print(f"eelbert pretrain --streaming: {shards} shard(s) for {world} processes, so every process reads the "
              f"whole stream and trains on its share of the batches; give at least {world} files (e.g. split -n "
              f"l/{world}) for each process to read only its own shards")
    if evaluation is None and training_args.eval_strategy != IntervalStrategy.NO:
        if training_args.process_index == 0:
            print("eelbert pretrain --streaming: no validation data (--validation_files or the dataset's validation "
                  "split), so no periodic evaluation")
        training_args.eval_strategy = IntervalStrategy.NO


@torch.no_grad()
def init_table_from_hash(model, tokenizer, batch_size: int = 4096) -> None:
    """`embedding_type="hash_init"`: set every row of the model's learned table to that token's dynamic embedding
    (the n-gram ids that `tokenizer`, an EELBertTokenizer, gives each vocabulary token)."""
    config = model.config
    if config.embedding_type not in ("table", "hash_init"):
        raise ValueError(f"init_table_from_hash needs a table (embedding_type 'hash_init' or 'table'), "
                         f"not {config.embedding_type!r}")
    fields = {field: getattr(config, field) for field in NGRAM_FIELDS}
    ngram_hashing.check_compatible({**fields, "embedding_type": "dynamic"}, tokenizer.ngram_params)  # rows as dynamic
    table = model.base_model.embeddings.word_embeddings.weight
    hashed = DynamicNgramEmbeddings(config).to(table.device)
    for start in range(0, config.vocab_size, batch_size):
        ids = range(start, min(start + batch_size, config.vocab_size))
        ngram_ids = torch.as_tensor(tokenizer.ngram_ids_for(list(ids)), device=table.device)  # (N, K)
        table[ids.start : ids.stop] = hashed(ngram_ids).to(table.dtype)  # (N, K) -> (N, d)


BASE_TOKENIZER_MODELS = ("bpe", "unigram", "wordpiece")
BASE_SPECIAL_TOKENS = dict(pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                           mask_token="[MASK]")  # BERT's, at ids 0-4


def train_base_tokenizer(files: list[str], model: str = "bpe", vocab_size: int = 32_000, lowercase: bool = False,
                         progress: bool = True):
    """A new base tokenizer trained on text files with the `tokenizers` library, with BERT's special tokens and
    template ([CLS] text [SEP], pairs with type ids 0 and 1), as a transformers fast tokenizer:

    - ``bpe``: byte-level BPE over GPT-2's byte alphabet (RoBERTa's kind), so any text in any script is encoded
      without an unknown token; a space starts each word (``Ġ``).
    - ``unigram``: SentencePiece's Unigram, ``▁`` marking word starts; characters it never saw are unknown.
    - ``wordpiece``: BERT's WordPiece (BERT's normaliser and pre-tokeniser, ``##`` continuations).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import TokenizersBackend

    if model not in BASE_TOKENIZER_MODELS:
        raise ValueError(f"unknown tokenizer model {model!r}: choose one of {BASE_TOKENIZER_MODELS}")
    specials = list(BASE_SPECIAL_TOKENS.values())
    if not (type(vocab_size) is int and vocab_size > len(specials)):
        raise ValueError(f"vocab_size must be an integer above {len(specials)} (the special tokens), got {vocab_size!r}")
    missing = [f for f in files if not os.path.isfile(f)]
    if not files or missing:
        raise ValueError(f"no text file {missing[0]!r}" if missing else "give at least one text file to train on")
    options = dict(vocab_size=vocab_size, special_tokens=specials, show_progress=progress)
    if model == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)  # every word starts with a space
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), **options)
    elif model == "unigram":
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.pre_tokenizer, tokenizer.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
        trainer = trainers.UnigramTrainer(unk_token=BASE_SPECIAL_TOKENS["unk_token"], **options)
    else:
        tokenizer = Tokenizer(models.WordPiece(unk_token=BASE_SPECIAL_TOKENS["unk_token"]))
        tokenizer.normalizer = normalizers.BertNormalizer(lowercase=lowercase)
        tokenizer.pre_tokenizer, tokenizer.decoder = pre_tokenizers.BertPreTokenizer(), decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(**options)
    if lowercase and model != "wordpiece":
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.train(files, trainer)
    if tokenizer.get_vocab_size() <= len(specials):
        raise ValueError(f"the files hold no text to learn a vocabulary from: {files}")
    cls, sep = BASE_SPECIAL_TOKENS["cls_token"], BASE_SPECIAL_TOKENS["sep_token"]
    template = processors.TemplateProcessing(single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B:1 {sep}:1",
                                             special_tokens=[(t, tokenizer.token_to_id(t)) for t in (cls, sep)])
    # byte-level offsets leave out the space each word starts with
    tokenizer.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=True), template]) \
        if model == "bpe" else template
    return TokenizersBackend(tokenizer_object=tokenizer, model_max_length=512, **BASE_SPECIAL_TOKENS)


def classification_metrics(num_labels: int, task: str | None = None):
    """compute_metrics for Trainer (scikit-learn and scipy do the arithmetic): accuracy and F1 (macro for > 2
    classes); Matthews for CoLA; Pearson/Spearman for regression (STS-B). A correlation that is undefined (constant
    predictions) is reported as 0.0, not NaN."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    def correlation(function, a, b) -> float:
        if np.std(a) == 0 or np.std(b) == 0:
            return 0.0
        return float(function(a, b)[0])

    def compute(prediction):
        logits, labels = prediction
        if num_labels == 1:
            scores, labels = np.asarray(logits, dtype=np.float64).reshape(-1), np.asarray(labels, dtype=np.float64)
            return {"pearson": correlation(pearsonr, scores, labels), "spearmanr": correlation(spearmanr, scores, labels)}
        predicted = np.asarray(logits).argmax(-1)
        metrics = {"accuracy": float(accuracy_score(labels, predicted)),
                   "f1": float(f1_score(labels, predicted, average="binary" if num_labels == 2 else "macro",
                                        labels=None if num_labels == 2 else list(range(num_labels)), zero_division=0))}
        if task == "cola":
            metrics["matthews_correlation"] = float(matthews_corrcoef(labels, predicted))
        return metrics

    return compute


def finetune(model_args: ModelArguments, data: DataArguments, training_args: TrainingArguments):
    """Sequence classification (or regression) with Trainer; writes the model and `metrics.json`."""
    if data.streaming:
        raise ValueError("--streaming is for pretraining; fine-tuning reads its (labelled) data whole")
    task = data.dataset_config_name if data.dataset_name == "glue" else None
    if task:
        if task not in GLUE_TASKS:
            raise ValueError(f"unknown GLUE task {task!r}; choose one of {sorted(GLUE_TASKS)}")
        (data.text_column, data.text_pair_column), num_labels = GLUE_TASKS[task]
    raw = load_raw_datasets(data, split_for_eval=False)
    columns = raw["train"].column_names
    for name in (data.text_column, data.text_pair_column, data.label_column):
        if name is not None and name not in columns:
            raise ValueError(f"no column {name!r} in the data (columns: {columns})")
    if not task:
        labels = raw["train"].unique(data.label_column)
        is_regression = isinstance(labels[0], float) and not all(float(x).is_integer() for x in labels)
        num_labels = 1 if is_regression else int(max(labels)) + 1
    set_seed(training_args.seed)
    config = build_config(model_args, num_labels=num_labels)
    tokenizer = load_tokenizer(model_args.tokenizer or model_args.model_name_or_path, config,
                               new_model=not model_args.model_name_or_path)
    # from an MLM checkpoint: encoder kept, MLM head dropped, classifier new
    model = load_model(EELBertForSequenceClassification, model_args, config, tokenizer)

    def encode(batch):
        pair = batch[data.text_pair_column] if data.text_pair_column else None
        # no ngram_ids here: DataCollatorWithPadding computes them for each padded batch
        encoded = tokenizer(batch[data.text_column], pair, truncation=True, max_length=data.max_seq_length,
                            return_ngram_ids=False)
        encoded["labels"] = batch[data.label_column]
        return encoded

    with training_args.main_process_first(desc="dataset preprocessing"):
        encoded = raw.map(encode, batched=True, remove_columns=columns, desc="tokenizing")
    trainer = Trainer(model=model, args=training_args, train_dataset=encoded["train"],
                      eval_dataset=encoded.get("validation"), data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer, compute_metrics=classification_metrics(num_labels, task))
    _train(trainer, training_args, data.resume)
    metrics = trainer.evaluate() if "validation" in encoded else {}
    if trainer.is_world_process_zero():
        with open(os.path.join(training_args.output_dir, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2)
    return trainer, metrics
