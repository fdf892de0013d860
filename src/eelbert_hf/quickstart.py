"""`eelbert quickstart`: the whole workflow offline on bundled data, in a few minutes on 2 CPU cores.

1. classify texts with the UNO-EELBERT sentiment classifier bundled with the package (real inference);
2. pretrain UNO-EELBERT (1 layer, no embedding table) with MLM on a Brown Corpus sample (a short demo run);
3. fine-tune it on a Rotten Tomatoes sample (sentiment);
4. export the bundled classifier as a Hub-ready folder (weights, tokenizer, the flat .py files), which is
   what `eelbert push bundled org/uno-eelbert` uploads;
5. reload that folder in a fresh Python process where eelbert_hf cannot be imported, through
   AutoTokenizer / AutoModelForSequenceClassification with trust_remote_code=True, and score it there;
   print parameter count and checkpoint size next to a BERT of the same dimensions.
"""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import torch
from transformers import BertConfig, BertForSequenceClassification
from transformers.utils import logging as hf_logging

from .classify import BUNDLED_CLASSIFIER, BUNDLED_TRAINING_DATA, load_classifier
from .cli import parse_training_args
from .hub import export
from .training import finetune, pretrain

EXAMPLES = ["a gripping, funny film", "a dull, lifeless and overlong mess"]
DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
TEXT, RT_TRAIN, RT_VALID = (os.path.join(DATA, name) for name in (
    "brown_sample.txt", "rt_sample_train.jsonl", "rt_sample_validation.jsonl"))

# Runs in a fresh interpreter where eelbert_hf cannot be imported: only the saved folder's own files load.
RELOAD = textwrap.dedent("""
    import json, sys
    sys.modules["eelbert_hf"] = None
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    folder, data = sys.argv[1], [json.loads(line) for line in open(sys.argv[2], encoding="utf-8")]
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    logits = []
    with torch.no_grad():
        for i in range(0, len(data), 64):
            batch = tokenizer([d["text"] for d in data[i:i + 64]], padding=True, truncation=True,
                              max_length=128, return_tensors="pt")
            logits += model(**batch).logits.tolist()
    print(json.dumps({"class": type(model).__module__, "logits": logits}))
""")


def bert_twin_size(config, folder: str) -> int:
    """Size of a transformers BertForSequenceClassification with the same dimensions, saved the same way."""
    bert = BertForSequenceClassification(BertConfig(**{k: getattr(config, k) for k in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")}))
    bert.save_pretrained(folder)
    return os.path.getsize(os.path.join(folder, "model.safetensors"))


def run_quickstart(output_dir: str | None = None, preset: str = "uno", pretrain_steps: int = 300,
                   finetune_epochs: float = 3.0) -> dict:
    import datasets

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    dataset_bars = datasets.utils.logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        return _run(output_dir, preset, pretrain_steps, finetune_epochs)
    finally:  # leave transformers' and datasets' logging as the caller had it
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
        if dataset_bars:
            datasets.enable_progress_bars()


def _run(output_dir, preset, pretrain_steps, finetune_epochs) -> dict:
    output_dir = output_dir or tempfile.mkdtemp(prefix="eelbert-quickstart-")
    common = ["--preset", preset, "--report_to", "none", "--disable_tqdm", "true", "--seed", "0",
              "--logging_strategy", "no", "--save_strategy", "no", "--per_device_train_batch_size", "32"]
    mlm_dir, clf_dir, hub_dir = (os.path.join(output_dir, name) for name in ("mlm", "classifier", "hub"))
    validation = [json.loads(line) for line in open(RT_VALID, encoding="utf-8")]
    labels = torch.tensor([d["label"] for d in validation])

    print(f"1/5 the bundled UNO-EELBERT sentiment classifier ({os.path.relpath(BUNDLED_CLASSIFIER, DATA)}, "
          "trained on the full Rotten Tomatoes training split):")
    classifier = load_classifier()
    for text in EXAMPLES:
        prediction = classifier(text)[0]
        print(f"    {prediction['label']:<8} {prediction['score']:.3f}  {text}")
    predicted = [p["label"] for p in classifier([d["text"] for d in validation], batch_size=64, truncation=True)]
    bundled_accuracy = (torch.tensor([classifier.model.config.label2id[p] for p in predicted]) == labels).float().mean().item()
    print(f"    accuracy on {os.path.basename(RT_VALID)} ({len(validation)} reviews): {bundled_accuracy:.3f}")

    print(f"2/5 pretraining {preset.upper()}-EELBERT with MLM for {pretrain_steps} steps on {os.path.basename(TEXT)}")
    trainer = pretrain(*parse_training_args("pretrain", [
        "--train_files", TEXT, "--output_dir", mlm_dir, "--max_steps", str(pretrain_steps), "--max_seq_length", "64",
        "--eval_strategy", "no", *common]))
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e] or [trainer.state.log_history[-1]["train_loss"]]
    print(f"    MLM training loss {losses[-1]:.3f}")

    print(f"3/5 fine-tuning on {os.path.basename(RT_TRAIN)} for {finetune_epochs:g} epochs")
    _, metrics = finetune(*parse_training_args("finetune", [
        "--model_name_or_path", mlm_dir, "--train_files", RT_TRAIN, "--validation_files", RT_VALID,
        "--output_dir", clf_dir, "--num_train_epochs", str(finetune_epochs), "--eval_strategy", "no", *common]))
    print(f"    validation accuracy {metrics['eval_accuracy']:.3f} (F1 {metrics['eval_f1']:.3f}) at this demo budget; "
          f"saved to {clf_dir}")

    sizes = export(BUNDLED_CLASSIFIER, hub_dir, training_data=BUNDLED_TRAINING_DATA)
    print(f"4/5 exported the bundled classifier as a Hub-ready folder to {hub_dir}:\n    {', '.join(sizes)}")

    reloaded = subprocess.run([sys.executable, "-c", RELOAD, hub_dir, RT_VALID], capture_output=True, text=True)
    if reloaded.returncode:
        raise RuntimeError(f"reloading with trust_remote_code failed:\n{reloaded.stderr[-3000:]}")
    remote = json.loads(reloaded.stdout.strip().splitlines()[-1])
    remote_accuracy = (torch.tensor(remote["logits"]).argmax(-1) == labels).float().mean().item()
    model, tokenizer = classifier.model, classifier.tokenizer
    with torch.no_grad():
        texts = [d["text"] for d in validation[:64]]
        local = model(**tokenizer(texts, padding=True, truncation=True, max_length=128, return_tensors="pt")).logits
    max_diff = (torch.tensor(remote["logits"][:64]) - local).abs().max().item()
    print(f"5/5 reloaded in a fresh process without eelbert_hf ({remote['class']}, trust_remote_code=True):\n"
          f"    validation accuracy {remote_accuracy:.3f}, max |logit diff| vs in-process {max_diff:.1e}")

    with tempfile.TemporaryDirectory() as bert_dir:
        bert_bytes = bert_twin_size(model.config, bert_dir)
    eel_bytes, params = sizes["model.safetensors"], sum(p.numel() for p in model.parameters())
    print(f"parameters: {params:,}")
    print(f"model.safetensors: UNO-EELBERT {eel_bytes / 1e6:.3f} MB vs BertForSequenceClassification of the "
          f"same dims {bert_bytes / 1e6:.3f} MB ({bert_bytes / eel_bytes:.1f}x smaller)")
    return {"folder": hub_dir, "parameters": params, "eelbert_bytes": eel_bytes, "bert_bytes": bert_bytes,
            "accuracy": metrics["eval_accuracy"], "bundled_accuracy": bundled_accuracy,
            "remote_accuracy": remote_accuracy, "max_diff": max_diff}
