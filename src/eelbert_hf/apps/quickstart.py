"""`eelbert quickstart`: the whole workflow offline on bundled data, in about two minutes on 2 CPU cores.

1. classify texts with the UNO-EELBERT sentiment classifier bundled with the package (real inference), and
   score it on a Rotten Tomatoes validation sample next to the majority class;
2. distill that classifier into a fresh student (UNO by default) on a 2,000-review training sample plus
   augmented copies (`eelbert distill`: the teacher labels the transfer set once, Trainer trains);
3. train the same student on the 2,000 labels alone for the same number of steps: the baseline;
4. export the distilled student as a Hub-ready folder (weights, tokenizer, the flat .py files), which is
   what `eelbert push` uploads;
5. reload that folder in a fresh Python process where eelbert_hf cannot be imported, through
   AutoTokenizer / AutoModelForSequenceClassification with trust_remote_code=True, and score it there;
   print its parameter count and checkpoint size next to a BERT of the same dimensions.
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

from ..loading import BUNDLED_CLASSIFIER, DATA_DIR, load_classifier
from .arguments import parse_training_args
from .progress import quiet_weight_bars
from ..packaging.hub import export
from ..training import finetune

EXAMPLES = ["a gripping, funny film", "a dull, lifeless and overlong mess"]
DATA = DATA_DIR
RT_TRAIN, RT_VALID = (os.path.join(DATA, name) for name in ("rt_sample_train.jsonl", "rt_sample_validation.jsonl"))

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


def run_quickstart(output_dir: str | None = None, preset: str = "uno", epochs: float = 3.0, copies: int = 8) -> dict:
    import datasets

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # progress bars stay on; transformers' warnings would drown them
    datasets.disable_progress_bars()  # (the data here is small: its per-step bars are noise)
    try:
        with quiet_weight_bars():
            return _run(output_dir, preset, epochs, copies)
    finally:  # leave logging as the caller had it
        hf_logging.set_verbosity(verbosity)
        datasets.enable_progress_bars()


def _accuracy(classifier, rows) -> float:
    predicted = classifier([d["text"] for d in rows], batch_size=64, truncation=True, max_length=128)
    label2id = classifier.model.config.label2id
    return sum(label2id[p["label"]] == d["label"] for p, d in zip(predicted, rows)) / len(rows)


def _run(output_dir, preset, epochs, copies) -> dict:
    from ..distillation import distill

    output_dir = output_dir or tempfile.mkdtemp(prefix="eelbert-quickstart-")
    # --disable_tqdm false: the bars would follow the transformers verbosity set above (error: off)
    common = ["--preset", preset, "--train_files", RT_TRAIN, "--validation_files", RT_VALID, "--report_to", "none",
              "--seed", "0", "--logging_strategy", "no", "--save_strategy", "no", "--eval_strategy", "no",
              "--per_device_train_batch_size", "32", "--train_sampling_strategy", "group_by_length",
              "--disable_tqdm", "false"]
    student_dir, labels_dir, hub_dir = (os.path.join(output_dir, n) for n in ("distilled", "labels-only", "hub"))
    validation = [json.loads(line) for line in open(RT_VALID, encoding="utf-8")]
    labels = torch.tensor([d["label"] for d in validation])
    majority = max(labels.float().mean().item(), 1 - labels.float().mean().item())

    print(f"1/5 the bundled UNO-EELBERT sentiment classifier ({os.path.relpath(BUNDLED_CLASSIFIER, DATA)}, "
          "distilled on the full Rotten Tomatoes training split):")
    classifier = load_classifier()
    for text in EXAMPLES:
        prediction = classifier(text)[0]
        print(f"    {prediction['label']:<8} {prediction['score']:.3f}  {text}")
    bundled_accuracy = _accuracy(classifier, validation)
    print(f"    accuracy on {os.path.basename(RT_VALID)} ({len(validation)} reviews): {bundled_accuracy:.3f} "
          f"(the majority class: {majority:.3f})")

    print(f"2/5 distilling it into a new {preset.upper()}-EELBERT on {os.path.basename(RT_TRAIN)} (2,000 reviews) "
          f"+ {copies} augmented copies of each, {epochs:g} epochs")
    trainer, distilled = distill(*parse_training_args("distill", [
        "--teacher", BUNDLED_CLASSIFIER, "--augment", "mask,ngram", "--augment_copies", str(copies),
        "--num_train_epochs", str(epochs), "--output_dir", student_dir, *common]))
    steps = trainer.state.global_step
    print(f"    distilled student: validation accuracy {distilled['eval_accuracy']:.3f}")

    print(f"3/5 the same {preset.upper()}-EELBERT trained on the 2,000 labels alone for the same {steps} steps")
    _, alone = finetune(*parse_training_args("finetune", ["--max_steps", str(steps), "--output_dir", labels_dir,
                                                          *common]))
    print(f"    validation accuracy: distilled {distilled['eval_accuracy']:.3f}, labels alone "
          f"{alone['eval_accuracy']:.3f}, majority class {majority:.3f}, teacher {bundled_accuracy:.3f}")

    sizes = export(student_dir, hub_dir, training_data=f"{os.path.basename(RT_TRAIN)}, distilled from the bundled "
                   "UNO-EELBERT sentiment classifier")
    print(f"4/5 exported the distilled student as a Hub-ready folder to {hub_dir}:\n    {', '.join(sizes)}")

    reloaded = subprocess.run([sys.executable, "-c", RELOAD, hub_dir, RT_VALID], capture_output=True, text=True)
    if reloaded.returncode:
        raise RuntimeError(f"reloading with trust_remote_code failed:\n{reloaded.stderr[-3000:]}")
    remote = json.loads(reloaded.stdout.strip().splitlines()[-1])
    remote_accuracy = (torch.tensor(remote["logits"]).argmax(-1) == labels).float().mean().item()
    model, tokenizer = trainer.model.eval(), trainer.processing_class
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
    print(f"model.safetensors: {preset.upper()}-EELBERT {eel_bytes / 1e6:.3f} MB vs BertForSequenceClassification of "
          f"the same dims {bert_bytes / 1e6:.3f} MB ({bert_bytes / eel_bytes:.1f}x smaller)")
    return {"folder": hub_dir, "parameters": params, "eelbert_bytes": eel_bytes, "bert_bytes": bert_bytes,
            "accuracy": distilled["eval_accuracy"], "labels_only_accuracy": alone["eval_accuracy"],
            "majority": majority, "bundled_accuracy": bundled_accuracy, "remote_accuracy": remote_accuracy,
            "max_diff": max_diff}
