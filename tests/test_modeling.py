"""EELBertConfig and the models: no table, BERT semantics for heads and losses, clear errors."""

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from conftest import SENTENCES, small_config
from eelbert_hf import (
    EELBertConfig,
    EELBertForMaskedLM,
    EELBertForSequenceClassification,
    EELBertModel,
)
from eelbert_hf.modeling.ngram_embedding import DynamicNgramEmbeddings
from eelbert_hf.modeling.ngram_hashing import VALUE_SCALE


def test_presets():
    expected = {"base": (12, 768, 12, 3072), "mini": (4, 256, 4, 1024), "tiny": (2, 128, 2, 512),
                "uno": (1, 128, 2, 512)}
    for name, dims in expected.items():
        c = EELBertConfig.from_preset(name)
        assert (c.num_hidden_layers, c.hidden_size, c.num_attention_heads, c.intermediate_size) == dims
        assert c.embedding_type == "dynamic" and c.hash_scheme == "eelbert-ngram-v1"
    assert EELBertConfig.from_preset("uno", num_labels=3, embedding_type="table").num_labels == 3


@pytest.mark.parametrize("bad, match", [
    (dict(hidden_size=130, num_attention_heads=4), "multiple of num_attention_heads"),
    (dict(embedding_type="sparse"), "embedding_type"),
    (dict(hash_scheme="eelbert-ngram-v9"), "eelbert-ngram-v9"),
    (dict(max_ngrams_per_token=129), "max_ngrams_per_token"),
    (dict(ngram_min_n=3, ngram_max_n=2), "ngram_min_n"),
    (dict(vocab_size=0), "vocab_size"),
    (dict(hidden_dropout_prob=1.5), "hidden_dropout_prob"),
    (dict(ngram_seed=-1), "ngram_seed"),
    (dict(ngram_gate_scale=0.0), "ngram_gate_scale"),
    (dict(ngram_gate_scale=float("inf")), "ngram_gate_scale"),
    (dict(ngram_gate_scale="300"), "ngram_gate_scale"),
    (dict(ngram_weight_buckets=-1), "ngram_weight_buckets"),
    (dict(ngram_weight_buckets=2**31 - 1), "ngram_weight_buckets"),  # one more than there are n-gram ids
    (dict(ngram_weight_buckets=64.0), "ngram_weight_buckets"),
    (dict(ngram_codebook_buckets=-1), "ngram_codebook_buckets"),
    (dict(ngram_codebook_buckets=2**31 - 1), "ngram_codebook_buckets"),
    (dict(ngram_codebook_buckets=64.0), "ngram_codebook_buckets"),
    (dict(ngram_codebook_buckets=64, embedding_type="table"), "ngram_codebook_buckets"),
    (dict(ngram_codebook_dim=0), "ngram_codebook_dim"),
    (dict(ngram_codebook_dim="8"), "ngram_codebook_dim"),
    (dict(classifier_pooling="max"), "classifier_pooling"),
    (dict(classifier_pooling=None), "classifier_pooling"),
])
def test_invalid_config_raises(bad, match):
    with pytest.raises(ValueError, match=match):
        EELBertConfig(**bad)
    with pytest.raises(ValueError):
        EELBertConfig.from_preset("huge")


def test_gate_buckets_do_not_depend_on_the_vocabulary():
    """The gates hash n-gram ids, not token ids: a 1,000-token vocabulary keeps the 4,096 default buckets."""
    config = EELBertConfig(vocab_size=1000)
    assert config.ngram_weight_buckets == 4096
    model = EELBertModel(config)
    assert model.embeddings.ngram_embeddings.bucket_weights.shape == (4096,)
    assert EELBertConfig(vocab_size=1000, ngram_weight_buckets=2**31 - 2).ngram_weight_buckets == 2**31 - 2


@pytest.mark.parametrize("cls", [EELBertModel, EELBertForSequenceClassification])
def test_no_vocab_sized_tensor(cls):
    config = EELBertConfig.from_preset("uno")
    for name, tensor in cls(config).state_dict().items():
        assert config.vocab_size not in tensor.shape, name
    table = cls(EELBertConfig.from_preset("uno", embedding_type="table")).state_dict()
    assert table["embeddings.word_embeddings.weight" if cls is EELBertModel
                 else "bert.embeddings.word_embeddings.weight"].shape == (config.vocab_size, 128)


def test_parameter_count_is_bert_minus_table():
    uno = EELBertForSequenceClassification(EELBertConfig.from_preset("uno"))
    bert = BertForSequenceClassification(BertConfig(hidden_size=128, num_hidden_layers=1, num_attention_heads=2,
                                                    intermediate_size=512))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert count(bert) - count(uno) == 30522 * 128 - 4096  # the table, minus the 4,096 learned n-gram gates
    plain = EELBertForSequenceClassification(EELBertConfig.from_preset("uno", ngram_weight_buckets=0))
    assert count(bert) - count(plain) == 30522 * 128


def test_ngram_gates_start_neutral_and_learn(tokenizer, batch):
    torch.manual_seed(0)
    gated = EELBertForSequenceClassification(small_config(num_labels=2, ngram_weight_buckets=64)).eval()
    plain = EELBertForSequenceClassification(small_config(num_labels=2, ngram_weight_buckets=0)).eval()
    missing, _ = plain.load_state_dict(gated.state_dict(), strict=False)
    assert not missing
    assert torch.equal(gated(**batch).logits, plain(**batch).logits)  # gates at 0: weight exactly 1.0
    gated.train()
    gated(**batch, labels=torch.tensor([0, 1, 1])).loss.backward()
    gates = gated.bert.embeddings.ngram_embeddings.bucket_weights
    assert gates.grad is not None and gates.grad.abs().sum() > 0
    with torch.no_grad():
        gates[batch["ngram_ids"][0, 1, 0] % 64] = 0.5  # one n-gram of the first word counts 151x (scale 300)
    gated.eval()
    changed = gated(**batch).logits
    assert not torch.equal(changed, plain(**batch).logits)
    assert torch.equal(changed, gated(**batch).logits)  # the cache follows the gates' new values


def test_codebook_starts_as_the_spec_and_learns(tokenizer, batch):
    """A codebook model computes the plain model's outputs until its map moves; then the cached fast path follows."""
    torch.manual_seed(0)
    coded = EELBertForSequenceClassification(small_config(num_labels=2, ngram_codebook_buckets=64,
                                                          ngram_codebook_dim=4)).eval()
    plain = EELBertForSequenceClassification(small_config(num_labels=2)).eval()
    missing, unexpected = plain.load_state_dict(coded.state_dict(), strict=False)
    assert not missing and sorted(unexpected) == ["bert.embeddings.ngram_embeddings.codebook",
                                                  "bert.embeddings.ngram_embeddings.codebook_map"]
    module = coded.bert.embeddings.ngram_embeddings
    assert module.codebook.shape == (64, 4) and module.codebook.std() > 0 and not module.codebook_map.any()
    assert torch.equal(coded(**batch).logits, plain(**batch).logits)  # the map at zero: the spec's embedding
    coded.train()
    coded(**batch, labels=torch.tensor([0, 1, 1])).loss.backward()
    assert module.codebook_map.grad.abs().sum() > 0
    coded.eval()
    with torch.no_grad():
        module.codebook_map.normal_()
    changed = coded(**batch).logits
    assert not torch.allclose(changed, plain(**batch).logits)
    assert torch.equal(changed, coded(**batch).logits)  # the stored embeddings follow the map's new values
    # the mean of the n-grams' rows (id mod 64) through the map, added to the spec's embedding
    ids = batch["ngram_ids"][0, 1]
    kept = ids[ids != 0]
    expected = plain.bert.embeddings.ngram_embeddings.reference(ids[None])[0] + \
        module.codebook[kept % 64].mean(0) @ module.codebook_map
    torch.testing.assert_close(module.reference(ids[None])[0], expected, rtol=1e-5, atol=1e-6)


def test_mean_pooling_reads_the_kept_tokens_only(tokenizer, batch):
    """classifier_pooling="mean": BERT's pooler layer over the mean of the unmasked tokens' final states, so a
    padded batch gives each text the logits it gets alone; the weights are the "cls" model's, by name."""
    torch.manual_seed(0)
    mean = EELBertForSequenceClassification(small_config(num_labels=2, classifier_pooling="mean")).eval()
    cls = EELBertForSequenceClassification(small_config(num_labels=2)).eval()
    cls.load_state_dict(mean.state_dict())  # strict: the same parameters
    with torch.no_grad():
        hidden = mean.bert(**batch).last_hidden_state
        keep = batch["attention_mask"].unsqueeze(-1).float()
        pooled = mean.bert.pooler.activation(mean.bert.pooler.dense((hidden * keep).sum(1) / keep.sum(1)))
        torch.testing.assert_close(mean(**batch).logits, mean.classifier(pooled))
        assert not torch.allclose(mean(**batch).logits, cls(**batch).logits)
        lengths = batch["attention_mask"].sum(1)
        assert lengths.min() < lengths.max()  # the batch is padded
        for i, length in enumerate(lengths.tolist()):
            alone = {k: v[i : i + 1, :length] for k, v in batch.items()}
            torch.testing.assert_close(mean(**alone).logits[0], mean(**batch).logits[i], rtol=1e-5, atol=1e-6)


def test_mean_pooling_mask_is_per_call_and_per_thread(tokenizer, batch):
    """BertModel.forward calls the pooler without the mask; EELBertModel hands it over for the length of its own call
    only: the pooler called directly afterwards averages every token, and threads sharing one model each pool with
    their own call's mask."""
    import threading

    torch.manual_seed(0)
    model = EELBertForSequenceClassification(small_config(num_labels=2, classifier_pooling="mean")).eval()
    lengths = batch["attention_mask"].sum(1).tolist()
    alone = [{k: v[i : i + 1, :n] for k, v in batch.items()} for i, n in enumerate(lengths)]
    with torch.no_grad():
        expected = [model(**inputs).logits for inputs in [batch, *alone]]
        hidden = model.bert(**batch).last_hidden_state
        pooler = model.bert.pooler
        torch.testing.assert_close(pooler(hidden), pooler.activation(pooler.dense(hidden.mean(1))))
    results, errors = {}, []

    def run(i, inputs):
        try:
            with torch.no_grad():
                results[i] = [model(**inputs).logits for _ in range(20)]
        except Exception as error:  # surfaced below: a thread's exception would otherwise be lost
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i, inputs)) for i, inputs in enumerate([batch, *alone])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i, want in enumerate(expected):
        for got in results[i]:
            torch.testing.assert_close(got, want, rtol=0, atol=0)


@pytest.mark.parametrize("fields", [{}, {"ngram_weight_buckets": 8}, {"ngram_codebook_buckets": 16, "ngram_codebook_dim": 3}],
                         ids=["spec", "gates", "codebook"])
def test_compiled_path_matches_eager(fields):
    """The gather + running-sum path (torch.compile, ONNX export) sums what embedding_bag sums: the spec's integer
    sums bit for bit, learned values within a float32 rounding; tokens without n-grams first, between and last."""
    module = DynamicNgramEmbeddings(small_config(**fields))
    torch.manual_seed(0)
    with torch.no_grad():
        for tensor in module.learned_tensors():
            tensor.normal_(0.0, 0.01 if tensor is getattr(module, "bucket_weights", None) else 1.0)
    ids = torch.tensor([[[0, 0, 0, 0], [5, 21, 9, 0], [0, 0, 0, 0], [2**31 - 2, 1, 0, 0], [0, 0, 0, 0]]])
    compiled = torch.compile(module.reference, backend="eager", fullgraph=True)
    tolerance = 1e-6 if fields else 0.0
    torch.testing.assert_close(compiled(ids), module.reference(ids), rtol=tolerance, atol=tolerance)
    torch.testing.assert_close(compiled(torch.zeros_like(ids)), torch.zeros(1, 5, module.hidden_size), rtol=0, atol=0)


@pytest.mark.parametrize("scale", [300.0, 7.5])
def test_gate_weight_is_one_plus_scale_times_gate(scale):
    module = DynamicNgramEmbeddings(small_config(ngram_weight_buckets=8, ngram_gate_scale=scale))
    ids = torch.tensor([[[5, 13, 6, 0]]])  # 5 and 13 share bucket 5; 6 is bucket 6
    with torch.no_grad():
        module.bucket_weights[5] = 0.01
    weights = torch.tensor([1 + scale * 0.01, 1 + scale * 0.01, 1.0])[:, None]
    expected = (module.ngram_values(ids[0, 0, :3]) * weights).sum(0) / (3 * VALUE_SCALE)
    torch.testing.assert_close(module(ids)[0, 0], expected, rtol=1e-6, atol=1e-7)


def test_dynamic_embedding_is_the_mean_of_ngram_vectors():
    module = DynamicNgramEmbeddings(small_config())
    ids = torch.tensor([[[5, 9, 9, 0], [0, 0, 0, 0], [2**31 - 2, 1, 0, 0]]])
    out = module(ids)
    for t, row in enumerate(ids[0]):
        kept = row[row != 0]
        expected = module.ngram_values(kept).mean(0) / VALUE_SCALE if len(kept) else torch.zeros(32)
        torch.testing.assert_close(out[0, t], expected, rtol=0, atol=1e-7)
    assert out.abs().max() <= 1.0


def test_forward_shapes_and_padding_invariance(tokenizer, batch):
    model = EELBertModel(small_config()).eval()
    out = model(**batch, output_hidden_states=True)
    assert out.last_hidden_state.shape == (3, batch["input_ids"].shape[1], 32)
    assert len(out.hidden_states) == 2 and out.pooler_output.shape == (3, 32)
    longer = tokenizer(SENTENCES, padding="max_length", max_length=40, return_tensors="pt")
    n = batch["input_ids"].shape[1]
    torch.testing.assert_close(model(**longer).last_hidden_state[:, :n][batch["attention_mask"].bool()],
                               out.last_hidden_state[batch["attention_mask"].bool()], atol=1e-5, rtol=0)
    single = model(**tokenizer(SENTENCES[2], return_tensors="pt")).last_hidden_state[0]
    torch.testing.assert_close(single, out.last_hidden_state[2, : len(single)], atol=1e-5, rtol=0)
    as_tuple = model(**batch, return_dict=False)
    torch.testing.assert_close(as_tuple[0], out.last_hidden_state)


def test_inputs_embeds_path_matches(batch):
    model = EELBertModel(small_config()).eval()
    embeds = model.embeddings.token_embeddings(batch["input_ids"], batch["ngram_ids"])
    via_embeds = model(inputs_embeds=embeds, attention_mask=batch["attention_mask"])
    torch.testing.assert_close(via_embeds.last_hidden_state, model(**batch).last_hidden_state)


def test_missing_token_type_ids_equal_segment_zero(batch):
    """Without token_type_ids the segment-0 row is broadcast instead of gathered: same values, same gradient."""
    model = EELBertModel(small_config()).eval()
    assert int(batch["token_type_ids"].abs().max()) == 0
    results = []
    for token_type_ids in (batch["token_type_ids"], None):
        model.zero_grad()
        out = model(**{**batch, "token_type_ids": token_type_ids}).last_hidden_state
        out.square().sum().backward()
        results.append((out.detach(), model.embeddings.token_type_embeddings.weight.grad.clone()))
    assert torch.equal(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    assert results[1][1][0].abs().sum() > 0


def test_table_variant_uses_input_ids(batch):
    model = EELBertModel(small_config(embedding_type="table")).eval()
    with_ngrams = model(**batch).last_hidden_state
    without = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    torch.testing.assert_close(with_ngrams, without)


@pytest.mark.parametrize("change, error, match", [
    (lambda b: b.pop("ngram_ids"), ValueError, "EELBertTokenizer"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"][..., :5]), ValueError, "shape"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"][:, :-1]), ValueError, "to match the other inputs"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"].float()), TypeError, "integers"),
    (lambda b: b.update(ngram_ids=b["ngram_ids"] - 10**9 * 3), ValueError, "must lie in"),
    (lambda b: b.update(token_type_ids=b["token_type_ids"] + 5), ValueError, "type_vocab_size"),
    (lambda b: b.update(attention_mask=b["attention_mask"][:, :2]), ValueError, "attention_mask"),
])
def test_bad_inputs_raise_clear_errors(batch, change, error, match):
    model = EELBertModel(small_config()).eval()
    broken = dict(batch)
    change(broken)
    with pytest.raises(error, match=match):
        model(**broken)


def test_too_long_sequence_is_a_clear_error():
    model = EELBertModel(small_config(max_position_embeddings=8)).eval()
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(ngram_ids=torch.ones(1, 9, 48, dtype=torch.long))


def test_sequence_classification_losses_match_bert_semantics(batch):
    torch.manual_seed(0)
    single = EELBertForSequenceClassification(small_config(num_labels=3)).eval()
    labels = torch.tensor([0, 2, 1])
    out = single(**batch, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    regression = EELBertForSequenceClassification(small_config(num_labels=1)).eval()
    targets = torch.tensor([0.5, -1.0, 2.0])
    out = regression(**batch, labels=targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(), targets))
    multi = EELBertForSequenceClassification(small_config(num_labels=2, problem_type="multi_label_classification"))
    multi_targets = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    out = multi.eval()(**batch, labels=multi_targets)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, multi_targets))
    with pytest.raises(ValueError, match="labels"):
        single(**batch, labels=torch.tensor([0, 3, 1]))


def test_sparse_mlm_loss_equals_dense(batch):
    torch.manual_seed(0)
    model = EELBertForMaskedLM(small_config()).eval()
    labels = torch.full_like(batch["input_ids"], -100)
    labels[0, 1], labels[1, 3], labels[2, 1] = 7, 2000, 29000
    sparse = model(**batch, labels=labels)
    dense_logits = model(**batch).logits
    assert dense_logits.shape == (*batch["input_ids"].shape, 30522) and sparse.logits.shape == (3, 30522)
    dense_loss = torch.nn.functional.cross_entropy(dense_logits.reshape(-1, 30522), labels.reshape(-1))
    torch.testing.assert_close(sparse.loss, dense_loss, atol=1e-5, rtol=0)
    nothing = model(**batch, labels=torch.full_like(labels, -100))
    assert nothing.loss.item() == 0.0 and nothing.logits.shape == (0, 30522)
    with pytest.raises(ValueError, match="labels"):
        model(**batch, labels=torch.where(labels == 7, 40000, labels))


def test_mlm_output_layer_is_not_tied():
    model = EELBertForMaskedLM(small_config())
    decoder = model.get_output_embeddings()
    assert decoder.weight.shape == (30522, 32) and decoder.weight.requires_grad
    assert all(decoder.weight is not p for n, p in model.bert.named_parameters())


def test_save_load_is_bit_exact(tmp_path, batch):
    model = EELBertForMaskedLM(small_config()).eval()
    model.save_pretrained(tmp_path)
    loaded = EELBertForMaskedLM.from_pretrained(tmp_path).eval()
    saved, got = model.state_dict(), loaded.state_dict()
    assert saved.keys() == got.keys()
    for name in saved:
        assert torch.equal(saved[name], got[name]), name
    for name, buf in model.named_buffers():
        assert torch.equal(buf, dict(loaded.named_buffers())[name]), name
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, rtol=0, atol=0)


def test_random_hash_has_no_morphology(tokenizer):
    from eelbert_hf import EELBertTokenizer
    from eelbert_hf.loading import check_compatible

    whole = EELBertTokenizer.from_bundled_vocab(feature_type="whole_token")
    enc = whole(["running runner"], return_tensors="pt")
    assert ((enc["ngram_ids"] != 0).sum(-1) == 1).all()  # one atom per token
    run, running = whole.token_ngram_ids("run"), whole.token_ngram_ids("running")
    assert not set(run) & set(running)
    model = EELBertModel(small_config(embedding_type="random_hash")).eval()
    assert model(**enc).last_hidden_state.shape == (1, 4, 32)
    check_compatible(model.config, whole)
    with pytest.raises(ValueError, match="feature_type"):
        check_compatible(model.config, tokenizer)
    with pytest.raises(ValueError, match="feature_type"):
        check_compatible(small_config(), whole)
