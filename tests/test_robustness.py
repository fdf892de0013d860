"""Hostile input: every case gives correct output (finite numbers, right shapes) or a TypeError/ValueError that
says what to do; never an IndexError from deep inside torch, a crash or a NaN. Then property tests over
arbitrary Unicode, tokenizer/model mismatch safety, and a corrupt checkpoint."""

import copy
import json
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from transformers import AutoConfig, AutoModel, AutoTokenizer, pipeline

from conftest import BASE_FORMATS, SENTENCES, small_config
from eelbert_hf import EELBertForMaskedLM, EELBertForSequenceClassification, EELBertModel, EELBertTokenizer
from eelbert_hf.packaging.hub import save_hub_folder
from eelbert_hf.loading import BUNDLED_CLASSIFIER, check_compatible, load_checkpoint
from eelbert_hf.modeling.ngram_hashing import MAX_NGRAM_ID, token_ngram_ids

WIDTH = 48
HOSTILE_TEXTS = {
    "empty": "",
    "whitespace_only": " \t\n\r\u3000\u00a0\u2028 ",
    "one_megabyte": "word " * 200_000,
    "nul_and_control": "a\x00b\x01\x07c\x1b[31m\x7f\x85d\u200b\ufeff",
    "lone_surrogates": "x\ud800y \udfff z\udc00",
    "emoji_zwj": "👨\u200d👩\u200d👧\u200d👦 🏳️\u200d🌈 👍🏽",
    "rtl": "שלום עולם مرحبا بالعالم \u202eevil\u202c",
    "combining_marks": "e\u0301" + "\u0300" * 60 + " Z\u0338\u0321\u0322\u031b\u0317",
    "ten_thousand_char_word": "x" * 10_000,
    "cjk": "漢字かなカナ한국어 中文測試",
    "mixed_scripts": "Latin Кириллица Ελληνικά العربية हिन्दी 日本語 😀 x²",
}


@pytest.fixture(scope="module")
def classifier():
    torch.manual_seed(0)
    return EELBertForSequenceClassification(small_config(num_labels=2)).eval()


@pytest.fixture(scope="module")
def model(classifier):
    return classifier.bert


@pytest.fixture(scope="module")
def batch(tokenizer):
    return tokenizer(SENTENCES, padding=True, return_tensors="pt")


def spec_rows(tokenizer, input_ids):
    """The per-string path: the spec applied to each position's token string, right-padded with 0."""
    special = set(tokenizer.all_special_tokens)
    rows = []
    for token in tokenizer.convert_ids_to_tokens([int(i) for i in input_ids]):
        ids = token_ngram_ids(token, max_ngrams_per_token=WIDTH, token_format=tokenizer.token_format,
                              atom=token in special)
        rows.append(ids + [0] * (WIDTH - len(ids)))
    return rows


def check_features(tokenizer, enc):
    """Right shapes, every n-gram id in range, every row equal to the per-string spec."""
    ids, ngrams = np.asarray(enc["input_ids"]), np.asarray(enc["ngram_ids"])
    if ids.size == 0:  # an empty text through a base without special tokens: no positions, so no features
        assert enc["ngram_ids"] == enc["input_ids"] == []
        return
    assert ngrams.shape == (*ids.shape, WIDTH) and ngrams.dtype == np.int64
    assert ngrams.min() >= 0 and ngrams.max() <= MAX_NGRAM_ID
    assert ((ngrams != 0).sum(-1) >= 1).all()  # every position, special tokens included, has an n-gram
    assert ngrams.reshape(-1, WIDTH).tolist() == spec_rows(tokenizer, ids.reshape(-1))


# ---------------------------------------------------------------- hostile text: tokenizer alone
@pytest.mark.parametrize("name", HOSTILE_TEXTS)
def test_hostile_text_tokenizes_to_valid_features(tokenizer, name):
    enc = tokenizer(HOSTILE_TEXTS[name], truncation=True)
    check_features(tokenizer, enc)
    assert 2 <= len(enc["input_ids"]) <= tokenizer.model_max_length
    assert enc["input_ids"][0] == tokenizer.cls_token_id and enc["input_ids"][-1] == tokenizer.sep_token_id


def test_hostile_text_specific_outcomes(tokenizer):
    cls_sep = [tokenizer.cls_token_id, tokenizer.sep_token_id]
    assert tokenizer("")["input_ids"] == tokenizer(HOSTILE_TEXTS["whitespace_only"])["input_ids"] == cls_sep
    assert len(tokenizer(HOSTILE_TEXTS["one_megabyte"], truncation=True)["input_ids"]) == 512
    assert tokenizer(HOSTILE_TEXTS["ten_thousand_char_word"])["input_ids"] == \
        [tokenizer.cls_token_id, tokenizer.unk_token_id, tokenizer.sep_token_id]  # WordPiece's 100-char limit


def test_lone_surrogates_are_dropped_like_invalid_characters(tokenizer):
    text = HOSTILE_TEXTS["lone_surrogates"]
    enc = tokenizer(text, return_offsets_mapping=True)
    assert enc["input_ids"] == tokenizer("xy  z")["input_ids"]  # BERT drops U+FFFD, as any invalid character
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"])
    for token, (start, end) in zip(tokens, enc["offset_mapping"]):
        if token not in tokenizer.all_special_tokens:  # offsets still index the caller's string
            assert text[start:end].lower() == token.removeprefix("##")
    batch = tokenizer([text, "\ud83d\ude00"], text_pair=["\udfff", "ok"], padding=True, return_tensors="pt")
    assert batch["ngram_ids"].shape[:2] == batch["input_ids"].shape


def test_one_megabyte_without_truncation_is_a_clear_model_error(tokenizer, model):
    enc = tokenizer(HOSTILE_TEXTS["one_megabyte"][:20_000], return_tensors="pt")  # 4,000 words, > 512
    assert enc["input_ids"].shape[1] > 512
    with pytest.raises(ValueError, match="truncation=True"):
        model(**enc)


@pytest.mark.parametrize("text, kwargs, error, match", [
    (None, {}, ValueError, "text"),
    (5, {}, TypeError, "text is of type int"),
    (1.5, {}, TypeError, "str"),
    (b"bytes", {}, TypeError, "text is of type bytes"),
    ({"text": "a"}, {}, TypeError, "text is of type dict"),
    (["a", None], {}, TypeError, r"text\[1\] is of type NoneType"),
    (["a", 3], {}, TypeError, r"text\[1\]"),
    ([["a", 1]], dict(is_split_into_words=True), TypeError, r"text\[0\]\[1\]"),
    ("a", dict(text_pair=7), TypeError, "text_pair"),
    ([], {}, ValueError, "empty batch"),
    ((), dict(padding=True), ValueError, "empty batch"),
    (["a", "a b c"], dict(return_tensors="pt"), ValueError, "padding=True"),
])
def test_wrong_text_types_are_clear_errors(tokenizer, text, kwargs, error, match):
    with pytest.raises(error, match=match):
        tokenizer(text, **kwargs)


def test_nested_lists_are_batches_pairs_or_words(tokenizer):
    pairs = tokenizer([("a b", "c"), ("d", "e f")], padding=True, return_tensors="pt")
    assert pairs["token_type_ids"].max() == 1
    words = tokenizer([["hello", "world"], ["a"]], is_split_into_words=True, padding=True, return_tensors="np")
    assert words["ngram_ids"].shape == (2, 4, WIDTH)
    check_features(tokenizer, words)
    assert tokenizer.tokenize("a\ud800b") == tokenizer.tokenize("ab")
    assert tokenizer.encode(["x", "\udc00"], is_split_into_words=True) == tokenizer.encode(["x"], is_split_into_words=True)


@pytest.mark.parametrize("features, error, match", [
    ([], ValueError, "non-empty"),
    (None, ValueError, "tokenizer output"),
    ([[101, 102]], TypeError, "list of dicts"),
    ([{"input_ids": [101, 102]}, None], TypeError, "NoneType"),
    ({"input_ids": torch.tensor([[101.0, 7.7, 102.0]])}, TypeError, "integer token ids"),
    ({"input_ids": np.array([[True, False]])}, TypeError, "integer token ids"),
    ({"input_ids": [[101, 50_000, 102], [101, 102]]}, ValueError, "token ids must lie in"),
    ({"input_ids": [[101, -5, 102]]}, ValueError, "token ids must lie in"),
    ({"attention_mask": [[1, 1]]}, ValueError, "input_ids"),
])
def test_pad_rejects_hostile_features(tokenizer, features, error, match):
    with pytest.raises(error, match=match):
        tokenizer.pad(features, return_tensors="pt")


def test_pad_recomputes_stale_or_ragged_ngram_ids(tokenizer):
    features = [{"input_ids": [101, 7592, 102], "ngram_ids": [[1], [2, 3]]}, {"input_ids": [101, 102], "ngram_ids": None}]
    padded = tokenizer.pad(features, return_tensors="pt")
    assert padded["ngram_ids"].shape == (2, 3, WIDTH)
    check_features(tokenizer, padded)


@pytest.mark.parametrize("family", BASE_FORMATS)
def test_hostile_text_on_every_tokenizer_family(base_tokenizers, family):
    """The same texts through a WordPiece, byte-level BPE, Unigram and plain BPE base (trained in conftest): valid
    features equal to the spec in the base's format, the length limit kept, finite outputs of a model sized to it."""
    tokenizer = EELBertTokenizer.from_base(base_tokenizers[family])
    texts = list(HOSTILE_TEXTS.values())
    for text in texts:
        enc = tokenizer(text, truncation=True)
        check_features(tokenizer, enc)
        assert len(enc["input_ids"]) <= 512
    if family == "bpe":  # bytes: nothing is unknown, whatever the script
        assert all(tokenizer.unk_token_id not in ids for ids in tokenizer(texts, truncation=True)["input_ids"])
    torch.manual_seed(0)
    config = small_config(num_labels=2, vocab_size=len(tokenizer), token_format=tokenizer.token_format)
    enc = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="pt")
    with torch.no_grad():
        logits = EELBertForSequenceClassification(config).eval()(**enc).logits
    assert logits.shape == (len(texts), 2) and torch.isfinite(logits).all()


# ---------------------------------------------------------------- hostile text: end to end
def test_hostile_texts_end_to_end_give_finite_outputs(tokenizer, classifier):
    texts = list(HOSTILE_TEXTS.values())
    enc = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = classifier(**enc, output_hidden_states=True)
    assert out.logits.shape == (len(texts), 2) and torch.isfinite(out.logits).all()
    assert all(torch.isfinite(h).all() for h in out.hidden_states)
    for i, text in enumerate(texts):  # each alone: same logits as in the padded batch
        with torch.no_grad():
            single = classifier(**tokenizer(text, truncation=True, return_tensors="pt")).logits
        torch.testing.assert_close(single[0], out.logits[i], atol=1e-5, rtol=0)


def test_hostile_texts_through_mlm_and_pipeline(tokenizer):
    torch.manual_seed(0)
    mlm = EELBertForMaskedLM(small_config()).eval()
    enc = tokenizer(list(HOSTILE_TEXTS.values()), padding=True, truncation=True, max_length=64, return_tensors="pt")
    labels = torch.where(enc["attention_mask"].bool(), enc["input_ids"], -100)
    out = mlm(**enc, labels=labels)
    assert math.isfinite(out.loss.item()) and torch.isfinite(out.logits).all()
    # the trained bundled classifier: confident answers that differ from text to text, so a pipeline that lost or
    # mixed up its inputs shows
    trained, trained_tokenizer = load_checkpoint(BUNDLED_CLASSIFIER)  # with its own n-gram fields (1-4-grams)
    trained.eval()
    texts = list(HOSTILE_TEXTS.values())
    results = pipeline("text-classification", model=trained, tokenizer=trained_tokenizer)(texts, truncation=True)
    with torch.no_grad():  # the classifier's own answer for the same (truncated) texts
        encoded = trained_tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
        probabilities = trained(**encoded).logits.softmax(-1)
    assert [r["label"] for r in results] == [trained.config.id2label[i] for i in probabilities.argmax(-1).tolist()]
    assert [r["score"] for r in results] == pytest.approx(probabilities.max(-1).values.tolist(), abs=1e-5)


# ---------------------------------------------------------------- hostile tensors: the model
@pytest.mark.parametrize("change, error, match", [
    (lambda b: b.update(ngram_ids=b["ngram_ids"].tolist()), TypeError, "torch.Tensor"),
    (lambda b: b.update(ngram_ids=[[[1] * 48, [2] * 47]]), TypeError, "torch.Tensor"),  # ragged
    (lambda b: b.update(ngram_ids=b["ngram_ids"][0]), ValueError, r"\(batch, seq_len, 48\)"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"][None]), ValueError, r"\(batch, seq_len, 48\)"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"][..., :47]), ValueError, r"\(batch, seq_len, 48\)"),
    (lambda b: b.update(ngram_ids=torch.tensor(5)), ValueError, "shape"),
    (lambda b: b.update(ngram_ids=-b["ngram_ids"] - 1), ValueError, "must lie in"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"] + 2**31), ValueError, "must lie in"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"].double()), TypeError, "integers"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"].bool()), TypeError, "integers"),
    (lambda b: b.update(input_ids=b["input_ids"].float()), TypeError, "input_ids"),
    (lambda b: b.update(input_ids=b["input_ids"].tolist()), TypeError, "input_ids"),
    (lambda b: b.update(input_ids=b["input_ids"][:, :3]), ValueError, "to match the other inputs"),
    (lambda b: b.update(attention_mask=b["attention_mask"].tolist()), TypeError, "attention_mask"),
    (lambda b: b.update(attention_mask=b["attention_mask"][None]), ValueError, "attention_mask"),
    (lambda b: b.update(token_type_ids=b["token_type_ids"][:, :2]), ValueError, "token_type_ids must have shape"),
    (lambda b: b.update(token_type_ids=b["token_type_ids"].float()), TypeError, "token_type_ids"),
    (lambda b: b.update(token_type_ids=b["token_type_ids"] - 1), ValueError, "type_vocab_size"),
    (lambda b: b.update(position_ids=torch.arange(3)[None]), ValueError, "position_ids must have shape"),
    (lambda b: b.update(position_ids=torch.arange(b["input_ids"].shape[1])[None] + 600), ValueError, "position_ids"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"][:0], input_ids=None, attention_mask=None, token_type_ids=None),
     ValueError, "empty input"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"][:, :0], input_ids=None, attention_mask=None, token_type_ids=None),
     ValueError, "empty input"),
])
def test_hostile_tensors_are_clear_errors(model, batch, change, error, match):
    broken = dict(batch)
    change(broken)
    with pytest.raises(error, match=match):
        model(**broken)


@pytest.mark.parametrize("inputs_embeds", [torch.zeros(1, 3, 31), torch.zeros(1, 3, 32, dtype=torch.long),
                                           torch.zeros(3, 32), [[[0.0] * 32]]])
def test_bad_inputs_embeds_are_clear_errors(model, inputs_embeds):
    with pytest.raises(ValueError, match="inputs_embeds must be a float tensor"):
        model(inputs_embeds=inputs_embeds)


def test_table_model_input_id_errors(batch):
    table = EELBertModel(small_config(embedding_type="table")).eval()
    ids = batch["input_ids"]
    for bad, error, match in [(ids + 30_522, ValueError, r"must lie in \[0, 30521\]"), (-ids - 1, ValueError, "must lie"),
                              (ids[0], ValueError, r"\(batch, seq_len\)"), (ids.float(), TypeError, "integers"),
                              (ids[:0], ValueError, "empty input"), (ids.tolist(), TypeError, "torch.Tensor")]:
        with pytest.raises(error, match=match):
            table(input_ids=bad)


def test_label_errors(batch):
    classifier = EELBertForSequenceClassification(small_config(num_labels=3)).eval()
    for bad, error, match in [([0, 1, 2], TypeError, "labels must be a torch.Tensor"),
                              (torch.tensor([0, 3, 1]), ValueError, "num_labels=3"),
                              (torch.tensor([-1, 0, 1]), ValueError, "num_labels=3")]:
        with pytest.raises(error, match=match):
            classifier(**batch, labels=bad)
    mlm = EELBertForMaskedLM(small_config()).eval()
    for bad, error, match in [(batch["input_ids"].tolist(), TypeError, "labels must be a torch.Tensor"),
                              (batch["input_ids"][:, :2], ValueError, "labels must have shape"),
                              (batch["input_ids"].float(), TypeError, "labels must hold integers"),
                              (batch["input_ids"] + 30_522, ValueError, "-100 marks a position without a label")]:
        with pytest.raises(error, match=match):
            mlm(**batch, labels=bad)


def test_valid_but_unusual_tensors_give_finite_outputs(model, batch):
    reference = model(**batch).last_hidden_state
    for dtype in (torch.int32, torch.int16):  # any integer type holding the ids gives the same result
        narrow = {**batch, "ngram_ids": batch["ngram_ids"].clamp(max=2**15 - 1).to(dtype)}
        wide = {**batch, "ngram_ids": batch["ngram_ids"].clamp(max=2**15 - 1)}
        torch.testing.assert_close(model(**narrow).last_hidden_state, model(**wide).last_hidden_state, rtol=0, atol=0)
    unusual = [
        dict(ngram_ids=torch.zeros(2, 3, WIDTH, dtype=torch.long)),  # only empty slots: zero token embeddings
        dict(ngram_ids=torch.full((1, 2, WIDTH), MAX_NGRAM_ID)),  # the largest id in every slot
        {**batch, "attention_mask": torch.zeros_like(batch["attention_mask"])},  # everything masked: no NaN
        {**batch, "attention_mask": batch["attention_mask"].bool()},
        {**batch, "attention_mask": batch["attention_mask"].float()},
        {**batch, "input_ids": -batch["input_ids"]},  # unused by the dynamic embedding: any values work
    ]
    for inputs in unusual:
        out = model(**inputs).last_hidden_state
        assert out.shape == (*inputs["ngram_ids"].shape[:2], 32) and torch.isfinite(out).all()
    assert reference.shape == (3, batch["input_ids"].shape[1], 32)


# ---------------------------------------------------------------- properties over arbitrary Unicode
# Every code point (surrogates included), biased towards the hostile ones and towards special-token text.
ANY_CHAR = st.one_of(st.characters(), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),
                     st.sampled_from("\x00\x1b\u200d\u0301\u202e\ufeff\ufffd#[]😀漢 \t"))
PIECE = st.one_of(st.text(ANY_CHAR, max_size=12), st.sampled_from(
    ["[CLS]", "[MASK]", "[unused3]", "##ing", "x" * 120, "\ud800", "a\udfffb", "\ud83d\ude00", "e\u0301\u0301"]))
ANY_TEXT = st.lists(PIECE, max_size=8).map("".join)
PROPERTY = settings(max_examples=60, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@PROPERTY
@given(text=ANY_TEXT)
def test_property_tokenizer_never_raises_and_paths_agree(tokenizer, text):
    enc = tokenizer(text, truncation=True)
    check_features(tokenizer, enc)  # ids in range; the vectorised table equals the per-string spec


@PROPERTY
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=4), extra=st.integers(0, 5))
def test_property_batch_and_padding_keep_features(tokenizer, texts, extra):
    singles = [tokenizer(t, truncation=True, max_length=64) for t in texts]
    longest = max(len(s["input_ids"]) for s in singles)
    padding = dict(padding="max_length", max_length=longest + extra) if extra else dict(padding=True, max_length=64)
    padded = tokenizer(texts, truncation=True, return_tensors="np", **padding)
    assert padded["ngram_ids"].shape == (len(texts), longest + extra, WIDTH)
    for i, single in enumerate(singles):
        n = len(single["input_ids"])
        assert padded["input_ids"][i, :n].tolist() == single["input_ids"]
        assert padded["ngram_ids"][i, :n].tolist() == single["ngram_ids"]
        assert (padded["input_ids"][i, n:] == tokenizer.pad_token_id).all()


@settings(max_examples=15, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=3), extra=st.integers(1, 6))
@example(texts=["0\u00b9000A0000000:0::0::0000000000:0:0:0:0:0"], extra=1)  # longer than 32 tokens: truncated
def test_property_model_padding_and_batching_do_not_change_real_positions(tokenizer, model, texts, extra):
    padded = tokenizer(texts, truncation=True, max_length=32, padding=True, return_tensors="pt")
    # the same truncated tokens, padded further (tokenizing with a larger max_length would keep more real tokens)
    longer = tokenizer.pad(tokenizer(texts, truncation=True, max_length=32), padding="max_length",
                           max_length=padded["input_ids"].shape[1] + extra, return_tensors="pt")
    with torch.no_grad():
        out, out_longer = model(**padded).last_hidden_state, model(**longer).last_hidden_state
    assert torch.isfinite(out_longer).all()
    real = padded["attention_mask"].bool()
    torch.testing.assert_close(out_longer[:, : real.shape[1]][real], out[real], atol=1e-5, rtol=0)
    for i, text in enumerate(texts):
        with torch.no_grad():
            single = model(**tokenizer(text, truncation=True, max_length=32, return_tensors="pt")).last_hidden_state[0]
        torch.testing.assert_close(single, out[i, : len(single)], atol=1e-5, rtol=0)


# ---------------------------------------------------------------- tokenizer/model mismatch safety
def other_code_version(tokenizer, **fields):
    """A tokenizer as another code version would build it (its constructor here refuses unknown schemes)."""
    clone = copy.copy(tokenizer)
    clone.__dict__.update(fields)
    return clone


@pytest.mark.parametrize("make, field", [
    (lambda t: EELBertTokenizer.from_bundled_vocab(ngram_min_n=2), "ngram_min_n"),
    (lambda t: EELBertTokenizer.from_bundled_vocab(ngram_max_n=4), "ngram_max_n"),
    (lambda t: EELBertTokenizer.from_bundled_vocab(max_ngrams_per_token=32), "max_ngrams_per_token"),
    (lambda t: EELBertTokenizer.from_bundled_vocab(feature_type="whole_token"), "feature_type"),
    (lambda t: other_code_version(t, hash_scheme="eelbert-ngram-v2"), "hash_scheme"),
])
def test_mismatched_tokenizer_and_model_are_refused(tokenizer, tmp_path, make, field):
    other = make(tokenizer)
    model = EELBertModel(small_config())
    with pytest.raises(ValueError, match=field) as raised:
        check_compatible(model.config, other)
    want, got = model.config.to_dict().get(field, "ngram"), getattr(other, field)
    assert repr(want) in str(raised.value) and repr(got) in str(raised.value)  # both sides are named
    with pytest.raises(ValueError, match=field):
        save_hub_folder(model, other, str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()
    check_compatible(model.config, tokenizer)  # the matching pair passes


def test_cli_refuses_a_folder_whose_tokenizer_does_not_match(tmp_path):
    from eelbert_hf.loading import load_tokenizer  # what pretrain/finetune/export use to pair them

    config = small_config()
    config.save_pretrained(tmp_path)
    EELBertTokenizer.from_bundled_vocab(ngram_max_n=4).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="ngram_max_n"):
        load_tokenizer(str(tmp_path), config)


def test_width_mismatch_in_a_raw_pipeline_is_a_clear_error(classifier):
    # pipeline(...) itself cannot check the pair; the model's input check catches a width mismatch
    classify = pipeline("text-classification", model=classifier,
                        tokenizer=EELBertTokenizer.from_bundled_vocab(max_ngrams_per_token=32))
    with pytest.raises(ValueError, match=r"ngram_ids must have shape \(batch, seq_len, 48\) to match the other inputs, got \(1, \d+, 32\)"):
        classify("hello world")


def edit_json(path, **fields):
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, **fields}))


def test_unknown_hash_scheme_fails_to_load_naming_both_versions(tmp_path, tokenizer):
    model = EELBertModel(small_config())
    save_hub_folder(model, tokenizer, str(tmp_path))
    edit_json(tmp_path / "config.json", hash_scheme="eelbert-ngram-v2")
    edit_json(tmp_path / "tokenizer_config.json", hash_scheme="eelbert-ngram-v2")
    for load in (AutoConfig.from_pretrained, AutoModel.from_pretrained, EELBertModel.from_pretrained,
                 AutoTokenizer.from_pretrained):
        with pytest.raises(ValueError, match="eelbert-ngram-v2") as raised:
            load(tmp_path)
        assert "eelbert-ngram-v1" in str(raised.value), load


@pytest.mark.parametrize("file, fields, match", [
    ("config.json", dict(max_ngrams_per_token=500), "max_ngrams_per_token"),
    ("config.json", dict(embedding_type="sparse"), "embedding_type"),
    ("config.json", dict(ngram_codebook_buckets=-1), "ngram_codebook_buckets"),
    ("config.json", dict(ngram_codebook_dim=0), "ngram_codebook_dim"),
    ("config.json", dict(ngram_codebook_buckets=64, embedding_type="table"), "ngram_codebook_buckets"),
    ("config.json", dict(classifier_pooling="max"), "classifier_pooling"),
    ("tokenizer_config.json", dict(ngram_min_n=0), "ngram_min_n"),
    ("tokenizer_config.json", dict(feature_type="bytes"), "feature_type"),
])
def test_invalid_saved_fields_fail_to_load(tmp_path, tokenizer, file, fields, match):
    save_hub_folder(EELBertModel(small_config()), tokenizer, str(tmp_path))
    edit_json(tmp_path / file, **fields)
    load = AutoTokenizer.from_pretrained if file.startswith("tokenizer") else AutoModel.from_pretrained
    with pytest.raises(ValueError, match=match):
        load(tmp_path)


# ---------------------------------------------------------------- corrupt checkpoint file
@pytest.mark.parametrize("corrupt", [lambda b: b[: len(b) // 2], lambda b: b[:20], lambda b: b""],
                         ids=["truncated_half", "truncated_header", "empty"])
def test_truncated_safetensors_is_a_clear_error(tmp_path, corrupt):
    from safetensors import SafetensorError

    EELBertModel(small_config()).save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(corrupt(weights.read_bytes()))
    # transformers surfaces safetensors' own error: it names the problem (the header) but not the file
    with pytest.raises(SafetensorError, match="deserializing header"):
        AutoModel.from_pretrained(tmp_path)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    EELBertModel(small_config()).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(OSError, match="model.safetensors"):
        AutoModel.from_pretrained(tmp_path)
