"""Pretraining (MLM) and fine-tuning EELBERT with transformers' Trainer, datasets and accelerate.

Everything here is plain transformers: `Trainer` does the loop, checkpoints, evaluation, progress bars and
data parallelism (run under `accelerate launch` or `torchrun`). EELBERT adds one thing: `ngram_ids`
must describe the final `input_ids` of a batch, which `DataCollatorForEELBertMLM` guarantees after masking.
"""

import ast
import hashlib
import json
import os
from dataclasses import dataclass, field

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
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .loading import load_tokenizer
from .modeling.configuration_eelbert import EELBertConfig
from .modeling.modeling_eelbert import EELBertForMaskedLM, EELBertForSequenceClassification

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
    """Tells the MLM collator which epoch it is masking for (so each epoch masks differently)."""

    def __init__(self, collator: DataCollatorForEELBertMLM):
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch + 1e-6)


@dataclass
class ModelArguments:
    preset: str = field(default="uno", metadata={"help": "base | mini | tiny | uno (ignored with --config)"})
    config: str | None = field(default=None, metadata={"help": "config.json file or folder to build the model from"})
    model_name_or_path: str | None = field(default=None, metadata={"help": "start from this checkpoint"})
    embedding_type: str | None = field(default=None, metadata={"help": "dynamic | table | hash_init | random_hash"})
    tokenizer: str | None = field(default=None, metadata={"help": "tokenizer folder (default: the bundled vocab)"})
    config_overrides: str | None = field(default=None, metadata={
        "help": "config fields to set, as in run_mlm.py: 'ngram_weight_buckets=0,hidden_dropout_prob=0.2'"})


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
        setattr(config, key.strip(), ast.literal_eval(value.strip()))
    config.check()
    return config


def load_model(model_class, args: ModelArguments, config, tokenizer):
    """`model_class` from `--model_name_or_path`, or new from `config`; a new `hash_init` table starts from the hash."""
    if args.model_name_or_path:
        return model_class.from_pretrained(args.model_name_or_path, config=config)
    model = model_class(config)
    if config.embedding_type == "hash_init":
        model.init_table_from_hash(tokenizer)
    return model


def load_raw_datasets(data: DataArguments, split_for_eval: bool):
    """A DatasetDict with "train" (and "validation") from local files or a `datasets` name."""
    import datasets

    if data.dataset_name:
        raw = datasets.load_dataset(data.dataset_name, data.dataset_config_name)
    elif data.train_files:
        files = {"train": data.train_files}
        if data.validation_files:
            files["validation"] = data.validation_files
        suffix = data.train_files[0].rsplit(".", 1)[-1]
        builder = {"txt": "text", "csv": "csv", "jsonl": "json", "json": "json"}.get(suffix)
        if builder is None:
            raise ValueError(f"unsupported file type .{suffix}: use .txt, .csv or .jsonl")
        raw = datasets.load_dataset(builder, data_files=files)
    else:
        raise ValueError("give --train_files (text/csv/jsonl) or --dataset_name")
    if "validation" not in raw and "validation_matched" in raw:
        raw["validation"] = raw["validation_matched"]
    if split_for_eval and "validation" not in raw and data.validation_split_percentage > 0:
        split = raw["train"].train_test_split(test_size=data.validation_split_percentage / 100, seed=0)
        raw["train"], raw["validation"] = split["train"], split["test"]
    if data.max_train_samples:
        raw["train"] = raw["train"].select(range(min(data.max_train_samples, len(raw["train"]))))
    return raw


def mlm_blocks(raw, tokenizer, data: DataArguments):
    """Tokenise text lines and pack them into blocks of `max_seq_length` tokens ([CLS] ... [SEP]), as
    run_mlm.py does; `ngram_ids` are left to the collator, which computes them after masking."""
    column, body = data.text_column, data.max_seq_length - 2
    if column not in raw["train"].column_names:
        raise ValueError(f"no column {column!r} in the data (columns: {raw['train'].column_names}); set --text_column")

    def pack(batch):
        texts = [t for t in batch[column] if t and t.strip()]
        ids = tokenizer(texts, add_special_tokens=False, return_ngram_ids=False)["input_ids"]
        flat = [i for seq in ids for i in seq]
        blocks = [flat[i : i + body] for i in range(0, len(flat) - body + 1, body)] or ([flat] if flat else [])
        input_ids = [[tokenizer.cls_token_id, *b, tokenizer.sep_token_id] for b in blocks]
        return {"input_ids": input_ids, "special_tokens_mask": [[1] + [0] * len(b) + [1] for b in blocks]}

    return raw.map(pack, batched=True, batch_size=2000, remove_columns=raw["train"].column_names,
                   desc="packing text into blocks")


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


def _train(trainer: Trainer, training_args: TrainingArguments, resume: bool):
    checkpoint = training_args.resume_from_checkpoint
    if resume and checkpoint is None:
        checkpoint = last_complete_checkpoint(training_args.output_dir)
        if checkpoint is None:
            print(f"--resume: no complete checkpoint in {training_args.output_dir}, starting from scratch")
    trainer.train(resume_from_checkpoint=checkpoint)
    trainer.save_model()
    trainer.save_state()  # trainer_state.json (the loss history) next to the final model
    return trainer


def pretrain(model_args: ModelArguments, data: DataArguments, training_args: TrainingArguments,
             callbacks=None) -> Trainer:
    """MLM pretraining with sparse prediction. Returns the Trainer (its model is the trained model)."""
    set_seed(training_args.seed)  # model initialisation depends on it, as in run_mlm.py
    config = build_config(model_args)
    tokenizer = load_tokenizer(model_args.tokenizer, config)
    model = load_model(EELBertForMaskedLM, model_args, config, tokenizer)
    with training_args.main_process_first(desc="dataset preprocessing"):
        blocks = mlm_blocks(load_raw_datasets(data, split_for_eval=True), tokenizer, data)
    collator = DataCollatorForEELBertMLM(tokenizer, mlm_probability=data.mlm_probability, seed=training_args.seed)
    trainer = Trainer(model=model, args=training_args, train_dataset=blocks["train"],
                      eval_dataset=blocks.get("validation"), data_collator=collator, processing_class=tokenizer,
                      callbacks=[MLMEpochCallback(collator), *(callbacks or [])])
    return _train(trainer, training_args, data.resume)


def classification_metrics(num_labels: int, task: str | None = None):
    """compute_metrics for Trainer: accuracy and F1 (macro for > 2 classes); Matthews for CoLA;
    Pearson/Spearman for regression (STS-B)."""

    def compute(prediction):
        logits, labels = prediction
        if num_labels == 1:
            scores = np.asarray(logits).reshape(-1)
            return {"pearson": _pearson(scores, labels), "spearmanr": _pearson(_ranks(scores), _ranks(labels))}
        predicted = np.asarray(logits).argmax(-1)
        metrics = {"accuracy": float((predicted == labels).mean())}
        classes = [1] if num_labels == 2 else range(num_labels)
        f1s = []
        for c in classes:
            tp = np.sum((predicted == c) & (labels == c))
            denominator = np.sum(predicted == c) + np.sum(labels == c)
            f1s.append(2 * tp / denominator if denominator else 0.0)
        metrics["f1"] = float(np.mean(f1s))
        if task == "cola":
            metrics["matthews_correlation"] = _matthews(predicted, labels, num_labels)
        return metrics

    return compute


def _pearson(a, b) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    a, b = a - a.mean(), b - b.mean()
    denominator = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denominator) if denominator else 0.0


def _ranks(values) -> np.ndarray:
    """Ranks with ties given their average rank (as scipy.stats.rankdata)."""
    values = np.asarray(values, dtype=np.float64)
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def _matthews(predicted, labels, num_labels) -> float:
    confusion = np.zeros((num_labels, num_labels))
    np.add.at(confusion, (labels, predicted), 1)
    t, p, c, s = confusion.sum(1), confusion.sum(0), np.trace(confusion), confusion.sum()
    denominator = np.sqrt((s * s - (p * p).sum()) * (s * s - (t * t).sum()))
    return float((c * s - (t * p).sum()) / denominator) if denominator else 0.0


def finetune(model_args: ModelArguments, data: DataArguments, training_args: TrainingArguments):
    """Sequence classification (or regression) with Trainer; writes the model and `metrics.json`."""
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
    tokenizer = load_tokenizer(model_args.tokenizer or model_args.model_name_or_path, config)
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
