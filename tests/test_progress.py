"""Long work shows progress: the teacher labelling the transfer set, MLM packing, ONNX export; transformers' bars for
loading and saving weights are quiet in the commands and the quickstart, and only there."""

import json
import os

import pytest
import torch

import eelbert_hf
from conftest import small_config
from eelbert_hf import EELBertForSequenceClassification
from eelbert_hf.apps.cli import main
from eelbert_hf.apps.progress import WEIGHT_BARS, quiet_weight_bars

DATA = os.path.join(os.path.dirname(eelbert_hf.__file__), "data")
RT_TRAIN = os.path.join(DATA, "rt_sample_train.jsonl")


@pytest.fixture(autouse=True)
def progress_bars_on():
    """transformers' bars as a user has them by default: an in-process `eelbert bench` (which turns them off for
    its own process) in an earlier test must not decide what these tests see."""
    from transformers.utils import logging as hf_logging

    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    yield
    if not was_on:
        hf_logging.disable_progress_bar()


@pytest.fixture
def bert_teacher(tmp_path):
    """A 1-layer transformers BERT sequence classifier with its own tokenizer, saved to a folder."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path / "bert-teacher"
    torch.manual_seed(0)
    BertForSequenceClassification(BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=1,
                                             num_attention_heads=2, intermediate_size=64,
                                             num_labels=2)).save_pretrained(folder)
    BertTokenizerFast(vocab_file=os.path.join(DATA, "vocab.txt")).save_pretrained(folder)
    return str(folder)


def distill_command(teacher, output_dir, *flags):
    return ["distill", "--teacher", teacher, "--train_files", RT_TRAIN, "--preset", "uno", "--max_train_samples", "40",
            "--teacher_batch_size", "16", "--max_steps", "1", "--max_seq_length", "32", "--report_to", "none",
            "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", str(output_dir), *flags]


def test_distill_shows_the_teacher_labelling_without_weight_bars_unless_progress_bars_are_off(bert_teacher, tmp_path,
                                                                                             capsys):
    main(distill_command(bert_teacher, tmp_path / "shown"))
    shown = capsys.readouterr().err
    assert "teacher labelling: 100%" in shown and "40/40" in shown, shown
    assert not any(bar in shown for bar in WEIGHT_BARS), shown  # the command quiets transformers' loading and saving
    main(distill_command(bert_teacher, tmp_path / "hidden", "--disable_tqdm", "true"))
    assert "teacher labelling" not in capsys.readouterr().err


def test_transformers_progress_setting_hides_the_teacher_labelling_bar(bert_teacher, capsys):
    from transformers.utils import logging as hf_logging

    from eelbert_hf.distillation import model_teacher

    teacher = model_teacher(bert_teacher, max_length=32, batch_size=4)
    capsys.readouterr()
    teacher(["a gripping film"] * 10)
    assert "10/10" in capsys.readouterr().err
    hf_logging.disable_progress_bar()
    try:
        teacher(["a gripping film"] * 10)
    finally:
        hf_logging.enable_progress_bar()
    assert "teacher labelling" not in capsys.readouterr().err


def test_mlm_packing_shows_a_named_bar(tokenizer, capsys):
    import datasets

    from eelbert_hf.training import DataArguments, mlm_blocks

    lines = [json.loads(line)["text"] for line in open(RT_TRAIN, encoding="utf-8")][:50]
    raw = datasets.DatasetDict(train=datasets.Dataset.from_dict({"text": lines}))
    mlm_blocks(raw, tokenizer, DataArguments(max_seq_length=32))
    assert "packing text into blocks" in capsys.readouterr().err


def test_onnx_export_names_its_steps_and_counts_the_accuracy_texts(tmp_path, tokenizer, capsys):
    pytest.importorskip("onnxruntime", reason="the `test` extra installs onnx and onnxruntime")
    from eelbert_hf.packaging.onnx_export import export_checkpoint

    checkpoint, texts = tmp_path / "checkpoint", tmp_path / "eval.jsonl"
    EELBertForSequenceClassification(small_config(num_labels=2)).save_pretrained(checkpoint)
    tokenizer.save_pretrained(checkpoint)
    texts.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in
                             enumerate(["a gripping film", "a dull mess", "fine"])), encoding="utf-8")
    export_checkpoint(str(checkpoint), str(tmp_path / "out"), quantize=True, eval_file=str(texts))
    err = capsys.readouterr().err
    assert "ONNX: done: 100%" in err and "5/5" in err, err
    for step in ("export float32", "check float32 against torch", "export the two graphs for runtimes with a token "
                 "cache", "quantise to int8", "check int8 against torch"):
        assert f"ONNX: {step}" in err
    assert "accuracy on eval.jsonl" in err


def test_weight_bars_are_quiet_inside_the_block_only(tmp_path, capsys):
    def save_and_load():
        model = EELBertForSequenceClassification(small_config(num_labels=2))
        model.save_pretrained(tmp_path / "model")
        EELBertForSequenceClassification.from_pretrained(tmp_path / "model")
        return capsys.readouterr().err

    assert all(bar in save_and_load() for bar in WEIGHT_BARS)  # transformers draws them: there is something to quiet
    with quiet_weight_bars():
        quiet = save_and_load()
    assert not any(bar in quiet for bar in WEIGHT_BARS), quiet
    assert all(bar in save_and_load() for bar in WEIGHT_BARS)  # the user's own calls afterwards: as before
