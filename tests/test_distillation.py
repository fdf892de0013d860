"""Distillation: the loss, augmentation, the cached teacher outputs, the label-mapping check, the CLI."""

import json
import os
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import eelbert_hf
from conftest import small_config
from eelbert_hf import EELBertForSequenceClassification
from eelbert_hf.apps.arguments import parse_training_args
from eelbert_hf.apps.cli import main
from eelbert_hf.distillation import (
    DistillationTrainer,
    augment_text,
    augment_texts,
    check_label_mapping,
    distill,
)

DATA = os.path.join(os.path.dirname(eelbert_hf.__file__), "data")
RT_TRAIN, RT_VALID = os.path.join(DATA, "rt_sample_train.jsonl"), os.path.join(DATA, "rt_sample_validation.jsonl")
QUIET = ["--report_to", "none", "--disable_tqdm", "true", "--max_seq_length", "32", "--per_device_train_batch_size",
         "16", "--eval_strategy", "no", "--save_strategy", "no", "--logging_steps", "1"]


def rows(n=96, path=RT_TRAIN):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f.read().splitlines()[:n]]


def write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def has_the(text):
    return int("the" in text.lower().split())


class CountingTeacher:
    """A teacher whose class is whether a text has the word "the" (labels flipped with `swap`); counts its calls."""

    def __init__(self, swap=False):
        self.calls, self.swap, self.teacher_id = 0, swap, f"counting swap={swap}"

    def __call__(self, texts, pairs=None):
        self.calls += 1
        out = np.zeros((len(texts), 2), dtype=np.float32)
        out[np.arange(len(texts)), [has_the(t) ^ self.swap for t in texts]] = 2.0
        return out


def student_args(tmp_path, *extra, teacher_column=None):
    config_dir, train = tmp_path / "student-config", tmp_path / "the.jsonl"
    small_config().save_pretrained(config_dir)
    write_jsonl(train, [{"text": r["text"], "label": has_the(r["text"])} for r in rows(96)])
    return parse_training_args("distill", ["--config", str(config_dir), "--train_files", str(train),
                                           "--teacher_column" if teacher_column else "--teacher",
                                           teacher_column or "unused", *QUIET, *extra])


def test_loss_is_temperature_scaled_kl_plus_weighted_cross_entropy():
    torch.manual_seed(0)
    student, teacher = torch.randn(6, 3), torch.randn(6, 3)
    labels = torch.tensor([0, 2, -100, 1, -100, 0])

    class Fixed(torch.nn.Module):
        def forward(self, **kwargs):
            return type("Out", (), {"logits": student})()

    trainer = DistillationTrainer.__new__(DistillationTrainer)
    trainer.temperature, trainer.alpha = 3.0, 0.25
    loss = trainer.compute_loss(Fixed(), {"teacher_logits": teacher, "labels": labels})
    t = 3.0
    p = F.softmax(teacher / t, -1)
    kl = (p * (p.log() - F.log_softmax(student / t, -1))).sum(-1).mean() * t * t
    ce = F.cross_entropy(student[labels >= 0], labels[labels >= 0])
    assert torch.allclose(loss, 0.75 * kl + 0.25 * ce)


def test_augmentation_masks_words_cuts_spans_and_is_deterministic():
    texts = [r["text"] for r in rows(200)]
    first = augment_texts(texts, 4, ["mask", "ngram"], seed=1)
    assert first == augment_texts(texts, 4, ["mask", "ngram"], seed=1)
    assert first != augment_texts(texts, 4, ["mask", "ngram"], seed=2)
    assert not set(first) & set(texts) and len(set(first)) == len(first)  # no originals, no duplicates
    masked = augment_texts(texts, 4, ["mask"], seed=0, mask_probability=0.5)
    words = [w for t in masked for w in t.split()]
    assert 0.4 < words.count("[MASK]") / len(words) < 0.6
    rng = random.Random(0)
    long = " ".join(f"w{i}" for i in range(40))
    spans = [augment_text(long, rng, ["ngram"], ngram_probability=1.0) for _ in range(50)]
    assert all(1 <= len(s.split()) <= 5 and s in long for s in spans)
    assert len({len(s.split()) for s in spans}) == 5  # every span length 1-5 occurs


def test_label_mapping_check():
    labels = np.array([0, 1] * 20)
    agree = np.eye(2)[labels] * 3
    check_label_mapping(agree, labels)  # the teacher agrees: fine
    with pytest.raises(ValueError, match="label mapping does not match.*data 0 -> teacher 1"):
        check_label_mapping(agree[:, ::-1], labels, {0: "positive", 1: "negative"})
    with pytest.raises(ValueError, match="teacher has 2 classes but the data has 3"):
        check_label_mapping(agree, np.array([0, 1, 2] * 10))
    check_label_mapping(agree, np.full(40, -100))  # unlabeled only: nothing to check
    one_sided = np.tile([3.0, 0.0], (40, 1))  # always class 0: weak, not swapped
    check_label_mapping(one_sided, np.array([1] * 30 + [0] * 10))


def test_distillation_lowers_the_kl_to_the_teacher_and_reuses_cached_outputs(tmp_path):
    teacher = CountingTeacher()
    out = tmp_path / "student"
    model_args, data, distill_args, training_args = student_args(
        tmp_path, "--output_dir", str(out), "--max_steps", "60", "--learning_rate", "3e-3", "--save_strategy",
        "steps", "--save_steps", "30", "--augment", "mask", "--augment_copies", "1")
    torch.manual_seed(0)
    trainer, _ = distill(model_args, data, distill_args, training_args, teacher=teacher)
    assert teacher.calls == 1
    transfer = trainer.train_dataset
    assert len(transfer) > 96 and (np.asarray(transfer["labels"]) == -100).any()  # augmented copies, unlabeled

    def kl(model):
        batch = trainer.data_collator([{k: v for k, v in transfer[i].items() if k != "teacher_logits"}
                                       for i in range(len(transfer))])
        batch.pop("labels")
        with torch.no_grad():
            logits = model.eval()(**batch).logits
        target = torch.tensor(transfer["teacher_logits"])
        return F.kl_div(F.log_softmax(logits, -1), F.log_softmax(target, -1), log_target=True,
                        reduction="batchmean").item()

    untrained = EELBertForSequenceClassification(small_config(num_labels=2))
    assert kl(trainer.model) < 0.7 * kl(untrained)

    # resumed from the step-30 checkpoint with a longer budget: the cached outputs are read, the teacher is idle
    os.rename(out / "checkpoint-60", tmp_path / "moved")
    model_args, data, distill_args, training_args = student_args(
        tmp_path, "--output_dir", str(out), "--max_steps", "70", "--learning_rate", "3e-3", "--augment", "mask",
        "--augment_copies", "1", "--resume", "true")
    trainer, _ = distill(model_args, data, distill_args, training_args, teacher=teacher)
    assert teacher.calls == 1 and trainer.state.global_step == 70

    with pytest.raises(ValueError, match="label mapping does not match"):
        *args, training_args = student_args(tmp_path, "--output_dir", str(tmp_path / "swapped"), "--max_steps", "1")
        distill(*args, training_args, teacher=CountingTeacher(swap=True))


def test_cli_distills_from_a_model_folder_and_from_a_column(tmp_path, capsys):
    teacher_dir = tmp_path / "teacher"
    model = EELBertForSequenceClassification(small_config(num_labels=2, id2label={0: "negative", 1: "positive"},
                                                          label2id={"negative": 0, "positive": 1}))
    model.save_pretrained(teacher_dir)
    eelbert_hf.EELBertTokenizer.from_bundled_vocab().save_pretrained(teacher_dir)
    student = tmp_path / "student"
    main(["distill", "--teacher", str(teacher_dir), "--train_files", RT_TRAIN, "--validation_files", RT_VALID,
          "--preset", "uno", "--max_train_samples", "64", "--max_steps", "2", "--output_dir", str(student), *QUIET])
    assert "eval_accuracy" in json.loads((student / "metrics.json").read_text())
    assert json.loads((student / "config.json").read_text())["id2label"] == {"0": "negative", "1": "positive"}

    records = [{**r, "soft": [0.2, 0.8] if r["label"] else [0.9, 0.1]} for r in rows(48)]
    column_file = write_jsonl(tmp_path / "soft.jsonl", records)
    main(["distill", "--teacher_column", "soft", "--teacher_outputs", "probabilities", "--train_files", column_file,
          "--preset", "uno", "--max_steps", "2", "--output_dir", str(tmp_path / "from-column"), *QUIET])
    assert (tmp_path / "from-column" / "model.safetensors").exists()

    bad = write_jsonl(tmp_path / "bad.jsonl", [{**r, "soft": [0.5, 0.9]} for r in records])
    with pytest.raises(ValueError, match="must be probabilities"):
        main(["distill", "--teacher_column", "soft", "--teacher_outputs", "probabilities", "--train_files", bad,
              "--output_dir", str(tmp_path / "bad"), *QUIET])
    with pytest.raises(ValueError, match="need a teacher that can label them"):
        main(["distill", "--teacher_column", "soft", "--augment", "mask", "--train_files", column_file,
              "--output_dir", str(tmp_path / "bad2"), *QUIET])
    with pytest.raises(ValueError, match="no folder"):
        main(["distill", "--teacher", str(tmp_path / "no-such-teacher"), "--train_files", RT_TRAIN,
              "--output_dir", str(tmp_path / "bad3"), *QUIET])


@pytest.mark.parametrize("flags, message", [
    ([], "exactly one teacher"),
    (["--teacher", "t", "--teacher_column", "c"], "exactly one teacher"),
    (["--teacher", "t", "--temperature", "0"], "temperature"),
    (["--teacher", "t", "--alpha", "1.5"], "alpha"),
    (["--teacher", "t", "--augment", "mask,shuffle"], "unknown.*shuffle"),
])
def test_distill_arguments_are_validated(flags, message):
    with pytest.raises(ValueError, match=message):
        parse_training_args("distill", ["--output_dir", "unused", *flags])


def test_cli_errors_are_one_line_without_a_traceback(tmp_path):
    import subprocess
    import sys

    command = [sys.executable, "-m", "eelbert_hf", "distill", "--teacher", str(tmp_path / "no-such-teacher"),
               "--train_files", RT_TRAIN, "--output_dir", str(tmp_path / "out")]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("eelbert: error:")]
    assert lines and "no folder" in lines[0] and "Traceback" not in result.stderr
    debug = subprocess.run(command + ["--debug"], capture_output=True, text=True)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_a_transformers_bert_teacher_with_its_own_tokenizer(tmp_path):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    teacher_dir = tmp_path / "bert-teacher"
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, num_labels=2)
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(teacher_dir)
    BertTokenizerFast(vocab_file=os.path.join(DATA, "vocab.txt")).save_pretrained(teacher_dir)
    trainer, _ = distill(*parse_training_args("distill", [
        "--teacher", str(teacher_dir), "--train_files", RT_TRAIN, "--preset", "uno", "--max_train_samples", "32",
        "--max_steps", "1", "--output_dir", str(tmp_path / "student"), *QUIET]))
    stored = np.asarray(trainer.train_dataset["teacher_logits"])
    texts = [r["text"] for r in rows(32)]
    teacher = BertForSequenceClassification.from_pretrained(teacher_dir).eval()
    tokenizer = BertTokenizerFast.from_pretrained(teacher_dir)
    with torch.no_grad():
        expected = teacher(**tokenizer(texts, padding=True, truncation=True, max_length=32,
                                       return_tensors="pt")).logits.numpy()
    np.testing.assert_allclose(stored, expected, atol=1e-5)  # the teacher's own tokenizer and logits, in order


def test_named_labels_follow_the_teachers_id2label(tmp_path):
    teacher = CountingTeacher()
    teacher.id2label = {0: "no-the", 1: "The"}
    named = write_jsonl(tmp_path / "named.jsonl", [{"text": r["text"], "label": ["no-the", "the"][has_the(r["text"])]}
                                                   for r in rows(64)])
    out = str(tmp_path / "named-student")
    trainer, _ = distill(*student_args(tmp_path, "--train_files", named, "--validation_files", named,
                                       "--max_steps", "1", "--output_dir", out), teacher=teacher)
    assert trainer.train_dataset["labels"] == [has_the(r["text"]) for r in rows(64)]
    assert trainer.model.config.id2label == {0: "no-the", 1: "The"}
    wrong = write_jsonl(tmp_path / "wrong.jsonl", [{"text": r["text"], "label": "maybe"} for r in rows(32)])
    with pytest.raises(ValueError, match="'maybe' is not one of the teacher's labels"):
        distill(*student_args(tmp_path, "--train_files", wrong, "--output_dir", out + "2"), teacher=teacher)


def test_sentence_pairs_and_unlabeled_text(tmp_path):
    seen = []

    def teacher(texts, pairs=None):
        seen.append((list(texts), None if pairs is None else list(pairs)))
        return np.tile([0.0, 1.0], (len(texts), 1)).astype(np.float32)

    teacher.teacher_id = "pair teacher"
    records = [{"text": r["text"], "second": r["text"][::-1], "label": 1} for r in rows(24)]
    pairs = write_jsonl(tmp_path / "pairs.jsonl", records)
    trainer, _ = distill(*student_args(tmp_path, "--train_files", pairs, "--text_pair_column", "second",
                                       "--max_steps", "1", "--output_dir", str(tmp_path / "pairs")), teacher=teacher)
    assert seen[0] == ([r["text"] for r in records], [r["second"] for r in records])  # the teacher saw both
    first = trainer.train_dataset[0]
    assert 0 in first["token_type_ids"] and 1 in first["token_type_ids"]  # the student reads both segments
    with pytest.raises(ValueError, match="single-text tasks"):
        distill(*student_args(tmp_path, "--train_files", pairs, "--text_pair_column", "second", "--augment", "mask",
                              "--output_dir", str(tmp_path / "pairs-augmented")), teacher=teacher)

    extra = tmp_path / "unlabeled.txt"
    extra.write_text("an unlabeled review\n\nanother one\n", encoding="utf-8")
    trainer, _ = distill(*student_args(tmp_path, "--unlabeled_files", str(extra), "--max_steps", "1",
                                       "--output_dir", str(tmp_path / "unlabeled")), teacher=teacher)
    assert seen[-1][0][-2:] == ["an unlabeled review", "another one"]
    assert trainer.train_dataset["labels"][-2:] == [-100, -100]
    with pytest.raises(ValueError, match="no such file"):
        distill(*student_args(tmp_path, "--unlabeled_files", str(tmp_path / "missing.txt"),
                              "--output_dir", str(tmp_path / "missing")), teacher=teacher)
