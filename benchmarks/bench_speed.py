"""EELBERT vs a transformers BERT of identical dimensions: size, latency, MLM training, tokenizer, load.

Run by hand (not in CI; the tests assert no timings):

    python benchmarks/bench_speed.py                      # everything, ~10 minutes on a 2-core CPU
    python benchmarks/bench_speed.py --quick              # fewer repeats and no `base` checkpoint, ~4 minutes
    python benchmarks/bench_speed.py --threads 1 --clock cpu --json results.json   # on a machine shared with others
    python benchmarks/bench_speed.py --parts latency,mlm

Every timing row builds both models in this process and interleaves them (in short blocks: EELBERT x10, BERT x10,
...), so background load hits both alike; a row reports the medians and their ratio EELBERT / BERT. Models run in
eval mode under `torch.no_grad()` except the MLM training step. `torch.set_num_threads(--threads)` (and the Rust
tokenizer's RAYON_NUM_THREADS) is set once for the process (default: all cores, `os.cpu_count()`). Data: Rotten
Tomatoes and the Brown corpus from `--data` (default: ../shared/data beside the repository), inputs packed so rows are full (no padding).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
import transformers
from transformers import (
    BertConfig,
    BertForMaskedLM,
    BertForSequenceClassification,
    BertModel,
    BertTokenizer,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
)

import eelbert_hf
from eelbert_hf import EELBertConfig, EELBertForMaskedLM, EELBertForSequenceClassification, EELBertModel
from eelbert_hf import EELBertTokenizer

BUNDLED_VOCAB = os.path.join(os.path.dirname(eelbert_hf.__file__), "data")
PARTS = ("size", "latency", "mlm", "tokenizer", "load")
RESULTS = []  # rows of the final table
CLOCK = time.perf_counter  # --clock cpu: time.process_time


def report(part, what, eelbert, bert, unit, ratio=None, target=""):
    """Record and print one row: ratio defaults to eelbert / bert."""
    ratio = eelbert / bert if ratio is None else ratio
    RESULTS.append(dict(part=part, what=what, eelbert=eelbert, bert=bert, unit=unit, ratio=ratio, target=target))
    print(f"  {what:<58} EELBERT {eelbert:>10.4g} {unit:<9} BERT {bert:>10.4g} {unit:<9} ratio {ratio:6.3f} {target}",
          flush=True)


def bert_config(config: EELBertConfig, **overrides) -> BertConfig:
    """A transformers BertConfig with the same dimensions (and vocabulary) as an EELBERT config."""
    fields = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "type_vocab_size", "hidden_dropout_prob", "attention_probs_dropout_prob")
    return BertConfig(**{name: getattr(config, name) for name in fields}, **overrides)


def interleaved(functions: dict, repeats: int, warmup: int = 3, block: int = 1) -> dict:
    """Median seconds per call of each function. Calls alternate between the functions in blocks of `block` calls
    (A A B B A A ...): background load hits all alike, and a block shows back-to-back use (warm CPU caches)."""
    for w in range(warmup):
        for f in functions.values():
            f(w)
    times = {name: [] for name in functions}
    for r in range(0, repeats, block):
        for name, f in functions.items():
            for i in range(r, min(r + block, repeats)):
                start = CLOCK()
                f(i)
                times[name].append(CLOCK() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def read_texts(args, name):
    with open(os.path.join(args.data, "sentiment", "rotten_tomatoes", f"{name}.jsonl")) as f:
        return [json.loads(line)["text"] for line in f]


def packed_batches(tokenizer, texts, batch, seq, count):
    """`count` batches of `batch` rows, each row consecutive texts joined and cut to `seq` tokens (no padding)."""
    per_row = max(2, seq // 12)  # a Rotten Tomatoes review is ~25 tokens: enough text to fill every row
    rows = [" ".join(texts[i : i + per_row]) for i in range(0, len(texts) - per_row, per_row)]
    batches = []
    for b in range(count):
        chunk = [rows[(b * batch + i) % len(rows)] for i in range(batch)]
        batches.append(tokenizer(chunk, truncation=True, max_length=seq, padding="max_length", return_tensors="pt"))
    return batches


# ---------------------------------------------------------------------------------------------------------- size
def bench_size(args):
    print("checkpoint size (model.safetensors, sequence classification head, 2 labels)")
    presets = ("uno", "tiny", "mini") if args.quick else ("uno", "tiny", "mini", "base")
    with tempfile.TemporaryDirectory() as tmp:
        def saved_mb(model, name):
            model.save_pretrained(os.path.join(tmp, name))
            return os.path.getsize(os.path.join(tmp, name, "model.safetensors")) / 1e6

        for preset in presets:
            config = EELBertConfig.from_preset(preset, num_labels=2)
            eel = EELBertForSequenceClassification(config)
            bert = BertForSequenceClassification(bert_config(config, num_labels=2))
            target = {"uno": "(target: EELBERT <= 1.2 MB)", "tiny": "(target: <= 1/9 = 0.111)"}.get(preset, "")
            report("size", f"{preset} fp32 (MB)", saved_mb(eel, f"eel-{preset}"), saved_mb(bert, f"bert-{preset}"),
                   "MB", target=target)
            if preset == "uno":
                report("size", "uno fp16 (MB)", saved_mb(eel.half(), "eel-uno16"), saved_mb(bert.half(), "bert-uno16"),
                       "MB", target="(target: EELBERT <= 0.6 MB)")
            del eel, bert


# ------------------------------------------------------------------------------------------------------- latency
def bench_latency(args):
    print("inference latency, eval mode, no grad. EELBERT's cache is first warmed on 20 batches of train text; "
          "'unseen text' = the first pass over validation batches (their new tokens miss), 'steady state' = "
          "repeated passes (all rows cached)")
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    train, validation = read_texts(args, "train"), read_texts(args, "validation")
    for preset in ("tiny", "mini"):
        config = EELBertConfig.from_preset(preset)
        torch.manual_seed(0)
        eel, bert = EELBertModel(config).eval(), BertModel(bert_config(config)).eval()
        uncached = EELBertModel(config).eval()
        uncached.embeddings.ngram_embeddings.cache_bytes = 0  # the reference path on every call
        with torch.no_grad():
            for batch in packed_batches(tokenizer, train, 32, 128, 20):
                eel(**batch)
            for batch_size, seq in ((1, 32), (8, 128), (32, 128)):
                shape = f"{preset} {batch_size}x{seq}"
                repeats = {32: 400, 128: 80 if batch_size == 8 else 40}[seq] // (4 if args.quick else 1)
                count = 32 if batch_size == 1 else 8
                batches = packed_batches(tokenizer, validation, batch_size, seq, count)
                plain = [{k: v for k, v in b.items() if k != "ngram_ids"} for b in batches]  # same input_ids
                # cold: the first call of a fresh model (empty cache) vs the first call of a fresh BERT
                fresh = {"eel": EELBertModel(config).eval(), "bert": BertModel(bert_config(config)).eval()}
                cold = interleaved({"eel": lambda r: fresh["eel"](**batches[0]),
                                    "bert": lambda r: fresh["bert"](**plain[0])}, 1, warmup=0)
                bert(**plain[0])
                first_pass = interleaved({"eel": lambda r: eel(**batches[r]), "bert": lambda r: bert(**plain[r])},
                                         count, warmup=0)
                medians = interleaved({"eel": lambda r: eel(**batches[r % count]),
                                       "bert": lambda r: bert(**plain[r % count]),
                                       "uncached": lambda r: uncached(**batches[r % count])}, repeats,
                                      block={32: 10, 128: 2}[seq] if batch_size < 32 else 1)
                report("latency", f"{shape} steady state (ms)", medians["eel"] * 1e3, medians["bert"] * 1e3, "ms",
                       target="(target <= 1.10)")
                report("latency", f"{shape} unseen text, cache warm on other text (ms)", first_pass["eel"] * 1e3,
                       first_pass["bert"] * 1e3, "ms")
                report("latency", f"{shape} cache off, reference path (ms)", medians["uncached"] * 1e3,
                       medians["bert"] * 1e3, "ms")
                report("latency", f"{shape} cold: first call of a fresh model (ms)", cold["eel"] * 1e3,
                       cold["bert"] * 1e3, "ms")


# ----------------------------------------------------------------------------------------------------------- mlm
def mlm_collator(tokenizer):
    try:  # the package's collator: transformers' masking, then n-gram ids of the masked input_ids
        from eelbert_hf.training import DataCollatorForEELBertMLM
    except ImportError:  # an older checkout: the same thing inline
        class DataCollatorForEELBertMLM(DataCollatorForLanguageModeling):
            def __call__(self, features, return_tensors=None):
                batch = super().__call__(features, return_tensors)
                batch["ngram_ids"] = torch.from_numpy(self.tokenizer.ngram_ids_for(batch["input_ids"].numpy()))
                return batch
    return DataCollatorForEELBertMLM(tokenizer, mlm_probability=0.15, seed=0)


def bench_mlm(args):
    print("MLM training step (forward, backward, AdamW), tiny, 32x128, 15 % masking, train mode")
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    bert_tokenizer = BertTokenizer.from_pretrained(BUNDLED_VOCAB)
    with open(os.path.join(args.data, "corpus", "brown.txt")) as f:
        lines = [line.strip() for line in f if line.strip()][:20000]
    encoded = tokenizer(lines, add_special_tokens=False)["input_ids"]
    stream = [token for ids in encoded for token in ids]
    blocks = [[tokenizer.cls_token_id] + stream[i : i + 126] + [tokenizer.sep_token_id]
              for i in range(0, 32 * 126 * 8, 126)]  # 8 batches of 32 full rows of 128 tokens
    eel_collate, bert_collate = mlm_collator(tokenizer), DataCollatorForLanguageModeling(bert_tokenizer, seed=0)
    eel_batches, bert_batches, collate_times = [], [], {"eel": [], "bert": []}
    for b in range(8):
        features = [{"input_ids": ids} for ids in blocks[b * 32 : (b + 1) * 32]]
        for name, collate, out in (("eel", eel_collate, eel_batches), ("bert", bert_collate, bert_batches)):
            start = CLOCK()
            out.append(collate(features))
            collate_times[name].append(CLOCK() - start)
    config = EELBertConfig.from_preset("tiny")
    torch.manual_seed(0)
    eel, bert = EELBertForMaskedLM(config).train(), BertForMaskedLM(bert_config(config)).train()
    optimizers = {m: torch.optim.AdamW(m.parameters(), lr=1e-4) for m in (eel, bert)}

    def step(model, batch):
        loss = model(**batch).loss
        loss.backward()
        optimizers[model].step()
        optimizers[model].zero_grad(set_to_none=True)

    medians = interleaved({"eel": lambda r: step(eel, eel_batches[r % 8]),
                           "bert": lambda r: step(bert, bert_batches[r % 8])}, 6 if args.quick else 16, warmup=2)
    tokens = 32 * 128
    report("mlm", "tiny 32x128 train tokens/s", tokens / medians["eel"], tokens / medians["bert"], "tok/s",
           target="(target >= 3.0)")
    report("mlm", "collator (masking + features) per batch (ms)", statistics.median(collate_times["eel"]) * 1e3,
           statistics.median(collate_times["bert"]) * 1e3, "ms")


# ----------------------------------------------------------------------------------------------------- tokenizer
def bench_tokenizer(args):
    print("tokenizer throughput on Rotten Tomatoes train (texts/s): EELBertTokenizer (WordPiece + ngram_ids) vs "
          "BertTokenizer (transformers v5's BertTokenizerFast), same vocabulary; ratio = EELBERT / BERT throughput")
    texts = read_texts(args, "train")
    modes = {
        "batches of 32 -> padded torch tensors": (32, dict(truncation=True, padding=True, return_tensors="pt")),
        "batches of 1000 -> Python lists (datasets.map)": (1000, dict(truncation=True)),
        # what `eelbert finetune` does: datasets.map without n-gram ids, then the collator pads batches of 32
        # and adds them (for BERT: the same map and DataCollatorWithPadding)
        "lists of 1000 without ngram_ids, then DataCollatorWithPadding per 32": (1000, dict(truncation=True)),
    }
    passes = 3 if args.quick else 7
    for mode, (batch_size, kwargs) in modes.items():
        collate = "DataCollator" in mode

        def one_pass(tokenizer):
            lean = dict(kwargs, return_ngram_ids=False) if collate and isinstance(tokenizer, EELBertTokenizer) else kwargs
            collator = DataCollatorWithPadding(tokenizer) if collate else None
            start = CLOCK()
            for i in range(0, len(texts), batch_size):
                encoded = tokenizer(texts[i : i + batch_size], **lean)
                if collator is not None:
                    rows = [dict(zip(encoded, values)) for values in zip(*encoded.values())]
                    for j in range(0, len(rows), 32):
                        collator(rows[j : j + 32])
            return len(texts) / (CLOCK() - start)

        cold, warm = {"eel": [], "bert": []}, {"eel": [], "bert": []}
        for _ in range(max(passes // 2, 1)):  # cold: the first pass of a fresh tokenizer (EELBERT's table is empty)
            cold["eel"].append(one_pass(EELBertTokenizer.from_bundled_vocab()))
            cold["bert"].append(one_pass(BertTokenizer.from_pretrained(BUNDLED_VOCAB)))
        eel, bert = EELBertTokenizer.from_bundled_vocab(), BertTokenizer.from_pretrained(BUNDLED_VOCAB)
        one_pass(eel)
        for _ in range(passes):
            warm["eel"].append(one_pass(eel))
            warm["bert"].append(one_pass(bert))
        report("tokenizer", f"{mode}, warm", statistics.median(warm["eel"]), statistics.median(warm["bert"]),
               "texts/s", target="(target >= 0.8)")
        report("tokenizer", f"{mode}, cold (first pass)", statistics.median(cold["eel"]),
               statistics.median(cold["bert"]), "texts/s", target="(target >= 0.8)")


# ---------------------------------------------------------------------------------------------------------- load
LOAD_CHILD = r"""
import time
import sys
clock = time.process_time if sys.argv[4] == "cpu" else time.perf_counter
process_start = clock()
import json, resource
import torch
torch.set_num_threads(int(sys.argv[3]))
from transformers import AutoModelForSequenceClassification, AutoTokenizer
from transformers import BertForSequenceClassification, BertTokenizer  # both sides import BERT's classes up front
if sys.argv[1] == "eelbert":
    import eelbert_hf  # registers EELBERT with the Auto classes
start = clock()
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[2]).eval()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[2])
loaded = clock()
with torch.no_grad():
    model(**tokenizer(["a gripping, funny film"], return_tensors="pt"))
first_call = clock() - loaded
with open("/proc/self/status") as f:  # VmHWM: peak RSS of this process image (Linux)
    peak_kb = next((int(line.split()[1]) for line in f if line.startswith("VmHWM:")), None)
peak_kb = peak_kb or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps(dict(load=loaded - start, total=loaded - process_start, first_call=first_call, rss_mb=peak_kb / 1024)))
"""


def bench_load(args):
    print("load and peak RSS, UNO vs BERT-tiny (L2/H128), sequence classification + tokenizer, each run in a fresh "
          "subprocess. Peak RSS is VmHWM, not ru_maxrss: Linux carries the parent's ru_maxrss into a forked child.")
    with tempfile.TemporaryDirectory() as tmp:
        uno_config = EELBertConfig.from_preset("uno", num_labels=2)
        EELBertForSequenceClassification(uno_config).save_pretrained(os.path.join(tmp, "uno"))
        EELBertTokenizer.from_bundled_vocab().save_pretrained(os.path.join(tmp, "uno"))
        tiny_config = bert_config(EELBertConfig.from_preset("tiny"), num_labels=2)
        BertForSequenceClassification(tiny_config).save_pretrained(os.path.join(tmp, "bert"))
        BertTokenizer.from_pretrained(BUNDLED_VOCAB).save_pretrained(os.path.join(tmp, "bert"))
        runs = {"eelbert": [], "bert": []}
        for _ in range(3 if args.quick else 7):
            for kind in runs:
                folder = os.path.join(tmp, "uno" if kind == "eelbert" else "bert")
                out = subprocess.run([sys.executable, "-c", LOAD_CHILD, kind, folder, str(args.threads), args.clock],
                                     check=True, capture_output=True, text=True).stdout
                runs[kind].append(json.loads(out.strip().splitlines()[-1]))
    med = {kind: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for kind, rs in runs.items()}
    eel, bert = med["eelbert"], med["bert"]
    report("load", "from_pretrained, model + tokenizer (ms)", eel["load"] * 1e3, bert["load"] * 1e3, "ms",
           target="(target <= 1.0)")
    report("load", "process start to loaded, imports included (ms)", eel["total"] * 1e3, bert["total"] * 1e3, "ms")
    report("load", "first call after load (ms)", eel["first_call"] * 1e3, bert["first_call"] * 1e3, "ms")
    report("load", "peak RSS of the process (MB)", eel["rss_mb"], bert["rss_mb"], "MB", target="(target <= 1.0)")


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, nproc={os.cpu_count()}, torch.set_num_threads({torch.get_num_threads()}), Python "
            f"{platform.python_version()}, torch {torch.__version__}, transformers {transformers.__version__}, "
            f"numpy {np.__version__}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated subset of {','.join(PARTS)}")
    parser.add_argument("--quick", action="store_true", help="fewer repeats, no base-size checkpoint")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads (default: all)")
    parser.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                                       "shared", "data"), help="folder with sentiment/ and corpus/")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: time.perf_counter; cpu: time.process_time, this process's CPU time, which is "
                             "what the latency would be on an idle machine when others' jobs share the cores "
                             "(use with --threads 1: with more threads, waiting threads spin and count)")
    parser.add_argument("--json", help="also write the rows to this JSON file")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if unknown := set(parts) - set(PARTS):
        parser.error(f"unknown parts {sorted(unknown)}; choose from {PARTS}")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))  # the Rust tokenizer's pool: same core budget
    global CLOCK
    CLOCK = time.process_time if args.clock == "cpu" else time.perf_counter
    transformers.utils.logging.disable_progress_bar()
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"machine: {machine()}\nclock: {args.clock}; load average at start: {load[0]}\n"
          f"command: python {' '.join(sys.argv)}\n")
    for part in parts:
        globals()[f"bench_{part}"](args)
    print("\n| part | measurement | EELBERT | BERT | EELBERT / BERT | target |\n|---|---|---|---|---|---|")
    for row in RESULTS:
        print(f"| {row['part']} | {row['what']} | {row['eelbert']:.4g} {row['unit']} | {row['bert']:.4g} {row['unit']} "
              f"| {row['ratio']:.3f} | {row['target'].strip('()').replace('target: ', '').replace('target ', '')} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine(), clock=args.clock, load_average_at_start=load[0], command=sys.argv,
                           rows=RESULTS), f, indent=1)


if __name__ == "__main__":
    main()
