"""The Python side of the JavaScript tests: what eelbert_hf computes, written as JSON for node to compare against.

    python python_reference.py ngrams STRINGS.json OUT.json
        n-gram ids of every token of the bundled vocabulary, and of each string in STRINGS.json (a JSON list,
        lone surrogates as \\udXXX escapes) with atom=False and atom=True, and in each token format.
    python python_reference.py rt FOLDER TEXTS.jsonl OUT.json [MAX_LENGTH]
        for each text of a .jsonl (text, label): input_ids and ngram_ids from the tokenizer saved in FOLDER (an
        `eelbert export --onnx --quantize` folder), and the float32 and int8 ONNX logits of that one text; plus
        the batched accuracies of `eelbert export --eval-file` with the logits behind them.
    python python_reference.py families FOLDER TEXTS.json OUT.json
        a WordPiece, a byte-level BPE and a Unigram tokenizer trained on the bundled Brown sample, saved under
        FOLDER, and what each gives for every text of TEXTS.json.
"""

import json
import os
import sys

from eelbert_hf import EELBertTokenizer
from eelbert_hf.modeling.ngram_hashing import TOKEN_FORMATS, token_ngram_ids


def ngrams(strings_path: str, out_path: str) -> None:
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    with open(strings_path, encoding="utf-8") as f:
        strings = json.load(f)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    result = {
        "special_tokens": list(tokenizer.all_special_tokens),
        "vocab": [[token, tokenizer.token_ngram_ids(token)] for token, _ in vocab],
        "strings": [[s, tokenizer.token_ngram_ids(s, atom=False), tokenizer.token_ngram_ids(s, atom=True)]
                    for s in strings],
        # the spec function in the vocabularies' other token formats (step 2 of docs/hash-spec.md)
        "formats": {fmt: [token_ngram_ids(s, token_format=fmt) for s in strings] for fmt in TOKEN_FORMATS},
    }
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)  # ensure_ascii (the default) writes lone surrogates as \udXXX, which JSON.parse reads


def rt(folder: str, texts_path: str, out_path: str, max_length: int = 128) -> None:
    from transformers.utils.logging import disable_progress_bar

    from eelbert_hf.packaging import onnx_export

    disable_progress_bar()  # the accuracy's bar would land in node's test output

    tokenizer = EELBertTokenizer.from_pretrained(folder)
    with open(texts_path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    sessions = {dtype: onnx_export.onnx_session(os.path.join(folder, "onnx", name))
                for dtype, name in (("fp32", "model.onnx"), ("int8", "model_quantized.onnx"))}
    texts = []
    for row in rows:
        encoded = tokenizer([row["text"]], truncation=True, max_length=max_length, return_tensors="np")
        texts.append({
            "text": row["text"], "label": int(row["label"]),
            "input_ids": encoded["input_ids"][0].tolist(), "ngram_ids": encoded["ngram_ids"][0].tolist(),
            **{dtype: onnx_export.run_onnx(session, encoded)[0].tolist() for dtype, session in sessions.items()},
        })
    batched = {dtype: onnx_export.accuracy(session, tokenizer, texts_path, max_length=max_length)
               for dtype, session in sessions.items()}
    # the logits behind those accuracies, batched and padded as onnx_export.accuracy does, for a per-text comparison
    batch_size = 64
    for start in range(0, len(rows), batch_size):
        encoded = tokenizer([row["text"] for row in rows[start : start + batch_size]], padding=True, truncation=True,
                            max_length=max_length, return_tensors="np")
        for dtype, session in sessions.items():
            for row, logits in zip(texts[start : start + batch_size], onnx_export.run_onnx(session, encoded)):
                row[f"{dtype}_batched"] = logits.tolist()
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump({"max_length": max_length, "batch_size": batch_size, "batched_accuracy": batched, "texts": texts}, f)


def families(folder: str, texts_path: str, out_path: str) -> None:
    """A small tokenizer of each family trained on the bundled Brown sample, saved as FOLDER/<family> with the
    config.json of a model sized to it; per family, input_ids and ngram_ids of each text (full, and cut to 12)."""
    from pathlib import Path

    from eelbert_hf import EELBertConfig
    from eelbert_hf.loading import DATA_DIR
    from eelbert_hf.training import train_base_tokenizer

    with open(texts_path, encoding="utf-8") as f:
        texts = json.load(f)
    corpus = Path(folder) / "corpus.txt"
    brown = (Path(DATA_DIR) / "brown_sample.txt").read_text(encoding="utf-8")
    corpus.write_text(brown[:20000] + "\n" + "\n".join(texts[: len(texts) // 2]) + "\n", encoding="utf-8")
    result = {}
    for family in ("wordpiece", "bpe", "unigram"):
        tokenizer = EELBertTokenizer.from_base(train_base_tokenizer([str(corpus)], family, 600, progress=False))
        tokenizer.save_pretrained(Path(folder) / family)
        EELBertConfig(vocab_size=len(tokenizer), token_format=tokenizer.token_format).save_pretrained(
            Path(folder) / family)
        result[family] = [{key: tokenizer(text, truncation=True, max_length=length)[key]
                           for key in ("input_ids", "ngram_ids")} | {"max_length": length}
                          for text in texts for length in (512, 12)]
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f)


if __name__ == "__main__":
    commands = {"ngrams": ngrams, "rt": rt, "families": families}
    if len(sys.argv) < 2 or sys.argv[1] not in commands:
        sys.exit(__doc__)
    args = sys.argv[2:]
    if sys.argv[1] == "rt" and len(args) == 4:
        args[3] = int(args[3])
    commands[sys.argv[1]](*args)
