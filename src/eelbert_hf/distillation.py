"""Task distillation: train a small EELBERT student on the soft labels of a stronger teacher.

The student learns the teacher's output distribution at temperature T (Hinton et al., 2015), optionally
mixed with the hard labels, on a *transfer set*: the labelled examples, augmented copies of them and any
unlabeled in-domain text (Tang et al., 2019, "Distilling task-specific knowledge from BERT into simple
neural networks"). The teacher is called once per transfer example, before training; its outputs are saved
with the transfer set in `output_dir/transfer_set/`, so a resumed or repeated run never calls it again.

The teacher is any `AutoModelForSequenceClassification` (a folder or Hub name, with its own tokenizer), a
column of logits or probabilities already in the data, or, from Python, a callable `texts -> logits`.
Trainer does the loop: every `TrainingArguments` flag, checkpoints, `--resume` and `accelerate launch` work
as in `eelbert finetune`.
"""

import hashlib
import json
import os
import random
import re
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from transformers import DataCollatorWithPadding, Trainer, set_seed

from .loading import check_model_path, load_tokenizer
from .modeling.modeling_eelbert import EELBertForSequenceClassification
from .training import (
    build_config,
    classification_metrics,
    load_model,
    load_raw_datasets,
    _train,
)

AUGMENTATIONS = ("mask", "ngram")
TRANSFER_SET = "transfer_set"
_WORD = re.compile(r"\w+|[^\w\s]")


@dataclass
class DistillArguments:
    teacher: str | None = field(default=None, metadata={
        "help": "the teacher: a sequence-classification model folder or Hub name (its own tokenizer)"})
    teacher_column: str | None = field(default=None, metadata={
        "help": "instead of --teacher: a data column holding the teacher's logits or probabilities per example"})
    teacher_outputs: str = field(default="logits", metadata={"help": "what --teacher_column holds: logits | probabilities"})
    teacher_trust_remote_code: bool = field(default=False, metadata={"help": "the teacher is a remote-code model"})
    teacher_batch_size: int = field(default=128, metadata={"help": "batch size for computing the teacher's outputs"})
    temperature: float = field(default=2.0, metadata={"help": "softmax temperature of the distillation loss"})
    alpha: float = field(default=0.0, metadata={
        "help": "weight of the hard-label cross-entropy (labelled examples only); 1 - alpha goes to the teacher"})
    augment: str | None = field(default=None, metadata={
        "help": "transfer-set augmentation, comma-separated: mask (words -> [MASK]), ngram (a random 1-5 word span)"})
    augment_copies: int = field(default=10, metadata={"help": "augmented copies per labelled example"})
    mask_probability: float = field(default=0.1, metadata={"help": "--augment mask: share of words masked"})
    ngram_probability: float = field(default=0.25, metadata={"help": "--augment ngram: share of copies cut to a span"})
    unlabeled_files: list[str] | None = field(default=None, metadata={
        "help": "unlabeled in-domain text (.txt: one example a line, or .jsonl/.csv with the text column)"})

    def __post_init__(self):
        if (self.teacher is None) == (self.teacher_column is None):
            raise ValueError("give exactly one teacher: --teacher MODEL (a folder or Hub name) or --teacher_column "
                             "COLUMN (the teacher's logits in the data)")
        if self.teacher_outputs not in ("logits", "probabilities"):
            raise ValueError(f"--teacher_outputs must be logits or probabilities, not {self.teacher_outputs!r}")
        if not self.temperature > 0:
            raise ValueError(f"--temperature must be > 0, got {self.temperature}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"--alpha must lie in [0, 1], got {self.alpha}")
        unknown = set(self.augmentations) - set(AUGMENTATIONS)
        if unknown:
            raise ValueError(f"--augment: unknown {sorted(unknown)}; choose from {', '.join(AUGMENTATIONS)}")
        if self.augmentations and self.augment_copies < 1:
            raise ValueError("--augment_copies must be >= 1 when --augment is given")
        if not (0 <= self.mask_probability <= 1 and 0 <= self.ngram_probability <= 1):
            raise ValueError("--mask_probability and --ngram_probability must lie in [0, 1]")

    @property
    def augmentations(self) -> list[str]:
        return [a.strip() for a in (self.augment or "").split(",") if a.strip()]


def augment_text(text: str, rng: random.Random, methods, mask_token="[MASK]", mask_probability=0.1,
                 ngram_probability=0.25) -> str:
    """One augmented copy of `text` (Tang et al., 2019): each word becomes `mask_token` with
    `mask_probability`; then, with `ngram_probability`, the copy is cut to a random span of 1-5 words."""
    words = _WORD.findall(text)
    if "mask" in methods:
        words = [mask_token if rng.random() < mask_probability else w for w in words]
    if "ngram" in methods and len(words) > 1 and rng.random() < ngram_probability:
        n = rng.randint(1, min(5, len(words)))
        start = rng.randrange(len(words) - n + 1)
        words = words[start : start + n]
    return " ".join(words)


def augment_texts(texts, copies: int, methods, seed: int = 0, **kwargs) -> list[str]:
    """`copies` augmented copies of each text (deterministic in `seed`), duplicates of the originals and of
    each other dropped."""
    rng, seen, out = random.Random(seed), set(texts), []
    for text in texts:
        for _ in range(copies):
            new = augment_text(text, rng, methods, **kwargs)
            if new and new not in seen:
                seen.add(new)
                out.append(new)
    return out


def check_label_mapping(teacher_logits: np.ndarray, labels: np.ndarray, label_names=None):
    """Raise if the teacher's classes do not line up with the data's labels: a different number of classes,
    or a teacher whose predictions for each label are mostly one *other* class, a permutation of its own (a
    swapped `id2label`). A weak or one-sided teacher passes; only a confident mismatch is an error."""
    num_labels = teacher_logits.shape[1]
    known = labels >= 0
    if known.any() and labels[known].max() + 1 != num_labels:
        names = f" ({label_names})" if label_names else ""
        raise ValueError(f"the teacher has {num_labels} classes{names} but the data has "
                         f"{int(labels[known].max()) + 1}; give a teacher trained on the same labels")
    confusion = np.zeros((num_labels, num_labels))  # (data label, teacher's prediction)
    np.add.at(confusion, (labels[known], teacher_logits[known].argmax(-1)), 1)
    counts = confusion.sum(1, keepdims=True)
    if (counts < 10).any():
        return  # too few examples of some label to judge
    shares = confusion / counts
    mapped = shares.argmax(1)  # the teacher class each data label mostly gets
    is_permutation = len(set(mapped)) == num_labels
    if is_permutation and (mapped != np.arange(num_labels)).any() and shares[np.arange(num_labels), mapped].mean() > 0.65:
        pairs = ", ".join(f"data {c} -> teacher {m}" for c, m in enumerate(mapped) if c != m)
        raise ValueError(f"the teacher's label mapping does not match the data's: it agrees with "
                         f"{np.trace(confusion) / known.sum():.0%} of the labels as it is, its predictions follow "
                         f"{pairs} (teacher labels: {label_names}). Relabel the data or give a teacher whose id2label "
                         "matches it")


def label_ids(values, id2label=None) -> list[int]:
    """Integer labels for a data column: ints as they are, names through the teacher's `id2label` (any case)."""
    if not any(isinstance(v, str) for v in values):
        return [int(v) for v in values]
    by_name = {str(name).lower(): int(i) for i, name in (id2label or {}).items()}
    unknown = sorted({v for v in values if str(v).lower() not in by_name})
    if unknown:
        raise ValueError(f"label {unknown[0]!r} is not one of the teacher's labels ({sorted(by_name) or 'none named'}); "
                         "use integer labels or a teacher whose id2label names them")
    return [by_name[str(v).lower()] for v in values]


def model_teacher(name_or_path: str, max_length: int = 128, batch_size: int = 128, trust_remote_code=False,
                  progress: bool = True):
    """A callable `(texts, pairs=None) -> logits (N, C)` running an `AutoModelForSequenceClassification` and its
    own tokenizer in eval mode; `.id2label` is the model's label mapping. With `progress`, each call draws a bar
    over the texts (transformers' tqdm: `transformers.utils.logging.disable_progress_bar()` hides it too)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils.logging import tqdm

    check_model_path(name_or_path, "--teacher")
    model = AutoModelForSequenceClassification.from_pretrained(name_or_path, trust_remote_code=trust_remote_code,
                                                               dtype=torch.float32).eval()
    if isinstance(model, EELBertForSequenceClassification):  # its folder may hold no tokenizer files
        tokenizer = load_tokenizer(name_or_path, model.config)
    else:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)

    @torch.no_grad()
    def run(texts, pairs=None):
        order = np.argsort([len(t) for t in texts], kind="stable")  # similar lengths share a batch: less padding
        out = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
        with tqdm(total=len(texts), desc="teacher labelling", unit=" texts", disable=not progress) as bar:
            for start in range(0, len(texts), batch_size):
                index = order[start : start + batch_size]
                batch = tokenizer([texts[i] for i in index], [pairs[i] for i in index] if pairs else None,
                                  padding=True, truncation=True, max_length=max_length, return_tensors="pt")
                out[index] = model(**batch).logits.float().numpy()
                bar.update(len(index))
        return out

    run.id2label = dict(model.config.id2label)
    run.teacher_id = f"{name_or_path}@{getattr(model.config, '_commit_hash', None) or _folder_stamp(name_or_path)}"
    return run


def _folder_stamp(path):
    weights = [os.path.join(path, f) for f in ("model.safetensors", "pytorch_model.bin")]
    return next((f"{os.path.getsize(w)}-{os.path.getmtime(w):.0f}" for w in weights if os.path.exists(w)), "")


class DistillationTrainer(Trainer):
    """Trainer whose loss is T² · KL(teacher ‖ student) at temperature T, plus `alpha` · cross-entropy on the
    examples that have a label (-100 marks those that do not). Without `teacher_logits` in a batch (the
    evaluation set), the loss is the plain cross-entropy."""

    def __init__(self, *args, temperature=2.0, alpha=0.0, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature, self.alpha = temperature, alpha
        self.model_accepts_loss_kwargs = False  # the loss is a per-batch mean; Trainer scales it for accumulation

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        self._signature_columns.append("teacher_logits")

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        teacher, labels = inputs.pop("teacher_logits", None), inputs.pop("labels", None)
        outputs = model(**inputs)
        logits = outputs.logits.float()
        labelled = labels is not None and bool((labels >= 0).any())
        hard = F.cross_entropy(logits, labels, ignore_index=-100) if labelled else logits.new_zeros(())
        if teacher is None:
            loss = hard
        else:
            t = self.temperature
            soft = F.kl_div(F.log_softmax(logits / t, -1), F.log_softmax(teacher.float() / t, -1),
                            log_target=True, reduction="batchmean") * t * t
            loss = (1 - self.alpha) * soft + self.alpha * hard
        return (loss, outputs) if return_outputs else loss


def build_transfer_set(raw_train, data, distill_args: DistillArguments, teacher, mask_token: str, seed: int,
                       cache_dir: str | None, unlabeled=None):
    """The transfer set as a `datasets.Dataset` (text, [text_pair,] label, teacher_logits): the labelled
    examples, their augmented copies and `unlabeled` texts (label -100), each with the teacher's logits.
    Loaded from `cache_dir` when a previous run built the same set with the same teacher."""
    import datasets

    text_col, pair_col, label_col = data.text_column, data.text_pair_column, data.label_column
    texts = list(raw_train[text_col])
    pairs = list(raw_train[pair_col]) if pair_col else None
    labels = list(raw_train[label_col]) if label_col in raw_train.column_names else [-100] * len(texts)
    extra = list(unlabeled or [])
    methods = distill_args.augmentations
    if methods:
        if pairs:
            raise ValueError("--augment works on single-text tasks; drop it for sentence pairs")
        extra += augment_texts(texts, distill_args.augment_copies, methods, seed=seed, mask_token=mask_token,
                               mask_probability=distill_args.mask_probability,
                               ngram_probability=distill_args.ngram_probability)
    if extra and not callable(teacher):
        raise ValueError("augmented or unlabeled examples need a teacher that can label them: give --teacher MODEL, "
                         "or drop --augment / --unlabeled_files when the teacher is a data column")
    labels = label_ids(labels, getattr(teacher, "id2label", None))
    columns = {text_col: texts + extra, "labels": labels + [-100] * len(extra)}
    if pairs:
        columns[pair_col] = pairs

    teacher_id = getattr(teacher, "teacher_id", None) or (teacher if isinstance(teacher, str) else repr(teacher))
    key = hashlib.sha256(json.dumps([teacher_id, columns], sort_keys=True).encode()).hexdigest()
    path = os.path.join(cache_dir, TRANSFER_SET) if cache_dir else None
    if path and os.path.exists(os.path.join(path, "fingerprint.json")):
        with open(os.path.join(path, "fingerprint.json"), encoding="utf-8") as f:
            if json.load(f).get("key") == key:
                print(f"reusing the teacher's outputs cached in {path}")
                return datasets.load_from_disk(os.path.join(path, "data"))
    if callable(teacher):
        print(f"the teacher labels {len(columns[text_col]):,} transfer examples ({len(extra):,} of them new); once: "
              f"{'they are cached in ' + path if path else 'not cached'}")
        logits = np.asarray(teacher(columns[text_col], pairs), dtype=np.float32)
    else:  # a column of the data: logits or probabilities for the labelled examples
        logits = np.asarray(raw_train[teacher], dtype=np.float32)
        if distill_args.teacher_outputs == "probabilities":
            if (logits < 0).any() or not np.allclose(logits.sum(-1), 1, atol=1e-3):
                raise ValueError(f"--teacher_column {teacher}: rows must be probabilities (>= 0, summing to 1); "
                                 "use --teacher_outputs logits for raw scores")
            logits = np.log(np.clip(logits, 1e-8, None))
    if logits.ndim != 2 or len(logits) != len(columns[text_col]) or not np.isfinite(logits).all():
        raise ValueError(f"the teacher's outputs must be finite, one row of class scores per example; got shape "
                         f"{logits.shape}")
    check_label_mapping(logits, np.asarray(columns["labels"]), getattr(teacher, "id2label", None))
    columns["teacher_logits"] = logits.tolist()
    transfer = datasets.Dataset.from_dict(columns)
    if path:
        transfer.save_to_disk(os.path.join(path, "data"))
        with open(os.path.join(path, "fingerprint.json"), "w", encoding="utf-8") as f:
            json.dump({"key": key, "teacher": teacher_id, "examples": len(transfer)}, f)
    return transfer


def read_texts(files, text_column="text") -> list[str]:
    """Non-empty texts from .txt files (one a line) or .jsonl/.csv files (their `text_column`)."""
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise ValueError(f"--unlabeled_files: no such file {missing[0]!r}")
    out = []
    for path in files:
        if path.endswith(".txt"):
            with open(path, encoding="utf-8") as f:
                out += [line.strip() for line in f if line.strip()]
        else:
            import datasets

            builder = "csv" if path.endswith(".csv") else "json"
            column = datasets.load_dataset(builder, data_files=path, split="train")
            if text_column not in column.column_names:
                raise ValueError(f"{path}: no column {text_column!r} (columns: {column.column_names})")
            out += [t.strip() for t in column[text_column] if t and t.strip()]
    return out


def distill(model_args, data, distill_args: DistillArguments, training_args, teacher=None):
    """Train an EELBERT student (`model_args`: preset, config or checkpoint) on a teacher's soft labels.

    `teacher`: a callable `(texts, pairs) -> logits` (Python only, e.g. a scikit-learn model); by default the
    one `distill_args` names. Writes the student, `metrics.json` and the cached transfer set to
    `training_args.output_dir`; returns (trainer, metrics)."""
    raw = load_raw_datasets(data, split_for_eval=False)
    columns = raw["train"].column_names
    for name in (data.text_column, data.text_pair_column, distill_args.teacher_column):
        if name is not None and name not in columns:
            raise ValueError(f"no column {name!r} in the data (columns: {columns})")
    if teacher is None:
        teacher = distill_args.teacher_column or model_teacher(
            distill_args.teacher, data.max_seq_length, distill_args.teacher_batch_size,
            distill_args.teacher_trust_remote_code, progress=not training_args.disable_tqdm)
    unlabeled = read_texts(distill_args.unlabeled_files, data.text_column) if distill_args.unlabeled_files else None
    set_seed(training_args.seed)
    # the student's tokenizer decides the mask token that augmentation writes into the text
    probe = load_tokenizer(model_args.tokenizer or model_args.model_name_or_path)
    with training_args.main_process_first(desc="teacher outputs"):
        transfer = build_transfer_set(raw["train"], data, distill_args, teacher, probe.mask_token,
                                      training_args.seed, training_args.output_dir, unlabeled)
    num_labels = len(transfer[0]["teacher_logits"])
    id2label = getattr(teacher, "id2label", None)
    overrides = {"num_labels": num_labels}
    if id2label and not all(str(v).startswith("LABEL_") for v in id2label.values()):
        overrides.update(id2label={int(k): v for k, v in id2label.items()},
                         label2id={v: int(k) for k, v in id2label.items()})
    config = build_config(model_args, **overrides)
    tokenizer = load_tokenizer(model_args.tokenizer or model_args.model_name_or_path, config,
                               new_model=not model_args.model_name_or_path)
    model = load_model(EELBertForSequenceClassification, model_args, config, tokenizer)

    def encode(batch):
        pair = batch[data.text_pair_column] if data.text_pair_column else None
        return tokenizer(batch[data.text_column], pair, truncation=True, max_length=data.max_seq_length,
                         return_ngram_ids=False)

    with training_args.main_process_first(desc="tokenizing"):
        train = transfer.map(encode, batched=True, remove_columns=[c for c in transfer.column_names
                                                                   if c not in ("labels", "teacher_logits")],
                             desc="tokenizing the transfer set")
        evaluation = None
        if "validation" in raw:
            evaluation = raw["validation"].map(
                lambda b: {**encode(b), "labels": label_ids(b[data.label_column], id2label)}, batched=True,
                remove_columns=raw["validation"].column_names, desc="tokenizing the validation set")
    trainer = DistillationTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=evaluation,
                                  data_collator=DataCollatorWithPadding(tokenizer), processing_class=tokenizer,
                                  compute_metrics=classification_metrics(num_labels),
                                  temperature=distill_args.temperature, alpha=distill_args.alpha)
    _train(trainer, training_args, data.resume)
    metrics = trainer.evaluate() if evaluation is not None else {}
    metrics["transfer_examples"] = len(transfer)
    if trainer.is_world_process_zero():
        with open(os.path.join(training_args.output_dir, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2)
    return trainer, metrics
