"""`eelbert quickstart`: build UNO-EELBERT, save a Hub-ready folder, reload it with remote code elsewhere."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap

import torch
from transformers import BertConfig, BertForSequenceClassification
from transformers.utils import logging as hf_logging

from .hub import save_hub_folder
from .modeling.configuration_eelbert import EELBertConfig
from .modeling.modeling_eelbert import EELBertForSequenceClassification
from .tokenization.tokenization_eelbert import EELBertTokenizer

SAMPLES = ["EELBERT keeps no input-embedding table.", "Tiny models run on phones.", "naïve café 😀 文字"]

# Runs in a fresh interpreter where eelbert_hf cannot be imported: only the saved folder's own files load.
RELOAD = textwrap.dedent("""
    import json, sys
    sys.modules["eelbert_hf"] = None
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    folder, texts = sys.argv[1], json.loads(sys.argv[2])
    tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True).eval()
    print(json.dumps(model(**tokenizer(texts, padding=True, return_tensors="pt")).logits.tolist()))
""")


def bert_twin_size(config: EELBertConfig, folder: str) -> int:
    """Size of a transformers BertForSequenceClassification with the same dimensions, saved the same way."""
    bert = BertForSequenceClassification(BertConfig(**{k: getattr(config, k) for k in (
        "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")}))
    bert.save_pretrained(folder)
    return os.path.getsize(os.path.join(folder, "model.safetensors"))


def run_quickstart(output_dir: str | None = None, preset: str = "uno") -> dict:
    hf_logging.disable_progress_bar()
    output_dir = output_dir or os.path.join(tempfile.mkdtemp(prefix="eelbert-"), f"{preset}-eelbert")
    torch.manual_seed(0)
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    model = EELBertForSequenceClassification(EELBertConfig.from_preset(preset, num_labels=2)).eval()
    batch = tokenizer(SAMPLES, padding=True, return_tensors="pt")
    print(f"encoded {len(SAMPLES)} sentences: input_ids {tuple(batch['input_ids'].shape)}, "
          f"ngram_ids {tuple(batch['ngram_ids'].shape)}")
    with torch.no_grad():
        logits = model(**batch).logits
    sizes = save_hub_folder(model, tokenizer, output_dir)
    print(f"saved a Hub-ready folder to {output_dir}: {', '.join(sizes)}")
    reloaded = subprocess.run([sys.executable, "-c", RELOAD, output_dir, json.dumps(SAMPLES)],
                              capture_output=True, text=True, check=False)
    if reloaded.returncode:
        raise RuntimeError(f"reloading with trust_remote_code failed:\n{reloaded.stderr[-2000:]}")
    remote = torch.tensor(json.loads(reloaded.stdout.strip().splitlines()[-1]))
    max_diff = (remote - logits).abs().max().item()
    print(f"reloaded in a fresh process without eelbert_hf (trust_remote_code=True): max |diff| = {max_diff:.2e}")
    with tempfile.TemporaryDirectory() as bert_dir:
        bert_bytes = bert_twin_size(model.config, bert_dir)
    eel_bytes = sizes["model.safetensors"]
    params = sum(p.numel() for p in model.parameters())
    print(f"parameters: {params:,}")
    print(f"model.safetensors: EELBERT-{preset} {eel_bytes / 1e6:.3f} MB vs BertForSequenceClassification of the "
          f"same dims {bert_bytes / 1e6:.3f} MB ({bert_bytes / eel_bytes:.1f}x smaller)")
    return {"folder": output_dir, "parameters": params, "eelbert_bytes": eel_bytes, "bert_bytes": bert_bytes,
            "max_diff": max_diff}
