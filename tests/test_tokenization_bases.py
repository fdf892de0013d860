"""EELBertTokenizer.from_base over each tokenizer family (WordPiece, byte-level BPE, Unigram, plain BPE), each
trained in the test (conftest.base_tokenizers): the token format read from the base, n-gram ids equal to the spec
for every token, any script without unknown tokens on a byte-level base, the saved folder, padding, pairs, offsets,
the collators, the model's vocab_size, and the refusals."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, DataCollatorWithPadding

from conftest import BASE_FORMATS, MULTILINGUAL, SENTENCES, small_config
from eelbert_hf import EELBertForMaskedLM, EELBertForSequenceClassification, EELBertTokenizer
from eelbert_hf.loading import check_compatible, load_tokenizer
from eelbert_hf.modeling.ngram_hashing import token_ngram_ids
from eelbert_hf.training import DataCollatorForEELBertMLM, special_tokens_around

FAMILIES = list(BASE_FORMATS)
TEXTS = SENTENCES + MULTILINGUAL


@pytest.fixture(scope="module")
def wrapped(base_tokenizers):
    return {name: EELBertTokenizer.from_base(base) for name, base in base_tokenizers.items()}


def spec_table(tokenizer) -> np.ndarray:
    """Every token's n-gram ids from the spec function itself (special tokens as atoms), zero-padded."""
    special, width = set(tokenizer.all_special_tokens), tokenizer.max_ngrams_per_token
    table = np.zeros((len(tokenizer), width), np.int64)
    for i, token in enumerate(tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))):
        ids = token_ngram_ids(token, max_ngrams_per_token=width, token_format=tokenizer.token_format,
                              atom=token in special)
        table[i, : len(ids)] = ids
    return table


@pytest.mark.parametrize("family", FAMILIES)
def test_the_token_format_is_read_from_the_base(wrapped, family):
    assert wrapped[family].token_format == BASE_FORMATS[family]
    assert wrapped[family].ngram_params["token_format"] == BASE_FORMATS[family]


@pytest.mark.parametrize("family", FAMILIES)
def test_every_token_gets_the_spec_ngram_ids_of_its_format(wrapped, family, base_tokenizers):
    tokenizer = wrapped[family]
    assert len(tokenizer) == len(base_tokenizers[family])
    assert np.array_equal(tokenizer.ngram_ids_for(np.arange(len(tokenizer))), spec_table(tokenizer))


@pytest.mark.parametrize("family", FAMILIES)
def test_input_ids_are_the_bases_own(wrapped, family, base_tokenizers):
    ours = wrapped[family](TEXTS, SENTENCES * 4 + SENTENCES[:1], return_offsets_mapping=True)
    theirs = base_tokenizers[family](TEXTS, SENTENCES * 4 + SENTENCES[:1], return_offsets_mapping=True,
                                     return_token_type_ids=True)
    for key in ("input_ids", "token_type_ids", "attention_mask", "offset_mapping"):
        assert ours[key] == theirs[key], key
    assert [len(row) for row in ours["ngram_ids"]] == [len(row) for row in ours["input_ids"]]


def test_pairs_get_segment_ids_and_one_word_hashes_alike_in_every_format(wrapped):
    """The trained bases use BERT's template, so pairs carry type ids 0 and 1; a word that every vocabulary holds
    whole gets the same n-gram ids in each format that marks word starts."""
    first, second = (len(wrapped["bpe"](t, add_special_tokens=False)["input_ids"]) for t in ("the film", "was good"))
    enc = wrapped["bpe"]("the film", "was good")
    assert enc["token_type_ids"] == [0] * (first + 2) + [1] * (second + 1)  # [CLS] the film [SEP] | was good [SEP]
    rows = {}
    for family in ("wordpiece", "bpe", "unigram"):
        tokenizer = wrapped[family]
        ids = tokenizer("x the", add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(ids[-1:])[0] in ("the", "Ġthe", "▁the")
        rows[family] = tokenizer.ngram_ids_for(ids[-1:]).tolist()
    assert rows["wordpiece"] == rows["bpe"] == rows["unigram"]


def test_a_byte_level_base_gives_any_script_features_and_no_unknown_token(wrapped):
    tokenizer = wrapped["bpe"]
    texts = [*MULTILINGUAL, "ᚠᛇᚻ ᛒᛦᚦ", "𓀀𓁐 𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "\x00\x07 tab\tend", "ǅemal ﬁne Å Å", "🧑🏿‍🚀" * 3]
    enc = tokenizer(texts, add_special_tokens=False)
    for text, ids, rows in zip(texts, enc["input_ids"], enc["ngram_ids"]):
        assert tokenizer.unk_token_id not in ids, text
        assert ids and all(row[0] != 0 for row in rows), text  # every token has at least one n-gram
        assert tokenizer.decode(ids).strip() == text.strip()  # bytes, not lost characters
    unigram = wrapped["unigram"]  # a Unigram base does not see characters it was not trained on
    assert unigram.unk_token_id in unigram("ᚠᛇᚻ", add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize("family", FAMILIES)
def test_the_saved_folder_reloads_identically(wrapped, family, tmp_path):
    tokenizer = wrapped[family]
    tokenizer.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "tokenizer_config.json").read_text())
    assert saved["token_format"] == BASE_FORMATS[family] and saved["tokenizer_class"] == "EELBertTokenizer"
    for loaded in (EELBertTokenizer.from_pretrained(tmp_path), AutoTokenizer.from_pretrained(tmp_path)):
        assert type(loaded) is EELBertTokenizer and loaded.token_format == tokenizer.token_format
        expected = tokenizer(TEXTS, padding=True, return_offsets_mapping=True, return_tensors="np")
        got = loaded(TEXTS, padding=True, return_offsets_mapping=True, return_tensors="np")
        assert expected.keys() == got.keys() and all(np.array_equal(expected[k], got[k]) for k in expected)


REMOTE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["eelbert_hf"] = None  # the package is not installed for this user
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
    enc = tokenizer(json.loads(sys.argv[2]), padding=True)
    print(json.dumps({"module": type(tokenizer).__module__, "format": tokenizer.token_format, **enc}))
""")


@pytest.mark.parametrize("family", ["bpe", "unigram"])
def test_a_saved_folder_loads_with_remote_code_without_the_package(wrapped, family, tmp_path):
    tokenizer = wrapped[family]
    tokenizer.save_pretrained(tmp_path)
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, str(tmp_path), json.dumps(TEXTS)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not remote.pop("module").startswith("eelbert_hf") and remote.pop("format") == BASE_FORMATS[family]
    assert remote == dict(tokenizer(TEXTS, padding=True))


@pytest.mark.parametrize("family", FAMILIES)
def test_pad_and_collators_recompute_ngram_ids(wrapped, family):
    tokenizer = wrapped[family]
    lean = tokenizer(TEXTS, return_ngram_ids=False)
    features = [{k: v[i] for k, v in lean.items()} for i in range(len(TEXTS))]
    padded = DataCollatorWithPadding(tokenizer)(features)
    direct = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert all(torch.equal(padded[k], direct[k]) for k in direct)
    assert (padded["input_ids"] == tokenizer.pad_token_id).any()  # some rows were padded
    mlm = DataCollatorForEELBertMLM(tokenizer, mlm_probability=0.5, seed=0)
    batch = mlm([{"input_ids": ids} for ids in lean["input_ids"]])
    assert torch.equal(batch["ngram_ids"], torch.from_numpy(tokenizer.ngram_ids_for(batch["input_ids"].numpy())))
    assert (batch["input_ids"] == tokenizer.mask_token_id).any()  # masked positions carry the mask's features


@pytest.mark.parametrize("family", FAMILIES)
def test_packing_puts_each_bases_own_special_tokens_around_a_block(wrapped, family):
    tokenizer = wrapped[family]
    expected = ([], []) if family == "plain" else ([tokenizer.cls_token_id], [tokenizer.sep_token_id])  # no template
    assert special_tokens_around(tokenizer) == expected


@pytest.mark.parametrize("family", FAMILIES)
def test_a_new_model_takes_vocab_size_pad_id_and_format_from_the_tokenizer(wrapped, family, tmp_path):
    wrapped[family].save_pretrained(tmp_path)
    config = small_config(num_labels=2, ngram_max_n=2)
    tokenizer = load_tokenizer(str(tmp_path), config, new_model=True)
    assert (config.vocab_size, config.pad_token_id, config.token_format) == \
        (len(tokenizer), tokenizer.pad_token_id, BASE_FORMATS[family])
    assert tokenizer.ngram_max_n == 2  # the model's n-gram fields decide what the tokenizer emits
    torch.manual_seed(0)
    for model in (EELBertForSequenceClassification(config), EELBertForMaskedLM(config)):
        out = model(**tokenizer(TEXTS, padding=True, return_tensors="pt"))
        assert torch.isfinite(out.logits).all()
    assert out.logits.shape[-1] == len(tokenizer)


def test_a_model_with_a_smaller_vocabulary_is_refused(wrapped):
    with pytest.raises(ValueError, match=r"tokenizer has 300 tokens but the model's vocab_size is 200"):
        check_compatible(small_config(vocab_size=200, token_format="byte_level"), wrapped["bpe"])
    with pytest.raises(ValueError, match="disagree on token_format"):  # the bundled vocabulary's model
        check_compatible(small_config(vocab_size=300), wrapped["bpe"])


def test_a_slow_base_is_refused():
    from transformers import CanineTokenizer

    with pytest.raises(ValueError, match="CanineTokenizer, not a fast tokenizer"):
        EELBertTokenizer.from_base(CanineTokenizer())


def test_a_base_without_a_pad_token_is_refused_until_it_has_one(base_tokenizers):
    from transformers import TokenizersBackend

    bare = TokenizersBackend(tokenizer_object=base_tokenizers["bpe"].backend_tokenizer)  # no special tokens named
    with pytest.raises(ValueError, match=r"no pad token: add one first"):
        EELBertTokenizer.from_base(bare)
    with pytest.raises(ValueError, match=r"no pad token: add one first"):
        EELBertTokenizer.from_base(bare.backend_tokenizer)  # a bare tokenizers.Tokenizer
    assert EELBertTokenizer.from_base(bare, pad_token="[PAD]").pad_token_id == 0


def test_a_token_format_that_does_not_fit_the_base_is_refused(base_tokenizers):
    with pytest.raises(ValueError, match=r"does not fit this vocabulary, whose tokens are in the 'byte_level' format"):
        EELBertTokenizer.from_base(base_tokenizers["bpe"], token_format="wordpiece")


def test_a_base_folder_is_wrapped_by_from_pretrained(base_tokenizers, tmp_path):
    base_tokenizers["unigram"].save_pretrained(tmp_path)
    tokenizer = EELBertTokenizer.from_pretrained(tmp_path, ngram_max_n=4)
    assert tokenizer.token_format == "metaspace" and tokenizer.ngram_max_n == 4
    assert tokenizer(TEXTS)["input_ids"] == base_tokenizers["unigram"](TEXTS)["input_ids"]


HUB_NAME_SCRIPT = textwrap.dedent("""
    import json, sys
    from eelbert_hf import EELBertTokenizer
    tokenizer = EELBertTokenizer.from_base(sys.argv[1])
    print(json.dumps({"format": tokenizer.token_format, "name": tokenizer.name_or_path, **tokenizer(json.loads(sys.argv[2]))}))
""")


def test_a_hub_name_of_a_base_tokenizer_is_wrapped_from_the_offline_cache(base_tokenizers, tmp_path):
    """`from_base("org/name")` as after a download: the base's files laid out as huggingface_hub's cache, offline."""
    from test_hub import hub_cache

    base_tokenizers["bpe"].save_pretrained(tmp_path / "base")
    hub_cache(tmp_path / "base", tmp_path / "hf_home", repo="org/bpe-base")
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", HUB_NAME_SCRIPT, "org/bpe-base", json.dumps(TEXTS)],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (remote.pop("format"), remote.pop("name")) == ("byte_level", "org/bpe-base")
    assert remote == dict(EELBertTokenizer.from_base(base_tokenizers["bpe"])(TEXTS))
