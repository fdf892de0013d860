"""EELBertTokenizer: any fast tokenizer (WordPiece, BPE, byte-level BPE, Unigram) that also returns n-gram ids.

Every output carries `ngram_ids` (batch, seq_len, max_ngrams_per_token): per position, `ngram_hashing.token_ngram_ids`
of its token string, from a table filled lazily (each token hashed on first sight). The base tokenizer is kept whole
in `tokenizer.json`; `token_format` says how its tokens mark word starts and pieces, read from that file. Loaded from a
folder that also holds a model's config.json (a Hub folder), the tokenizer checks that it emits the n-gram ids and
the token ids that model expects.
"""

import gc
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch
from transformers import AutoTokenizer, BertTokenizer, TokenizersBackend
from transformers.utils import cached_file

from .ngram_hashing import METASPACE, NGRAM_DEFAULTS, check_compatible, check_ngram_params, token_ngram_ids

SURROGATE = re.compile("[\ud800-\udfff]")  # not valid Unicode text: the Rust tokenizer refuses them
MAX_LENGTH = 512  # BERT's position limit, so truncation=True is safe with any base
HUB_ARGUMENTS = ("cache_dir", "revision", "token", "local_files_only", "subfolder")


def _clean_text(text, name, depth=0):
    """Check that `text` is a str or lists/tuples of str as `__call__` allows (batch, pairs, pre-split words), and
    replace each lone surrogate with U+FFFD, one code point for one (offsets still match)."""
    if isinstance(text, str):
        return SURROGATE.sub("\ufffd", text) if SURROGATE.search(text) else text
    if isinstance(text, (list, tuple)) and depth < 3:
        cleaned = [_clean_text(item, f"{name}[{i}]", depth + 1) for i, item in enumerate(text)]
        return cleaned if isinstance(text, list) else tuple(cleaned)
    raise TypeError(f"{name} is of type {type(text).__name__}, but the tokenizer takes a str, a list of str, or lists "
                    "of pre-split words (with is_split_into_words=True): convert or drop that item")


def token_format_of(backend) -> str:
    """The spec's `token_format` for a `tokenizers.Tokenizer`, from its serialisation: a ByteLevel pre-tokenizer or
    decoder -> "byte_level"; "▁" in the normalizer, pre-tokenizer or decoder -> "metaspace"; the "##" continuation
    prefix -> "wordpiece"; anything else (no word-start marker to read) -> "plain"."""
    spec = json.loads(backend.to_str())
    parts = {key: json.dumps(spec.get(key), ensure_ascii=False) for key in ("normalizer", "pre_tokenizer", "decoder")}
    if '"type": "ByteLevel"' in parts["pre_tokenizer"] + parts["decoder"]:
        return "byte_level"
    if METASPACE in "".join(parts.values()):
        return "metaspace"
    return "wordpiece" if spec["model"].get("continuing_subword_prefix") == "##" else "plain"


def _read_json(name, filename, hub) -> dict:
    """`filename` of a folder or Hub repo as a dict ({} if it has none)."""
    path = cached_file(name, filename, _raise_exceptions_for_missing_entries=False,
                       _raise_exceptions_for_connection_errors=False, **hub)
    return json.loads(Path(path).read_text(encoding="utf-8")) if path else {}


def _load_base(name: str, hub: dict):
    """The tokenizer in a folder or Hub repo, by its own class; tokenizer.json read whole where that class is ours,
    the generic one or unknown, a lone vocab.txt read as BERT's WordPiece vocabulary."""
    def has(filename):
        return cached_file(name, filename, _raise_exceptions_for_missing_entries=False,
                           _raise_exceptions_for_connection_errors=False, **hub) is not None

    generic = (None, "EELBertTokenizer", "TokenizersBackend", "PreTrainedTokenizerFast")
    own_class = _read_json(name, "tokenizer_config.json", hub).get("tokenizer_class") not in generic
    if has("tokenizer.json"):
        return (AutoTokenizer if own_class else TokenizersBackend).from_pretrained(name, **hub)
    if has("vocab.txt") and not own_class:
        return BertTokenizer.from_pretrained(name, **hub)
    if own_class or not _read_json(name, "config.json", hub):  # e.g. a SentencePiece model that AutoTokenizer converts
        return AutoTokenizer.from_pretrained(name, **hub)
    raise ValueError(f"{name} holds no tokenizer (no tokenizer.json or vocab.txt): pass the folder or Hub name of "
                     "the tokenizer it was trained with, or use EELBertTokenizer.from_bundled_vocab()")


class EELBertTokenizer(TokenizersBackend):
    vocab_files_names = {"tokenizer_file": "tokenizer.json"}  # the base tokenizer, whole
    model_input_names = ["input_ids", "token_type_ids", "attention_mask", "ngram_ids"]
    # Saved into tokenizer_config.json, so a folder loads with AutoTokenizer and trust_remote_code=True.
    _auto_map = {"AutoTokenizer": ["tokenization_eelbert.EELBertTokenizer", None]}

    def __init__(self, *args, **kwargs):
        """TokenizersBackend's arguments (a `tokenizer_file` or `tokenizer_object` is required), plus the n-gram fields
        (``ngram_hashing.NGRAM_DEFAULTS``; ``token_format`` defaults to the base's own) and ``feature_type``
        (``"ngram"``, or ``"whole_token"`` for a ``random_hash`` model). Use ``from_base`` to wrap a tokenizer."""
        defaults = {**NGRAM_DEFAULTS, "token_format": None, "feature_type": "ngram"}  # None: the base's own format
        fields = {name: kwargs.pop(name, default) for name, default in defaults.items()}
        file = kwargs.get("tokenizer_file")
        if kwargs.get("tokenizer_object") is None and not (file and os.path.isfile(file)):
            raise ValueError("EELBertTokenizer got no base tokenizer (no tokenizer.json): build one with "
                             "EELBertTokenizer.from_base(<fast tokenizer, folder or Hub name>), load a saved folder "
                             "with from_pretrained, or use EELBertTokenizer.from_bundled_vocab()")
        kwargs.setdefault("model_max_length", MAX_LENGTH)
        super().__init__(*args, **kwargs)
        found = token_format_of(self.backend_tokenizer)
        if fields["token_format"] not in (None, found):  # the ids follow the markers the vocabulary really uses
            raise ValueError(f"token_format {fields['token_format']!r} does not fit this vocabulary, whose tokens are "
                             f"in the {found!r} format: use token_format={found!r} (or leave it out)")
        fields["token_format"] = found
        check_ngram_params(**fields)
        self.__dict__.update(fields, _ngram_lock=threading.Lock())
        self.__dict__.update(self._empty_table())
        self.init_kwargs.update(fields)  # saved into tokenizer_config.json
        if self.backend_tokenizer.get_vocab_size(with_added_tokens=False) <= len(self.all_special_tokens):
            raise ValueError("the base tokenizer has no vocabulary beyond its special tokens (every word would be "
                             "unknown): load it from a folder with tokenizer.json, or use from_bundled_vocab()")
        if self.pad_token is None:  # batches, collators and the model's padding all need one
            raise ValueError("the base tokenizer has no pad token: add one first, e.g. "
                             "base.add_special_tokens({'pad_token': '<pad>'}) (the model's vocab_size counts it)")

    @classmethod
    def from_base(cls, base, **kwargs) -> "EELBertTokenizer":
        """Wrap `base`: a transformers fast tokenizer, a `tokenizers.Tokenizer`, or a folder or Hub name holding one
        (its Hub arguments, e.g. `revision`, pass through). Other keyword arguments are the n-gram fields, or
        tokenizer arguments such as `pad_token` for a base that lacks one."""
        ngram = {k: kwargs.pop(k) for k in (*NGRAM_DEFAULTS, "feature_type") if k in kwargs}
        if isinstance(base, (str, os.PathLike)):
            hub = {k: kwargs.pop(k) for k in HUB_ARGUMENTS if k in kwargs}
            base = _load_base(str(base), hub)
        elif type(base).__module__.startswith("tokenizers"):  # a bare tokenizers.Tokenizer
            base = TokenizersBackend(tokenizer_object=base)
        if not isinstance(base, TokenizersBackend):
            raise ValueError(f"the base is a {type(base).__name__}, not a fast tokenizer (one backed by the tokenizers "
                             "library, saved as tokenizer.json): load it with AutoTokenizer.from_pretrained(..., "
                             "use_fast=True) or convert it first")
        with tempfile.TemporaryDirectory() as folder:  # exactly what a saved EELBERT folder will reload
            TokenizersBackend.save_pretrained(base, folder)
            kwargs.setdefault("model_max_length", min(base.model_max_length, MAX_LENGTH))
            tokenizer = super().from_pretrained(folder, **ngram, **kwargs)
        tokenizer.name_or_path = base.name_or_path
        return tokenizer

    @classmethod
    def convert_to_native_format(cls, trust_remote_code=False, **kwargs):
        # tokenizer.json is the whole base tokenizer, of any family: load it as saved, never rebuilt from a vocabulary
        return kwargs

    def _empty_table(self) -> dict:
        """The lazily filled table, empty: token id -> its row (-1 until first seen), the rows, the rows in use."""
        return dict(_ngram_slot=np.zeros(0, np.int64), _ngram_table=np.zeros((0, self.max_ngrams_per_token), np.int64),
                    _ngram_rows=0)

    @classmethod
    def from_bundled_vocab(cls, **kwargs):
        """The bert-base-uncased WordPiece vocabulary shipped inside the `eelbert_hf` package (offline)."""
        spec = importlib.util.find_spec("eelbert_hf")
        if spec is None or spec.origin is None:
            raise ValueError("from_bundled_vocab needs the eelbert_hf package: use from_pretrained(<folder>) instead")
        return cls.from_base(BertTokenizer.from_pretrained(Path(spec.origin).parent / "data"), **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """A saved EELBERT tokenizer; any other tokenizer folder or Hub name is wrapped with `from_base`."""
        name, hub = pretrained_model_name_or_path, {k: kwargs[k] for k in HUB_ARGUMENTS if k in kwargs}
        saved = _read_json(name, "tokenizer_config.json", hub)
        if "hash_scheme" not in saved:  # not written by this class: a base tokenizer
            return cls.from_base(name, **kwargs)
        tokenizer = super().from_pretrained(name, *args, **kwargs)
        config = _read_json(name, "config.json", hub)  # a model's, beside the tokenizer
        if config.get("model_type") == "eelbert":
            check_compatible(config, {**tokenizer.ngram_params, "vocab_size": len(tokenizer)})
        return tokenizer

    def save_pretrained(self, save_directory, *args, push_to_hub=False, **kwargs):
        """transformers' files, plus this file and the hash spec it imports (what `trust_remote_code=True` runs).

        transformers would copy a remote-code class's file with its relative imports from that file's own folder;
        in the package the spec lives beside the model (`modeling/`), so the two files are copied here."""
        if push_to_hub:  # transformers uploads before this method could add the code files
            raise ValueError("save_pretrained(push_to_hub=True) would upload the tokenizer without its code files: "
                             "call tokenizer.push_to_hub(repo_id) instead, which saves through this method")
        saved = super().save_pretrained(save_directory, *args, **kwargs)
        for source in (__file__, sys.modules[check_ngram_params.__module__].__file__):
            shutil.copyfile(source, Path(save_directory) / Path(source).name)
        return saved

    @property
    def ngram_params(self) -> dict:
        """The hash fields that a model's config must match."""
        return {field: getattr(self, field) for field in (*NGRAM_DEFAULTS, "feature_type")}

    def token_ngram_ids(self, token: str, atom: bool | None = None) -> list[int]:
        """The spec applied to one token string (the per-string path); special tokens are atoms."""
        atom = token in self.all_special_tokens if atom is None else atom
        return token_ngram_ids(token, ngram_min_n=self.ngram_min_n, ngram_max_n=self.ngram_max_n,
                               max_ngrams_per_token=self.max_ngrams_per_token, token_format=self.token_format, atom=atom,
                               whole_token=self.feature_type == "whole_token")

    def ngram_ids_for(self, input_ids) -> np.ndarray:
        """n-gram ids of token ids: integer array (...,) -> int64 array (..., max_ngrams_per_token).

        Each token is hashed on first sight (all new tokens of a call at once) and its row kept in a table of the
        tokens seen so far: memory grows with the tokens in use (384 bytes each), not with the vocabulary."""
        ids = np.asarray(input_ids)
        if ids.size and ids.dtype.kind not in "iu":  # a float 101.7 would silently become token 101
            raise TypeError(f"input_ids must hold integer token ids, got {ids.dtype}")
        ids = ids.astype(np.int64, copy=False)
        with self._ngram_lock:  # the table is filled in place: threads sharing a tokenizer take turns
            return self._ngram_rows_of(ids)

    def _ngram_rows_of(self, ids: np.ndarray) -> np.ndarray:
        # Both ends in one pass: a negative id read as unsigned is above any length.
        if ids.size and ids.view(np.uint64).max() >= len(self._ngram_slot):  # first use, tokens added, or bad ids
            size = len(self)  # only here: with tokenizers < 0.23.1, len() rebuilds the whole vocabulary
            if ids.min() < 0 or ids.max() >= size:
                raise ValueError(f"token ids must lie in [0, {size}), got [{ids.min()}, {ids.max()}]")
            self._ngram_slot = np.concatenate([self._ngram_slot, np.full(size - len(self._ngram_slot), -1)])
        slots = self._ngram_slot[ids]
        if ids.size and slots.min() < 0:  # tokens not seen yet (np.unique would import numpy.ma)
            todo = sorted(set(ids[slots < 0].tolist()))
            start, stop, special = self._ngram_rows, self._ngram_rows + len(todo), set(self.all_special_tokens)
            if stop > len(self._ngram_table):  # grow by doubling
                grown = np.zeros((max(stop, 2 * len(self._ngram_table), 256), self.max_ngrams_per_token), np.int64)
                grown[:start], self._ngram_table = self._ngram_table[:start], grown
            for row, token in zip(self._ngram_table[start:stop], self.convert_ids_to_tokens(todo)):
                ngram_ids = self.token_ngram_ids(token, atom=token in special)
                row[: len(ngram_ids)] = ngram_ids
            self._ngram_slot[todo], self._ngram_rows = np.arange(start, stop), stop
            slots = self._ngram_slot[ids]
        return self._ngram_table[slots]

    def _with_ngram_ids(self, batch):
        """Set `batch["ngram_ids"]` from `batch["input_ids"]`, in the same container type."""
        ids = batch.get("input_ids")
        if isinstance(ids, torch.Tensor):
            batch["ngram_ids"] = torch.from_numpy(self.ngram_ids_for(ids.cpu().numpy()))
        elif isinstance(ids, np.ndarray):
            batch["ngram_ids"] = self.ngram_ids_for(ids)
        elif ids is not None:  # Python lists, as BERT's other outputs: 48 ints per token
            collecting = gc.isenabled()
            gc.disable()  # so many new small lists would set off cyclic-GC passes over the whole heap; none is a cycle
            try:
                nested = len(ids) and not np.isscalar(ids[0])  # a (possibly ragged) batch of lists
                batch["ngram_ids"] = [self.ngram_ids_for(s).tolist() for s in ids] if nested else \
                    self.ngram_ids_for(ids).tolist()
            finally:
                if collecting:
                    gc.enable()
        return batch

    def _encode_plus(self, text, text_pair=None, *args, return_ngram_ids=True, **kwargs):
        # `tokenizer(texts, return_ngram_ids=False)`: BERT's outputs only, e.g. in `datasets.map` when a collator
        # (pad / DataCollatorWithPadding) adds `ngram_ids` per batch anyway: 48 Python ints per token are costly.
        if isinstance(text, (list, tuple)) and not text:
            raise ValueError("got an empty batch: pass a string or a non-empty list of strings")
        text = _clean_text(text, "text")
        text_pair = None if text_pair is None else _clean_text(text_pair, "text_pair")
        encoded = super()._encode_plus(text, text_pair, *args, **kwargs)
        return self._with_ngram_ids(encoded) if return_ngram_ids else encoded

    def pad(self, encoded_inputs, *args, **kwargs):
        # ngram_ids are a function of input_ids: drop them, pad as BERT does, and recompute them for the result.
        if isinstance(encoded_inputs, Mapping):
            encoded_inputs = {k: v for k, v in encoded_inputs.items() if k != "ngram_ids"}
        elif isinstance(encoded_inputs, (list, tuple)) and encoded_inputs:
            if not all(isinstance(e, Mapping) for e in encoded_inputs):
                raise TypeError("pad takes a dict of lists or a list of dicts (tokenizer outputs), got a list "
                                f"holding {sorted({type(e).__name__ for e in encoded_inputs})}")
            encoded_inputs = [{k: v for k, v in e.items() if k != "ngram_ids"} for e in encoded_inputs]
        else:
            raise ValueError(f"pad got {encoded_inputs!r:.40}: pass a tokenizer output or a non-empty list of them")
        return self._with_ngram_ids(super().pad(encoded_inputs, *args, **kwargs))

    def __getstate__(self):
        # The lazily filled table is a cache: leave it out so pickles (and `datasets` fingerprints) stay stable.
        state = {**self.__dict__, **self._empty_table()}
        del state["_ngram_lock"]  # a lock does not pickle; each copy gets its own
        return state

    def __setstate__(self, state):
        self.__dict__.update(state, _ngram_lock=threading.Lock())


__all__ = ["EELBertTokenizer"]
