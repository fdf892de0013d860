"""EELBertTokenizer: ngram_ids on every output path equal the spec applied to each position's token."""

import os
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertTokenizer, DataCollatorWithPadding

from conftest import SENTENCES
import eelbert_hf
from eelbert_hf import EELBertTokenizer
from eelbert_hf.loading import BUNDLED_CLASSIFIER as BUNDLED_MODEL
from eelbert_hf.modeling.ngram_hashing import token_ngram_ids


def spec_rows(tokenizer, input_ids):
    """The spec applied token by token: the reference the vectorised table must match."""
    special = set(tokenizer.all_special_tokens)
    rows = []
    for token in tokenizer.convert_ids_to_tokens([int(i) for i in input_ids]):
        ids = token_ngram_ids(token, max_ngrams_per_token=tokenizer.max_ngrams_per_token, atom=token in special)
        rows.append(ids + [0] * (tokenizer.max_ngrams_per_token - len(ids)))
    return rows


def test_same_wordpiece_as_bert(tokenizer):
    bert = BertTokenizer.from_pretrained(tokenizer.name_or_path)
    for text in SENTENCES:
        assert tokenizer(text)["input_ids"] == bert(text)["input_ids"]


def test_single_text_lists(tokenizer):
    enc = tokenizer(SENTENCES[0])
    assert isinstance(enc["ngram_ids"], list) and len(enc["ngram_ids"]) == len(enc["input_ids"])
    assert enc["ngram_ids"] == spec_rows(tokenizer, enc["input_ids"])


@pytest.mark.parametrize("collecting", [True, False])
def test_list_output_leaves_the_garbage_collector_as_it_was(tokenizer, collecting):
    """The list path pauses the cyclic garbage collector while it builds the nested lists, and restores its state."""
    import gc

    was = gc.isenabled()
    (gc.enable if collecting else gc.disable)()
    try:
        enc = tokenizer(SENTENCES[:2])
        assert gc.isenabled() == collecting
        assert [row for seq in enc["ngram_ids"] for row in seq] == spec_rows(
            tokenizer, [i for seq in enc["input_ids"] for i in seq])
    finally:
        (gc.enable if was else gc.disable)()


def test_morphology_is_shared_but_distinct(tokenizer):
    run, running, cont = (set(tokenizer.token_ngram_ids(t)) for t in ("run", "running", "##run"))
    assert run < running  # every n-gram of "run" (with its word-start marker) is in "running"
    assert run != cont and len(run & cont) == 6  # r, u, n, ru, un, run shared; marker n-grams not
    assert tokenizer.token_ngram_ids("[CLS]") != tokenizer.token_ngram_ids("[SEP]")
    assert len(tokenizer.token_ngram_ids("[unused5]")) == 1


@pytest.mark.parametrize("tensors", [None, "np", "pt"])
@pytest.mark.parametrize("side", ["right", "left"])
def test_batch_pairs_padding_truncation(tokenizer, tensors, side):
    tokenizer.padding_side = side
    try:
        enc = tokenizer(SENTENCES, SENTENCES[::-1], padding="max_length", truncation=True, max_length=24,
                        return_tensors=tensors, return_offsets_mapping=True)
    finally:
        tokenizer.padding_side = "right"
    ids, ngrams = np.asarray(enc["input_ids"]), np.asarray(enc["ngram_ids"])
    assert ids.shape == (3, 24) and ngrams.shape == (3, 24, tokenizer.max_ngrams_per_token)
    if tensors == "pt":
        assert enc["ngram_ids"].dtype == torch.long
    assert ngrams.reshape(-1, ngrams.shape[-1]).tolist() == spec_rows(tokenizer, ids.reshape(-1))
    pad_column = 0 if side == "left" else -1
    assert ids[2, pad_column] == tokenizer.pad_token_id  # padding went to the requested side
    assert ids[0, 0 if side == "right" else -1] != tokenizer.pad_token_id


def test_ragged_batch_without_padding(tokenizer):
    enc = tokenizer(SENTENCES)
    for ids, rows in zip(enc["input_ids"], enc["ngram_ids"]):
        assert rows == spec_rows(tokenizer, ids)


def test_pad_and_data_collator(tokenizer):
    features = [tokenizer(text) for text in SENTENCES]
    batch = DataCollatorWithPadding(tokenizer)(features)
    assert batch["ngram_ids"].shape == (*batch["input_ids"].shape, tokenizer.max_ngrams_per_token)
    assert batch["ngram_ids"].reshape(-1, tokenizer.max_ngrams_per_token).tolist() == \
        spec_rows(tokenizer, batch["input_ids"].reshape(-1))
    padded = tokenizer.pad(features, padding="max_length", max_length=40, return_tensors="np")
    assert padded["ngram_ids"].shape == (3, 40, tokenizer.max_ngrams_per_token)


def test_added_tokens_get_features(tokenizer):
    tok = EELBertTokenizer.from_pretrained(tokenizer.name_or_path)
    tok.add_tokens(["covid19"])
    tok.add_special_tokens({"additional_special_tokens": ["<ent>"]})
    enc = tok("covid19 <ent>")
    tokens = tok.convert_ids_to_tokens(enc["input_ids"])
    assert "covid19" in tokens and "<ent>" in tokens
    assert enc["ngram_ids"] == spec_rows(tok, enc["input_ids"])
    assert np.count_nonzero(enc["ngram_ids"][tokens.index("<ent>")]) == 1  # special: one atom
    assert np.count_nonzero(enc["ngram_ids"][tokens.index("covid19")]) > 1  # plain added word: n-grams


def test_long_word_is_truncated_to_width(tokenizer):
    ids = tokenizer.token_ngram_ids("x" * 10_000)
    assert len(ids) == tokenizer.max_ngrams_per_token


def test_out_of_range_ids_raise(tokenizer):
    with pytest.raises(ValueError, match="token ids must lie"):
        tokenizer.ngram_ids_for([5, len(tokenizer)])


def test_bad_params_raise():
    with pytest.raises(ValueError, match="max_ngrams_per_token"):
        EELBertTokenizer.from_bundled_vocab(max_ngrams_per_token=0)
    with pytest.raises(ValueError, match="hash_scheme"):
        EELBertTokenizer.from_bundled_vocab(hash_scheme="eelbert-ngram-v0")


def test_save_load_round_trip(tokenizer, tmp_path):
    tok = EELBertTokenizer.from_bundled_vocab(max_ngrams_per_token=32, ngram_max_n=4)
    tok.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert type(loaded) is EELBertTokenizer and loaded.ngram_params == tok.ngram_params
    a, b = tok(SENTENCES, padding=True), loaded(SENTENCES, padding=True)
    assert a["ngram_ids"] == b["ngram_ids"] and a["input_ids"] == b["input_ids"]


def test_folder_with_only_vocab_txt(tokenizer, tmp_path):
    bundled = os.path.join(os.path.dirname(eelbert_hf.__file__), "data", "vocab.txt")
    shutil.copy(bundled, tmp_path / "vocab.txt")
    tok = EELBertTokenizer.from_pretrained(tmp_path)
    assert tok(SENTENCES[0])["ngram_ids"] == tokenizer(SENTENCES[0])["ngram_ids"]


def test_pickle_drops_cache_but_keeps_behaviour(tokenizer):
    import pickle

    tokenizer(SENTENCES)  # fill part of the cache
    clone = pickle.loads(pickle.dumps(tokenizer))
    assert len(clone._ngram_slot) == 0
    assert clone(SENTENCES)["ngram_ids"] == tokenizer(SENTENCES)["ngram_ids"]


def test_empty_batch_is_a_clear_error(tokenizer):
    with pytest.raises(ValueError, match="empty"):
        tokenizer([], padding=True)


def test_return_ngram_ids_false_leaves_them_to_the_collator(tokenizer):
    """`return_ngram_ids=False` (for `datasets.map`): BERT's outputs only; padding adds the n-gram ids back."""
    full = tokenizer(SENTENCES[:3], truncation=True, max_length=16)
    lean = tokenizer(SENTENCES[:3], truncation=True, max_length=16, return_ngram_ids=False)
    assert "ngram_ids" not in lean and {k: full[k] for k in lean} == dict(lean)
    single = tokenizer(SENTENCES[0], return_ngram_ids=False, return_tensors="pt")
    assert set(single) == {"input_ids", "token_type_ids", "attention_mask"}
    features = [{k: v[i] for k, v in lean.items()} for i in range(3)]
    batch = DataCollatorWithPadding(tokenizer)(features)
    assert torch.equal(batch["ngram_ids"], tokenizer(SENTENCES[:3], truncation=True, max_length=16, padding=True,
                                                     return_tensors="pt")["ngram_ids"])


@pytest.mark.parametrize("make, message", [
    (lambda: EELBertTokenizer(vocab_file="vocab.txt"), "got no base tokenizer"),
    (lambda: EELBertTokenizer(), "got no base tokenizer"),
    (lambda: EELBertTokenizer.from_pretrained(BUNDLED_MODEL), "holds no tokenizer")])
def test_a_tokenizer_without_a_vocabulary_is_refused(make, message):
    """transformers v5 ignores `vocab_file=`, and a model folder without tokenizer files would load 5 special tokens:
    every word would become unknown and every text would get the same answer."""
    with pytest.raises(ValueError, match=message):
        make()


def test_threads_sharing_one_tokenizer_get_the_ngram_ids_of_their_own_tokens():
    """The n-gram table is filled lazily in place: without a lock, concurrent first sights of new tokens wrote rows
    into the same slots and gave other tokens' n-gram ids."""
    import threading

    shared = EELBertTokenizer.from_bundled_vocab()
    texts = [f"word{i} example number {i} antidisestablishment{i % 7} zebra{i % 13}" for i in range(4000)]
    chunks = [texts[i::8] for i in range(8)]
    got = [None] * len(chunks)

    def encode(i):
        got[i] = shared(chunks[i])["ngram_ids"]

    threads = [threading.Thread(target=encode, args=(i,)) for i in range(len(chunks))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    fresh = EELBertTokenizer.from_bundled_vocab()
    assert got == [fresh(chunk)["ngram_ids"] for chunk in chunks]
