"""ONNX export (eelbert_hf.packaging.onnx_export, `eelbert export --onnx`): onnxruntime parity with torch, the embedding
computed inside the graph, and the int8 variant's size and accuracy report."""

import json
import os

import numpy as np
import pytest
import torch
from conftest import SENTENCES, small_config

from eelbert_hf import EELBertForMaskedLM, EELBertForSequenceClassification

onnx = pytest.importorskip("onnx", reason="the `test` extra installs onnx; without it ONNX export cannot run")
pytest.importorskip("onnxruntime", reason="the `test` extra installs onnxruntime; it runs the exported graphs")
pytest.importorskip("onnxscript", reason="the `test` extra installs onnxscript; torch.onnx.export(dynamo=True) needs it")

from eelbert_hf.loading import BUNDLED_CLASSIFIER, DATA_DIR, load_checkpoint  # noqa: E402
from eelbert_hf.packaging import onnx_export  # noqa: E402
from eelbert_hf.apps.cli import main  # noqa: E402

RT_SAMPLE = os.path.join(DATA_DIR, "rt_sample_validation.jsonl")


def gated_model(model_class, **overrides):
    """A small random model whose learned n-gram gates are non-zero (so they matter in the graph)."""
    torch.manual_seed(0)
    model = model_class(small_config(ngram_weight_buckets=64, **overrides)).eval()
    with torch.no_grad():
        model.base_model.embeddings.ngram_embeddings.bucket_weights.normal_(0.0, 0.01)
    return model


@pytest.fixture(scope="module")
def classifier_onnx(tmp_path_factory, tokenizer):
    model = gated_model(EELBertForSequenceClassification, num_labels=3, type_vocab_size=2)
    path = onnx_export.export_onnx(model, tokenizer, str(tmp_path_factory.mktemp("onnx") / "model.onnx"))
    return model, path


def test_classifier_matches_torch_on_new_shapes(classifier_onnx, tokenizer):
    model, path = classifier_onnx
    # batch and length differ from the export example (dynamic axes); a sentence pair uses token_type_ids = 1
    encoded = tokenizer(SENTENCES + ["a", "a much longer sentence than any of the examples the graph was traced on"],
                        ["second segment"] * 5, padding=True, return_tensors="pt")
    assert encoded["token_type_ids"].max() == 1 and encoded["input_ids"].shape[0] == 5
    with torch.no_grad():
        expected = model(**encoded).logits.numpy()
    got = onnx_export.run_onnx(onnx_export.onnx_session(path), encoded)
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() <= 1e-4
    assert onnx_export.parity(model, tokenizer, path) <= 1e-4


def test_graph_computes_the_embedding_from_ngram_ids(classifier_onnx, tokenizer):
    model, path = classifier_onnx
    graph = onnx.load(path).graph
    assert [i.name for i in graph.input] == list(onnx_export.ONNX_INPUTS)
    assert [o.name for o in graph.output] == ["logits"]
    ops = {node.op_type for node in graph.node}
    # (a_j * id + b_j) mod P inside the graph, as the Mersenne reduction (no Mod left: the gates' mod 2**k is a mask)
    assert {"BitShift", "Min", "BitwiseAnd"} <= ops and "Mod" not in ops
    # no vocabulary-sized table: the largest float initialiser is the position table (512 x d)
    sizes = [int(np.prod(i.dims)) for i in graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    assert max(sizes) <= model.config.max_position_embeddings * model.config.hidden_size
    assert not any(node.metadata_props for node in graph.node)  # stack traces with local paths are stripped
    # different n-gram ids, same input_ids: the output follows the n-gram ids
    encoded = tokenizer(["running fast"], return_tensors="np")
    session = onnx_export.onnx_session(path)
    changed = dict(encoded, ngram_ids=np.where(encoded["ngram_ids"] > 0, encoded["ngram_ids"] + 1, 0))
    assert np.abs(onnx_export.run_onnx(session, encoded) - onnx_export.run_onnx(session, changed)).max() > 1e-6


class _Reference(torch.nn.Module):
    def __init__(self, ngram_embeddings):
        super().__init__()
        self.ngram_embeddings = ngram_embeddings

    def forward(self, ngram_ids):
        return self.ngram_embeddings.reference(ngram_ids)


GATED_TOLERANCE = 1e-6  # float64 sums in two orders, rounded to float32: about one float32 rounding of O(1) values


def test_graph_embedding_is_within_one_rounding_of_torch_with_learned_gates(tmp_path, tokenizer):
    # the learned gates make the summands non-integers; both sum them in float64 (in different orders) and round
    # once to float32, so the graph and torch differ by about that rounding
    ngram_embeddings = gated_model(EELBertForMaskedLM).base_model.embeddings.ngram_embeddings
    path, sample = str(tmp_path / "embedding.onnx"), tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    dims = {"ngram_ids": {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}}
    with torch.no_grad():
        torch.onnx.export(_Reference(ngram_embeddings), (sample["ngram_ids"],), path, input_names=["ngram_ids"],
                          dynamic_shapes=dims, dynamo=True, external_data=False, verbose=False)
    session = onnx_export.onnx_session(path)
    padded = tokenizer(SENTENCES + ["a much longer sentence than any of the examples"], padding=True,
                       return_tensors="np")["ngram_ids"]
    for ngram_ids in (padded, padded[:1, :2], np.zeros((2, 3, padded.shape[-1]), dtype=np.int64)):
        with torch.no_grad():
            expected = ngram_embeddings.reference(torch.from_numpy(ngram_ids)).numpy()
        assert np.abs(session.run(None, {"ngram_ids": ngram_ids})[0] - expected).max() <= GATED_TOLERANCE


def test_masked_lm_matches_torch(tmp_path, tokenizer):
    model = gated_model(EELBertForMaskedLM)
    path = onnx_export.export_onnx(model, tokenizer, str(tmp_path / "mlm.onnx"))
    assert [o.name for o in onnx.load(path).graph.output] == ["logits"]
    assert onnx_export.parity(model, tokenizer, path, SENTENCES) <= 1e-4


def test_codebook_and_mean_pooling_model_matches_torch(tmp_path, tokenizer):
    """The n-gram codebook and mean pooling are computed inside the graph (single and split export), so ONNX and
    the JS runtime that runs these graphs carry them."""
    model = gated_model(EELBertForSequenceClassification, num_labels=2, ngram_codebook_buckets=128,
                        ngram_codebook_dim=4, classifier_pooling="mean")
    with torch.no_grad():
        model.bert.embeddings.ngram_embeddings.codebook_map.normal_()  # non-zero: the codebook changes the logits
    path = onnx_export.export_onnx(model, tokenizer, str(tmp_path / "codebook.onnx"))
    assert onnx_export.parity(model, tokenizer, path, SENTENCES) <= 1e-4
    tokens_path, model_path = onnx_export.export_split(model, tokenizer, str(tmp_path / "split"))
    assert onnx_export.split_parity(model, tokenizer, tokens_path, model_path, SENTENCES) <= 1e-4


@pytest.mark.parametrize("gated", [False, True], ids=["spec", "gated"])
def test_multithreaded_onnxruntime_gives_torchs_embeddings_every_time(tmp_path, tokenizer, gated):
    """onnxruntime's multi-threaded ScatterND with reduction=add loses updates when indices repeat (a token's sum
    comes out wrong, differently each run), so the graph sums each token's n-grams without it; many padded texts on
    4 threads, run after run, give torch's embeddings."""
    torch.manual_seed(0)
    model = gated_model(EELBertForMaskedLM, hidden_size=128) if gated else \
        EELBertForMaskedLM(small_config(hidden_size=128)).eval()
    ngram_embeddings = model.base_model.embeddings.ngram_embeddings
    path, sample = str(tmp_path / "embedding.onnx"), tokenizer(SENTENCES[:2], padding=True, return_tensors="pt")
    dims = {"ngram_ids": {0: torch.export.Dim("batch"), 1: torch.export.Dim("sequence")}}
    with torch.no_grad():
        torch.onnx.export(_Reference(ngram_embeddings), (sample["ngram_ids"],), path, input_names=["ngram_ids"],
                          dynamic_shapes=dims, dynamo=True, external_data=False, verbose=False)
    assert not [node for node in onnx.load(path).graph.node if node.op_type in ("ScatterND", "ScatterElements")]
    with open(RT_SAMPLE, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][:256]
    ngram_ids = tokenizer(texts, padding=True, truncation=True, max_length=64, return_tensors="np")["ngram_ids"]
    with torch.no_grad():
        expected = ngram_embeddings.reference(torch.from_numpy(ngram_ids)).numpy()
    session = onnx_export.onnx_session(path, threads=4)
    first = session.run(None, {"ngram_ids": ngram_ids})[0]
    if gated:
        assert np.abs(first - expected).max() <= GATED_TOLERANCE
    else:  # integer sums: torch's bits
        assert np.array_equal(first.view(np.int32), expected.view(np.int32))
    for _ in range(4):
        assert np.array_equal(session.run(None, {"ngram_ids": ngram_ids})[0].view(np.int32), first.view(np.int32))


def test_table_models_are_refused(tmp_path, tokenizer):
    model = EELBertForSequenceClassification(small_config(embedding_type="table"))
    with pytest.raises(ValueError, match="embedding_type='dynamic'"):
        onnx_export.export_onnx(model, tokenizer, str(tmp_path / "table.onnx"))


def test_export_command_writes_float32_and_int8_uno(tmp_path, capsys):
    # the bundled UNO classifier: trained, so its accuracy on RT_SAMPLE is a number torch computes on its own
    model, tokenizer = load_checkpoint(BUNDLED_CLASSIFIER)
    out = tmp_path / "out"
    main(["export", "bundled", str(out), "--onnx", "--quantize"])
    printed = capsys.readouterr().out
    fp32, int8 = out / "onnx" / "model.onnx", out / "onnx" / "model_quantized.onnx"
    assert os.path.getsize(int8) <= 0.5e6  # the goal: UNO int8 ONNX <= 0.5 MB
    assert os.path.getsize(int8) < 0.4 * os.path.getsize(fp32)
    assert (out / "model.safetensors").exists()  # the Hub folder is written as before
    # the int8 model stays close to torch
    session = onnx_export.onnx_session(str(int8))
    encoded = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        expected = model(**encoded).logits.numpy()
    assert np.abs(onnx_export.run_onnx(session, encoded) - expected).max() < 0.05
    # the accuracies printed are those of torch's predictions on the eval file: float32 exactly, int8 within 1 point
    rows = [json.loads(line) for line in open(RT_SAMPLE, encoding="utf-8")]
    with torch.no_grad():
        predicted = model(**tokenizer([r["text"] for r in rows], padding=True, truncation=True, max_length=128,
                                      return_tensors="pt")).logits.argmax(-1).tolist()
    torch_accuracy = sum(p == r["label"] for p, r in zip(predicted, rows)) / len(rows)
    assert torch_accuracy > 0.7  # a trained model (0.747 on the whole validation split): chance would not match it
    assert onnx_export.accuracy(onnx_export.onnx_session(str(fp32)), tokenizer, RT_SAMPLE) == torch_accuracy
    int8_accuracy = onnx_export.accuracy(session, tokenizer, RT_SAMPLE)
    assert int8_accuracy == pytest.approx(torch_accuracy, abs=0.01)
    float32_line, int8_line = (next(line for line in printed.splitlines() if f"MB {kind}" in line)
                               for kind in ("float32", "int8"))
    assert float32_line.endswith(f", accuracy {torch_accuracy:.4f}")
    assert int8_line.startswith(f"{int8}: {os.path.getsize(int8) / 1e6:.3f} MB int8")
    assert int8_line.endswith(f", accuracy {int8_accuracy:.4f} ({100 * (int8_accuracy - torch_accuracy):+.2f} points)")


def test_onnx_export_of_an_mlm_checkpoint_as_an_encoder_stays_small(tmp_path):
    from eelbert_hf import EELBertConfig, EELBertForMaskedLM, EELBertTokenizer

    checkpoint, out = tmp_path / "mlm", tmp_path / "encoder"
    EELBertForMaskedLM(EELBertConfig.from_preset("uno")).save_pretrained(checkpoint)
    EELBertTokenizer.from_bundled_vocab().save_pretrained(checkpoint)
    main(["export", str(checkpoint), str(out), "--head", "feature-extraction", "--onnx"])
    assert os.path.getsize(out / "onnx" / "model.onnx") <= 1.3e6  # no 30,522-row output layer in the graph


def test_mersenne_reduction_is_mod_p_over_the_whole_input_range():
    # the rewrite of Mod(x, 2**31 - 1) is exact for x < 2**62 - 2**32: every (a_j * id + b_j) with a_j, b_j < P and
    # ids <= MAX_NGRAM_ID, extremes included; Mod(x, 2**k) -> x & (2**k - 1) is floor-mod for every int64
    from onnx import TensorProto, helper, numpy_helper

    from eelbert_hf.modeling.ngram_hashing import HASH_PRIME, MAX_NGRAM_ID

    graph = helper.make_graph(
        [helper.make_node("Mod", ["x", "p"], ["by_p"]), helper.make_node("Mod", ["x", "k"], ["by_k"])], "mods",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["n"])],
        [helper.make_tensor_value_info(name, TensorProto.INT64, ["n"]) for name in ("by_p", "by_k")],
        [numpy_helper.from_array(np.array(HASH_PRIME, np.int64), "p"), numpy_helper.from_array(np.array(4096, np.int64), "k")])
    onnx_export._cheaper_mods(graph)
    assert "Mod" not in {node.op_type for node in graph.node} and len(graph.initializer) == 3  # p, k dropped
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 20)])
    import onnxruntime

    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    ids = [0, 1, 2, HASH_PRIME - 2, MAX_NGRAM_ID, 2**30, *rng.integers(0, MAX_NGRAM_ID + 1, 2000).tolist()]
    a_s = [1, 2, HASH_PRIME - 1, 2**30, *rng.integers(1, HASH_PRIME, 50).tolist()]
    b_s = [0, 1, HASH_PRIME - 1, *rng.integers(0, HASH_PRIME, 50).tolist()]
    xs = sorted({a * i + b for a in a_s for i in ids[:20] for b in b_s} | {a_s[j % 54] * i + b_s[j % 53]
                                                                          for j, i in enumerate(ids)})
    assert max(xs) == (HASH_PRIME - 1) * MAX_NGRAM_ID + HASH_PRIME - 1  # the largest input the hash can make
    by_p, by_k = session.run(None, {"x": np.array(xs, dtype=np.int64)})
    assert by_p.tolist() == [x % HASH_PRIME for x in xs]
    assert by_k.tolist() == [x % 4096 for x in xs]
    negative = np.array([-1, -4096, -4097, -(2**63)], dtype=np.int64)
    assert session.run(None, {"x": negative})[1].tolist() == [x % 4096 for x in negative.tolist()]


@pytest.fixture(scope="module")
def golden_model_split(tmp_path_factory, tokenizer):
    """A classifier with the golden file's embedding constants (d = 8, seed 0), exported as one graph and as two."""
    torch.manual_seed(0)
    model = EELBertForSequenceClassification(small_config(hidden_size=8, num_attention_heads=2, ngram_seed=0)).eval()
    folder = tmp_path_factory.mktemp("split")
    single = onnx_export.export_onnx(model, tokenizer, str(folder / "model.onnx"))
    return model, single, *onnx_export.export_split(model, tokenizer, str(folder))


def test_token_embeddings_graph_has_the_golden_bits(golden_model_split):
    from test_hash_spec import GOLDEN, golden_bits

    _, _, tokens_path, _ = golden_model_split
    session = onnx_export.onnx_session(tokens_path)
    assert [i.name for i in session.get_inputs()] == ["ngram_ids"]
    cases = GOLDEN["embeddings"]
    width = GOLDEN["params"]["max_ngrams_per_token"]
    rows = np.array([case["ngram_ids"] + [0] * (width - len(case["ngram_ids"])) for case in cases], dtype=np.int64)
    got = session.run(None, {"ngram_ids": rows})[0]
    assert got.shape == (len(cases), 8)
    for case, values in zip(cases, got):
        assert np.array_equal(values.view(np.uint32), golden_bits(case)), case["token"]


def test_two_graphs_compute_what_the_single_graph_computes(golden_model_split, tokenizer, tmp_path):
    # float32 and int8: the same logits bit for bit, since the token embeddings are (tested above) and the rest is the
    # same graph; int8 quantises the same weights and sees the same activations
    model, single, tokens_path, split_path = golden_model_split
    encoded = tokenizer(SENTENCES + ["a much longer sentence than any of the examples the graph was traced on"],
                        padding=True, return_tensors="np")
    tokens = onnx_export.onnx_session(tokens_path)
    assert np.array_equal(onnx_export.run_onnx(onnx_export.onnx_session(single), encoded),
                          onnx_export.run_split(tokens, onnx_export.onnx_session(split_path), encoded))
    single_int8 = onnx_export.quantize_onnx(single, str(tmp_path / "single_int8.onnx"))
    split_int8 = onnx_export.quantize_onnx(split_path, str(tmp_path / "split_int8.onnx"))
    assert np.array_equal(onnx_export.run_onnx(onnx_export.onnx_session(single_int8), encoded),
                          onnx_export.run_split(tokens, onnx_export.onnx_session(split_int8), encoded))
    with torch.no_grad():
        expected = model(**tokenizer(SENTENCES, padding=True, return_tensors="pt")).logits.numpy()
    assert onnx_export.split_parity(model, tokenizer, tokens_path, split_path, SENTENCES) <= 1e-5
    assert np.abs(expected).max() > 1e-3  # logits that are not all zero: the comparison above says something


def test_token_embeddings_graph_matches_torch_from_every_weight_dtype(tmp_path, tokenizer):
    # learned gates, weights saved in float32 / float16 / bfloat16: export computes the embedding in float32 (the gates
    # upcast), so the graph's bits are those of reference() on the upcast model, for ids anywhere in the spec's range
    from eelbert_hf.modeling.ngram_hashing import MAX_NGRAM_ID

    rows = np.random.default_rng(1).integers(0, MAX_NGRAM_ID + 1, (40, small_config().max_ngrams_per_token))
    rows[:, 30:] = 0  # empty slots, as the tokenizer pads
    rows[0, :3], rows[1, :] = [1, MAX_NGRAM_ID, MAX_NGRAM_ID - 1], 0  # the extreme ids; a token with no n-gram
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        model = gated_model(EELBertForSequenceClassification).to(dtype)
        tokens_path, _ = onnx_export.export_split(model, tokenizer, str(tmp_path / str(dtype)))
        ngram_embeddings = model.base_model.embeddings.ngram_embeddings
        assert ngram_embeddings.bucket_weights.dtype == torch.float32  # export upcast it
        with torch.no_grad():
            expected = ngram_embeddings.reference(torch.from_numpy(rows)).numpy()
        got = onnx_export.onnx_session(tokens_path).run(None, {"ngram_ids": rows})[0]
        assert np.array_equal(got.view(np.int32), expected.view(np.int32)), dtype
        assert np.abs(expected[1]).max() == 0 and np.abs(expected).max() > 0.01
