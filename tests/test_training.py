"""Training: leak-free MLM collation, Trainer fine-tuning, checkpoint transfer, CLI, resume, DDP on CPU."""

import json
import os
import subprocess
import sys

import datasets
import numpy as np
import pytest
import torch
from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

import eelbert_hf
from conftest import CrashAt, small_config
from eelbert_hf import EELBertForMaskedLM, EELBertForSequenceClassification, EELBertModel
from eelbert_hf.apps.arguments import parse_training_args
from eelbert_hf.apps.cli import main
from eelbert_hf.loading import BUNDLED_CLASSIFIER
from eelbert_hf.training import (
    DataCollatorForEELBertMLM,
    classification_metrics,
    init_table_from_hash,
    last_complete_checkpoint,
    pretrain,
)

DATA = os.path.join(os.path.dirname(eelbert_hf.__file__), "data")
TEXT = os.path.join(DATA, "brown_sample.txt")
RT_TRAIN, RT_VALID = os.path.join(DATA, "rt_sample_train.jsonl"), os.path.join(DATA, "rt_sample_validation.jsonl")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_RUN = ["--preset", "uno", "--max_seq_length", "32", "--per_device_train_batch_size", "8", "--report_to",
             "none", "--disable_tqdm", "true", "--logging_steps", "1", "--seed", "3"]


def test_mlm_collator_features_follow_the_masked_ids(tokenizer):
    texts = [line for line in open(TEXT, encoding="utf-8").read().splitlines()[:64]]
    features = [{"input_ids": ids} for ids in tokenizer(texts, truncation=True, max_length=48)["input_ids"]]
    collator = DataCollatorForEELBertMLM(tokenizer, mlm_probability=0.3, seed=0)
    seen = {"mask": 0, "random": 0}
    for start in range(0, 64, 16):
        batch = collator(features[start : start + 16])
        ids, ngrams, labels = batch["input_ids"], batch["ngram_ids"], batch["labels"]
        assert torch.equal(ngrams, torch.from_numpy(tokenizer.ngram_ids_for(ids.numpy())))  # every position
        changed = (labels != -100) & (ids != labels)
        assert changed.any()
        original_rows = torch.from_numpy(tokenizer.ngram_ids_for(torch.where(changed, labels, ids).numpy()))
        # a replaced position carries no n-gram row of the token it hides
        assert not (ngrams[changed] == original_rows[changed]).all(-1).any()
        seen["mask"] += int((ids[changed] == tokenizer.mask_token_id).sum())
        seen["random"] += int((ids[changed] != tokenizer.mask_token_id).sum())
    assert seen["mask"] > 0 and seen["random"] > 0  # both the 80 % and the 10 % branches were exercised


@pytest.mark.parametrize("pairs", [False, True])
def test_trainer_finetunes_with_default_arguments(tokenizer, tmp_path, pairs):
    rows = [json.loads(line) for line in open(RT_TRAIN, encoding="utf-8").read().splitlines()[:48]]
    data = datasets.Dataset.from_list([{**r, "other": r["text"][::-1]} for r in rows])
    encode = (lambda b: tokenizer(b["text"], b["other"], truncation=True)) if pairs else \
        (lambda b: tokenizer(b["text"], truncation=True))
    encoded = data.map(encode, batched=True)  # keeps ngram_ids; Trainer must not drop them
    assert "ngram_ids" in encoded.column_names
    model = EELBertForSequenceClassification(small_config(num_labels=2))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=16,
                             report_to="none", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=encoded, data_collator=DataCollatorWithPadding(tokenizer),
                      processing_class=tokenizer)
    result = trainer.train()
    assert np.isfinite(result.training_loss)


def test_the_documented_trainer_path_keeps_ngram_ids_out_of_the_dataset(tokenizer, tmp_path):
    """docs/finetune.md: map with return_ngram_ids=False; DataCollatorWithPadding adds ngram_ids to every batch."""
    rows = [json.loads(line) for line in open(RT_TRAIN, encoding="utf-8").read().splitlines()[:32]]
    encoded = datasets.Dataset.from_list(rows).map(
        lambda b: tokenizer(b["text"], truncation=True, return_ngram_ids=False), batched=True)
    assert "ngram_ids" not in encoded.column_names
    collator = DataCollatorWithPadding(tokenizer)
    batch = collator([{k: encoded[i][k] for k in ("input_ids", "attention_mask", "token_type_ids")} for i in range(4)])
    assert batch["ngram_ids"].shape == (*batch["input_ids"].shape, 48)
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=16, report_to="none",
                             disable_tqdm=True)
    model = EELBertForSequenceClassification(small_config(num_labels=2))
    result = Trainer(model=model, args=args, train_dataset=encoded, data_collator=collator,
                     processing_class=tokenizer).train()
    assert np.isfinite(result.training_loss)


def test_mlm_checkpoint_loads_into_classifier(tmp_path, caplog):
    mlm = EELBertForMaskedLM(small_config())
    mlm.save_pretrained(tmp_path)
    classifier = EELBertForSequenceClassification.from_pretrained(tmp_path, num_labels=3)
    encoder = {k: v for k, v in mlm.state_dict().items() if k.startswith("bert.")}
    loaded = classifier.state_dict()
    for name, tensor in encoder.items():
        assert torch.equal(loaded[name], tensor), name
    assert not any(k.startswith("cls.") for k in loaded) and loaded["classifier.weight"].shape == (3, 32)


def test_metrics():
    logits = np.array([[2.0, 0.0], [0.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    labels = np.array([0, 1, 0, 0])
    m = classification_metrics(2, "cola")((logits, labels))
    assert m["accuracy"] == 0.75 and m["f1"] == pytest.approx(2 / 3)
    assert m["matthews_correlation"] == pytest.approx(0.5773502, abs=1e-6)
    r = classification_metrics(1)((np.array([[1.0], [2.0], [3.0], [5.0]]), np.array([1.0, 2.0, 3.0, 4.0])))
    assert r["spearmanr"] == pytest.approx(1.0) and 0.95 < r["pearson"] < 1.0
    constant = classification_metrics(1)((np.ones((4, 1)), np.array([1.0, 2.0, 3.0, 4.0])))
    assert constant == {"pearson": 0.0, "spearmanr": 0.0}  # undefined: 0.0, not NaN
    three = classification_metrics(3)((np.eye(3)[[0, 1, 2, 2]], np.array([0, 1, 1, 2])))
    assert three["accuracy"] == 0.75 and three["f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)  # macro over classes


def loss_at(output_dir, step):
    state = json.load(open(os.path.join(output_dir, "trainer_state.json"), encoding="utf-8"))
    return next(entry["loss"] for entry in state["log_history"] if entry.get("step") == step and "loss" in entry)


def test_pretrain_finetune_export_cli(tmp_path, capsys):
    mlm_dir, clf_dir, hub_dir = (str(tmp_path / name) for name in ("mlm", "clf", "hub"))
    main(["pretrain", "--train_files", TEXT, "--output_dir", mlm_dir, "--max_steps", "6", "--eval_steps", "3",
          "--save_steps", "3", *SMALL_RUN])
    assert "eval loss" in capsys.readouterr().out
    state = json.load(open(os.path.join(mlm_dir, "trainer_state.json"), encoding="utf-8"))
    assert any("eval_loss" in entry for entry in state["log_history"])  # periodic evaluation ran
    main(["finetune", "--model_name_or_path", mlm_dir, "--train_files", RT_TRAIN, "--validation_files", RT_VALID,
          "--max_train_samples", "64", "--num_train_epochs", "1", "--output_dir", clf_dir, *SMALL_RUN])
    metrics = json.load(open(os.path.join(clf_dir, "metrics.json"), encoding="utf-8"))
    # the metrics are those of the saved classifier on the validation file, recomputed here by hand (Trainer's
    # evaluation order and padding: batches of 8, each padded to its longest, truncated to --max_seq_length); the
    # loss tells models apart where a barely trained one predicts a single class
    classifier = EELBertForSequenceClassification.from_pretrained(clf_dir).eval()
    tokenizer = eelbert_hf.EELBertTokenizer.from_pretrained(clf_dir)
    rows = [json.loads(line) for line in open(RT_VALID, encoding="utf-8")]
    labels, logits = torch.tensor([r["label"] for r in rows]), []
    for start in range(0, len(rows), 8):
        batch = tokenizer([r["text"] for r in rows[start : start + 8]], padding=True, truncation=True, max_length=32,
                          return_tensors="pt")
        with torch.no_grad():
            logits.append(classifier(**batch).logits)
    logits = torch.cat(logits)
    predicted = logits.argmax(-1)
    true_positives = int(((predicted == 1) & (labels == 1)).sum())
    f1 = 2 * true_positives / int((predicted == 1).sum() + (labels == 1).sum())
    assert metrics["eval_loss"] == pytest.approx(torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-5)
    assert metrics["eval_accuracy"] == pytest.approx((predicted == labels).double().mean().item(), abs=1e-9)
    assert metrics["eval_f1"] == pytest.approx(f1, abs=1e-9)
    main(["export", clf_dir, hub_dir, "--fp16"])
    assert "float16" in capsys.readouterr().out
    assert os.path.getsize(os.path.join(hub_dir, "model.safetensors")) < 0.62e6
    assert {"modeling_eelbert.py", "tokenization_eelbert.py", "tokenizer.json"} <= set(os.listdir(hub_dir))
    reloaded = EELBertForSequenceClassification.from_pretrained(hub_dir)
    assert reloaded.dtype == torch.float16


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path):
    common = ["--train_files", TEXT, "--max_steps", "8", "--save_steps", "4", "--eval_strategy", "no", *SMALL_RUN]
    straight, crashed = str(tmp_path / "straight"), str(tmp_path / "crashed")
    main(["pretrain", "--output_dir", straight, *common])
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(*parse_training_args("pretrain", ["--output_dir", crashed, *common]), callbacks=[CrashAt(6)])
    assert sorted(os.listdir(crashed)) == ["checkpoint-4"]
    os.makedirs(os.path.join(crashed, "checkpoint-6"))  # a checkpoint the crash cut off while it was written
    assert last_complete_checkpoint(crashed).endswith("checkpoint-4")
    main(["pretrain", "--output_dir", crashed, "--resume", "true", *common])
    for step in (5, 6, 7, 8):
        assert loss_at(crashed, step) == pytest.approx(loss_at(straight, step), abs=1e-5)
    straight_weights = EELBertForMaskedLM.from_pretrained(straight).state_dict()
    for name, tensor in EELBertForMaskedLM.from_pretrained(crashed).state_dict().items():
        torch.testing.assert_close(tensor, straight_weights[name], atol=1e-5, rtol=0)


def test_data_parallel_on_cpu_with_two_processes(tmp_path):
    out = str(tmp_path / "ddp")
    # accelerate's --cpu launcher starts a single process without MPI; --multi_gpu starts torchrun-style
    # workers, and on a machine without a GPU the CLI trains them data-parallel on CPU with gloo.
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               os.path.join(REPO, "examples", "pretrain_mlm.py"), "--train_files", TEXT, "--output_dir", out,
               "--max_steps", "3", "--save_steps", "3", "--eval_steps", "3", *SMALL_RUN]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600,  # gloo on CPU, also beside a GPU
                          env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size=2" in proc.stdout and "steps=3" in proc.stdout
    assert os.path.exists(os.path.join(out, "model.safetensors"))


def test_finetune_cli_on_csv_sentence_pairs_and_regression(tmp_path):
    import csv

    rows = [json.loads(line) for line in open(RT_TRAIN, encoding="utf-8").read().splitlines()[:40]]
    for name, label in (("pairs", lambda i, r: r["label"]), ("scores", lambda i, r: 0.25 * (i % 5) + 0.1)):
        path = tmp_path / f"{name}.csv"
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["first", "second", "target"])
            writer.writerows([r["text"], r["text"][::-1], label(i, r)] for i, r in enumerate(rows))
        out = str(tmp_path / f"out-{name}")
        main(["finetune", "--train_files", str(path), "--validation_files", str(path), "--text_column", "first",
              "--text_pair_column", "second", "--label_column", "target", "--max_steps", "2", "--output_dir", out,
              *SMALL_RUN])
        metrics = json.load(open(os.path.join(out, "metrics.json"), encoding="utf-8"))
        assert ("eval_pearson" in metrics) == (name == "scores") and ("eval_accuracy" in metrics) == (name == "pairs")
    with pytest.raises(ValueError, match="no column 'missing'"):
        main(["finetune", "--train_files", str(path), "--text_column", "missing", "--output_dir", out, *SMALL_RUN])


@pytest.mark.parametrize("embedding_type", ["dynamic", "table", "hash_init", "random_hash"])
def test_every_embedding_variant_pretrains_on_one_code_path(tmp_path, embedding_type):
    out = str(tmp_path / embedding_type)
    main(["pretrain", "--train_files", TEXT, "--output_dir", out, "--max_steps", "2", "--eval_strategy", "no",
          "--save_strategy", "no", "--embedding_type", embedding_type, "--max_train_samples", "200", *SMALL_RUN])
    model = EELBertForMaskedLM.from_pretrained(out)
    assert model.config.embedding_type == embedding_type
    tokenizer = eelbert_hf.EELBertTokenizer.from_pretrained(out)
    assert tokenizer.feature_type == ("whole_token" if embedding_type == "random_hash" else "ngram")
    has_table = any(t.shape[0] == 30522 for k, t in model.state_dict().items() if k.startswith("bert."))
    assert has_table == (embedding_type in ("table", "hash_init"))


def test_hash_init_table_reproduces_the_dynamic_model(tokenizer, batch):
    torch.manual_seed(0)
    dynamic = EELBertModel(small_config()).eval()
    table = EELBertModel(small_config(embedding_type="hash_init")).eval()
    missing, unexpected = table.load_state_dict(dynamic.state_dict(), strict=False)
    assert missing == ["embeddings.word_embeddings.weight"]
    assert unexpected == ["embeddings.ngram_embeddings.bucket_weights"]  # untrained gates: weight 1.0
    init_table_from_hash(table, tokenizer)
    assert table.embeddings.word_embeddings.weight.requires_grad
    torch.testing.assert_close(table(**batch).last_hidden_state, dynamic(**batch).last_hidden_state,
                               atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="needs a table"):
        init_table_from_hash(dynamic, tokenizer)


def test_training_logs_are_one_readable_line():
    from types import SimpleNamespace

    from eelbert_hf.training import log_line

    state = SimpleNamespace(global_step=40, max_steps=200)
    line = log_line({"loss": 7.21432, "learning_rate": 0.0004, "tokens_per_s": 9738.4, "epoch": 0.3125,
                     "total_flos": 1e12, "num_input_tokens_seen": 5120}, state)
    assert line == "step 40/200 (epoch 0.31): loss 7.214 · learning_rate 0.0004 · tokens_per_s 9,738 · num_input_tokens_seen 5120"


@pytest.mark.parametrize("model", ["bpe", "unigram"])
def test_train_tokenizer_then_pretrain_finetune_distill_and_export_on_it(tmp_path, capsys, model):
    """`eelbert train-tokenizer` on the bundled Brown sample, then every training command with `--tokenizer`: the new
    model takes the tokenizer's vocab_size, pad id and token format, and the exported folder reloads the same."""
    tok_dir, mlm_dir, clf_dir, student_dir, hub_dir = (str(tmp_path / n) for n in ("tok", "mlm", "clf", "st", "hub"))
    main(["train-tokenizer", TEXT, "--model", model, "--vocab-size", "800", "--output-dir", tok_dir])
    assert f"saved a {model} tokenizer of 800 tokens" in capsys.readouterr().out
    tokenizer = eelbert_hf.EELBertTokenizer.from_pretrained(tok_dir)
    expected_format = {"bpe": "byte_level", "unigram": "metaspace"}[model]
    assert tokenizer.token_format == expected_format and len(tokenizer) == 800
    main(["pretrain", "--train_files", TEXT, "--tokenizer", tok_dir, "--output_dir", mlm_dir, "--max_steps", "2",
          "--eval_strategy", "no", *SMALL_RUN])
    config = json.load(open(os.path.join(mlm_dir, "config.json"), encoding="utf-8"))
    assert (config["vocab_size"], config["pad_token_id"], config["token_format"]) == (800, 0, expected_format)
    mlm = EELBertForMaskedLM.from_pretrained(mlm_dir)
    assert mlm.cls.predictions.decoder.out_features == 800
    main(["finetune", "--model_name_or_path", mlm_dir, "--train_files", RT_TRAIN, "--max_train_samples", "16",
          "--max_steps", "2", "--eval_strategy", "no", "--output_dir", clf_dir, *SMALL_RUN])
    main(["distill", "--teacher", BUNDLED_CLASSIFIER, "--tokenizer", tok_dir, "--train_files", RT_TRAIN,
          "--max_train_samples", "16", "--augment_copies", "0", "--max_steps", "2", "--eval_strategy", "no",
          "--output_dir", student_dir,
          *SMALL_RUN])  # the teacher reads the texts with its own WordPiece tokenizer
    student = json.load(open(os.path.join(student_dir, "config.json"), encoding="utf-8"))
    assert (student["vocab_size"], student["token_format"]) == (800, expected_format)
    main(["export", clf_dir, hub_dir])
    exported = eelbert_hf.EELBertTokenizer.from_pretrained(hub_dir)
    texts = ["Здравствуй, мир — a gripping film 😀", "dull"]
    assert dict(exported(texts, padding=True)) == dict(tokenizer(texts, padding=True))


def test_config_overrides_take_literals_and_bare_words():
    """--config_overrides as run_mlm.py writes it: Python literals, or a bare word for a string field."""
    from eelbert_hf.training import ModelArguments, build_config

    config = build_config(ModelArguments(config_overrides="ngram_weight_buckets=0, hidden_dropout_prob=0.2,"
                                                          "classifier_pooling=mean,embedding_type='table'"))
    assert (config.ngram_weight_buckets, config.hidden_dropout_prob) == (0, 0.2)
    assert (config.classifier_pooling, config.embedding_type) == ("mean", "table")
    with pytest.raises(ValueError, match="no field 'pooling'"):
        build_config(ModelArguments(config_overrides="pooling=mean"))
    with pytest.raises(ValueError, match="classifier_pooling must be one of"):
        build_config(ModelArguments(config_overrides="classifier_pooling=max"))
