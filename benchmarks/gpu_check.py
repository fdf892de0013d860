"""The Python half of `benchmarks/gpu_check.sh`: the machine's description, the latency and MLM-throughput
benchmarks, and the JSON report that gathers every part.

    python benchmarks/gpu_check.py env --device cuda                       # JSON on stdout
    python benchmarks/gpu_check.py bench --device cuda --budget full --seconds 60 --out bench.json
    python benchmarks/gpu_check.py report out/gpu_check                    # writes gpu_check.json and gpu_check.md

`report` uses the standard library only, so it runs (with any python3) even when installing torch failed.
Timings synchronise the GPU around every call; each row is the median over its repeats, EELBERT and its BERT twin
(transformers' `BertModel` / `BertForMaskedLM` with the same dimensions and vocabulary) timed alternately.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# budget -> latency shapes and repeats, MLM batch shape, steps and warm-up steps
BENCH_BUDGETS = {
    "full": dict(latency=[(1, 32, 200), (32, 128, 100), (256, 128, 30)], mlm_shape=(256, 128), mlm_steps=20,
                 mlm_warmup=3),
    "tiny": dict(latency=[(1, 32, 5), (32, 128, 3), (256, 128, 2)], mlm_shape=(8, 32), mlm_steps=2, mlm_warmup=1),
}


# ------------------------------------------------------------------------------------------------------------ env
def environment(device: str) -> dict:
    """Python, torch and its CUDA build, the GPU (name, memory, driver) and the CPU."""
    import torch

    info = dict(python=platform.python_version(), platform=platform.platform(), cpu_count=os.cpu_count(),
                torch=torch.__version__, torch_cuda_build=torch.version.cuda, cuda_available=torch.cuda.is_available(),
                device=device)
    try:
        import transformers

        info["transformers"] = transformers.__version__
    except ImportError as error:
        info["transformers"] = f"not importable: {error}"
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        info.update(gpu=properties.name, gpu_memory_gib=round(properties.total_memory / 2**30, 1),
                    gpu_count=torch.cuda.device_count(), bf16_supported=torch.cuda.is_bf16_supported())
    try:
        info["nvidia_smi"] = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=20).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        info["nvidia_smi"] = None
    return info


# ---------------------------------------------------------------------------------------------------------- bench
def _data_texts(data_dir: str | None):
    """(review texts, corpus lines): Rotten Tomatoes validation and the Brown corpus from `data_dir`, else the
    package's bundled samples of both."""
    import eelbert_hf

    bundled = os.path.join(os.path.dirname(eelbert_hf.__file__), "data")
    reviews = os.path.join(data_dir or "", "sentiment", "rotten_tomatoes", "validation.jsonl")
    corpus = os.path.join(data_dir or "", "corpus", "brown.txt")
    if not (data_dir and os.path.exists(reviews) and os.path.exists(corpus)):
        reviews, corpus = os.path.join(bundled, "rt_sample_validation.jsonl"), os.path.join(bundled, "brown_sample.txt")
    with open(reviews, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f]
    with open(corpus, encoding="utf-8") as f:
        lines = [line.strip() for line in f if line.strip()][:20000]
    return texts, lines, {"reviews": reviews, "corpus": corpus}


def _timer(device):
    import torch

    def timed(function):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    return timed


def _alternating(functions: dict, repeats: int, timed, warmup: int = 2) -> dict:
    """Median seconds per call of each function, called in turn (A B A B ...) after `warmup` calls each."""
    for _ in range(warmup):
        for function in functions.values():
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            times[name].append(timed(function))
    return {name: statistics.median(values) for name, values in times.items()}


def bench_latency(device, budget, texts, deadline, rows, notes):
    import torch
    from bench_speed import bert_config, packed_batches
    from transformers import BertModel

    from eelbert_hf import EELBertConfig, EELBertModel, EELBertTokenizer

    tokenizer, timed = EELBertTokenizer.from_bundled_vocab(), _timer(device)
    for preset in ("uno", "tiny"):
        config = EELBertConfig.from_preset(preset)
        torch.manual_seed(0)
        eel, bert = EELBertModel(config).to(device).eval(), BertModel(bert_config(config)).to(device).eval()
        uncached = EELBertModel(config).to(device).eval()
        uncached.embeddings.ngram_embeddings.cache_bytes = 0  # the reference path on every call
        for batch_size, seq, repeats in budget["latency"]:
            if time.time() > deadline:
                notes.append(f"latency {preset} {batch_size}x{seq} and later rows: not run, the time budget was spent")
                return
            batches = packed_batches(tokenizer, texts, batch_size, seq, 4)
            batches = [{k: v.to(device) for k, v in b.items()} for b in batches]
            plain = [{k: v for k, v in b.items() if k != "ngram_ids"} for b in batches]
            turn = {"i": 0}

            def call(model, inputs):
                def run():
                    with torch.no_grad():
                        model(**inputs[turn["i"] % len(inputs)])
                return run

            medians = _alternating({"eelbert": call(eel, batches), "bert": call(bert, plain),
                                    "eelbert_cache_off": call(uncached, batches)}, repeats, timed, warmup=len(batches))
            rows.append(dict(part="latency", preset=preset, batch=batch_size, seq=seq, repeats=repeats,
                             eelbert_ms=round(medians["eelbert"] * 1e3, 4), bert_ms=round(medians["bert"] * 1e3, 4),
                             eelbert_cache_off_ms=round(medians["eelbert_cache_off"] * 1e3, 4),
                             ratio=round(medians["eelbert"] / medians["bert"], 3)))
            print(json.dumps(rows[-1]), flush=True)


def bench_mlm(device, budget, lines, deadline, rows, notes):
    import torch
    from bench_speed import bert_config
    from transformers import BertForMaskedLM, BertTokenizer, DataCollatorForLanguageModeling

    from eelbert_hf import EELBertConfig, EELBertForMaskedLM, EELBertTokenizer
    from eelbert_hf.training import DataCollatorForEELBertMLM

    batch_size, seq = budget["mlm_shape"]
    import eelbert_hf

    tokenizer = EELBertTokenizer.from_bundled_vocab()
    bert_tokenizer = BertTokenizer.from_pretrained(os.path.join(os.path.dirname(eelbert_hf.__file__), "data"))
    stream = [t for ids in tokenizer(lines, add_special_tokens=False, return_ngram_ids=False)["input_ids"] for t in ids]
    body = seq - 2
    blocks = [[tokenizer.cls_token_id, *stream[i : i + body], tokenizer.sep_token_id]
              for i in range(0, min(len(stream) - body, 4 * batch_size * body), body)]
    features = [[{"input_ids": b} for b in blocks[i : i + batch_size]] for i in range(0, len(blocks), batch_size)]
    features = [f for f in features if len(f) == batch_size][:4]
    eel_collate = DataCollatorForEELBertMLM(tokenizer, mlm_probability=0.15, seed=0)
    bert_collate = DataCollatorForLanguageModeling(bert_tokenizer, mlm_probability=0.15, seed=0)
    eel_batches = [{k: v.to(device) for k, v in eel_collate(f).items()} for f in features]
    bert_batches = [{k: v.to(device) for k, v in bert_collate(f).items()} for f in features]
    timed = _timer(device)
    for preset in ("uno", "tiny"):
        for precision in ("fp32", "bf16"):
            if time.time() > deadline:
                notes.append(f"mlm {preset} {precision} and later rows: not run, the time budget was spent")
                return
            config = EELBertConfig.from_preset(preset)
            torch.manual_seed(0)
            models = {"eelbert": EELBertForMaskedLM(config).to(device).train(),
                      "bert": BertForMaskedLM(bert_config(config)).to(device).train()}
            optimizers = {name: torch.optim.AdamW(m.parameters(), lr=1e-4) for name, m in models.items()}
            inputs = {"eelbert": eel_batches, "bert": bert_batches}
            turn = {"eelbert": 0, "bert": 0}

            def step(name):
                def run():
                    batch = inputs[name][turn[name] % len(inputs[name])]
                    turn[name] += 1
                    with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
                        loss = models[name](**batch).loss
                    loss.backward()
                    optimizers[name].step()
                    optimizers[name].zero_grad(set_to_none=True)
                return run

            medians = _alternating({name: step(name) for name in models}, budget["mlm_steps"], timed,
                                   warmup=budget["mlm_warmup"])
            tokens = batch_size * seq
            rows.append(dict(part="mlm", preset=preset, precision=precision, batch=batch_size, seq=seq,
                             steps=budget["mlm_steps"], eelbert_tokens_per_s=round(tokens / medians["eelbert"]),
                             bert_tokens_per_s=round(tokens / medians["bert"]),
                             ratio=round(medians["bert"] / medians["eelbert"], 3)))
            print(json.dumps(rows[-1]), flush=True)
            del models, optimizers


def bench(args):
    import torch

    sys.path.insert(0, HERE)  # bench_speed's helpers (the BERT twin's config, packed batches)
    budget = BENCH_BUDGETS[args.budget]
    deadline = time.time() + args.seconds
    texts, lines, sources = _data_texts(args.data)
    rows, notes = [], []
    result = dict(device=args.device, budget=args.budget, data=sources, torch_threads=torch.get_num_threads(),
                  rows=rows, notes=notes, ratio_means="latency: EELBERT ms / BERT ms; mlm: EELBERT tokens/s / BERT "
                  "tokens/s")
    try:
        bench_latency(args.device, budget, texts, deadline, rows, notes)
        bench_mlm(args.device, budget, lines, deadline, rows, notes)
    finally:  # what was measured is kept, also when a later row fails
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1)


# --------------------------------------------------------------------------------------------------------- report
def junit_cases(path: str) -> list[dict]:
    """Each test case of a pytest junit XML file: name, outcome (passed / failed / error / skipped), seconds and
    the skip reason or failure message."""
    cases = []
    for case in ElementTree.parse(path).getroot().iter("testcase"):
        outcome, message = "passed", ""
        for tag in ("failure", "error", "skipped"):
            element = case.find(tag)
            if element is not None:
                outcome = "failed" if tag == "failure" else tag
                message = (element.get("message") or element.text or "").strip()[:2000]
                break
        cases.append(dict(name=f"{case.get('classname', '')}::{case.get('name')}", outcome=outcome,
                          seconds=float(case.get("time") or 0.0), message=message))
    return cases


def reproduce_result(folder: str) -> dict | None:
    """reproduce.py's results.json and its table; if it did not get that far, the cells and pretraining records
    that it wrote."""
    import glob

    summary = _read_json(os.path.join(folder, "results.json"))
    if summary is not None:
        with open(os.path.join(folder, "results.md"), encoding="utf-8") as f:
            return dict(summary, table=f.read().strip())
    cells = [_read_json(p) for p in sorted(glob.glob(os.path.join(folder, "*", "step*-seed*.json")))]
    timed = {p.split(os.sep)[-3]: _read_json(p)
             for p in glob.glob(os.path.join(folder, "*", "mlm", "time_limited.json"))}
    return dict(partial=True, results=cells, pretraining=timed) if cells or timed else None


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as error:
        return {"unreadable": f"{path}: {error}"} if os.path.exists(path) else None


def report(out_dir: str) -> dict:
    """gpu_check.json (and a Markdown digest, gpu_check.md) from what the parts left in `out_dir`/parts."""
    parts_dir = os.path.join(out_dir, "parts")
    run = _read_json(os.path.join(parts_dir, "run.json")) or {}
    parts = {}
    for name in run.get("parts", []):
        status = _read_json(os.path.join(parts_dir, f"{name}.status.json")) or {
            "status": "not run", "reason": "the script ended before this part (see the logs)"}
        log = os.path.join(out_dir, "logs", f"{name}.log")
        if status.get("status") != "ok" and os.path.exists(log):
            with open(log, encoding="utf-8", errors="replace") as f:
                status["log_tail"] = f.read()[-3000:]
        parts[name] = status
    if os.path.exists(os.path.join(parts_dir, "tests.xml")) and "tests" in parts:
        cases = junit_cases(os.path.join(parts_dir, "tests.xml"))
        parts["tests"]["cases"] = cases
        parts["tests"]["summary"] = {o: sum(c["outcome"] == o for c in cases)
                                     for o in ("passed", "failed", "error", "skipped")}
    if "bench" in parts:
        parts["bench"]["result"] = _read_json(os.path.join(parts_dir, "bench.json"))
    if "reproduce" in parts and run.get("reproduce_dir"):
        parts["reproduce"]["result"] = reproduce_result(run["reproduce_dir"])
    skipped = [dict(part="tests", what=c["name"], reason=c["message"]) for c in parts.get("tests", {}).get("cases", [])
               if c["outcome"] == "skipped"]
    skipped += [dict(part=name, what=name, reason=p.get("reason", "")) for name, p in parts.items()
                if p.get("status") == "skipped"]
    environment_info = _read_json(os.path.join(parts_dir, "env.json")) or {}
    if run.get("device") == "cpu":
        skipped.insert(0, dict(part="all", what="CUDA", reason=run.get("device_note") or (
            f"no CUDA device (torch {environment_info.get('torch')}: torch.cuda.is_available() is "
            f"{environment_info.get('cuda_available')}; asked for --device {run.get('device_requested')}): the CUDA "
            "test cases skip, bench and reproduce ran on CPU")))
    ok = (bool(parts) and all(p.get("status") in ("ok", "skipped") for p in parts.values())
          and not run.get("device_note"))  # --device cuda without a GPU is not a passed GPU check
    document = dict(run, environment=environment_info or None, parts=parts, skipped=skipped, ok=ok)
    with open(os.path.join(out_dir, "gpu_check.json"), "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1)
    with open(os.path.join(out_dir, "gpu_check.md"), "w", encoding="utf-8") as f:
        f.write(markdown(document))
    return document


def markdown(document: dict) -> str:
    env = document.get("environment") or {}
    lines = [f"# gpu_check: {document.get('budget')} budget on {env.get('gpu') or document.get('device')}", "",
             f"- started {document.get('started')}, {document.get('wall_s')} s in all; device {document.get('device')}"
             f" (asked: {document.get('device_requested')}); torch {env.get('torch')} (CUDA build "
             f"{env.get('torch_cuda_build')}), transformers {env.get('transformers')}", "",
             "| part | status | seconds | note |", "|---|---|---|---|"]
    for name, part in document.get("parts", {}).items():
        note = part.get("reason", "")
        if "summary" in part:
            note = ", ".join(f"{n} {k}" for k, n in part["summary"].items() if n)
        lines.append(f"| {name} | {part.get('status')} | {part.get('seconds', '')} | {note} |")
    bench_rows = ((document.get("parts", {}).get("bench") or {}).get("result") or {}).get("rows", [])
    if bench_rows:
        lines += ["", "| latency | EELBERT ms | BERT twin ms | cache off ms | ratio |", "|---|---|---|---|---|"]
        lines += [f"| {r['preset']} {r['batch']}x{r['seq']} | {r['eelbert_ms']:.3f} | {r['bert_ms']:.3f} | "
                  f"{r['eelbert_cache_off_ms']:.3f} | {r['ratio']:.2f} |" for r in bench_rows if r["part"] == "latency"]
        lines += ["", "| MLM training | EELBERT tokens/s | BertForMaskedLM tokens/s | ratio |", "|---|---|---|---|"]
        lines += [f"| {r['preset']} {r['precision']} {r['batch']}x{r['seq']} | {r['eelbert_tokens_per_s']:,} | "
                  f"{r['bert_tokens_per_s']:,} | {r['ratio']:.2f} |" for r in bench_rows if r["part"] == "mlm"]
    table = ((document.get("parts", {}).get("reproduce") or {}).get("result") or {}).get("table")
    if table:
        lines += ["", table]
    if document.get("skipped"):
        lines += ["", "Skipped:"] + [f"- {s['what']}: {s['reason']}" for s in document["skipped"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env")
    env.add_argument("--device", default="cpu")
    run = commands.add_parser("bench")
    run.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    run.add_argument("--budget", default="full", choices=BENCH_BUDGETS)
    run.add_argument("--seconds", type=float, default=60.0, help="rows not started by then are left out")
    run.add_argument("--data", default=None, help="folder with sentiment/ and corpus/ (default: the bundled samples)")
    run.add_argument("--out", required=True)
    gather = commands.add_parser("report")
    gather.add_argument("out_dir")
    args = parser.parse_args(argv)
    if args.command == "env":
        print(json.dumps(environment(args.device), indent=1))
    elif args.command == "bench":
        bench(args)
    else:
        document = report(args.out_dir)
        print(f"wrote {os.path.join(args.out_dir, 'gpu_check.json')} (ok: {document['ok']})")


if __name__ == "__main__":
    main()
