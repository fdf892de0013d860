"""The hash path on every device and under mixed precision: the n-gram hash is integer arithmetic (int64 on the
device) and the pooled sum stays float32 under autocast, so the token embeddings are bit-identical on CPU and CUDA,
with and without autocast, cached or not, eager or compiled; `--bf16` / `--fp16` / `--torch_compile` pretraining runs.

Each test takes a `device`: CPU always, CUDA when torch sees a GPU (`benchmarks/gpu_check.sh` runs this file there).
"""

import json
import os

import pytest
import torch

import eelbert_hf
from conftest import SENTENCES, small_config
from eelbert_hf import EELBertConfig, EELBertForMaskedLM
from eelbert_hf.apps.arguments import parse_training_args
from eelbert_hf.modeling.ngram_embedding import DynamicNgramEmbeddings
from eelbert_hf.training import TrainerCallback, pretrain
from test_hash_spec import spec_embedding_numpy

TEXT = os.path.join(os.path.dirname(eelbert_hf.__file__), "data", "brown_sample.txt")
NEEDS_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here (torch.cuda.is_available() "
                                "is False); benchmarks/gpu_check.sh runs these cases on one")
DEVICES = ["cpu", pytest.param("cuda", marks=NEEDS_CUDA)]
# (device, autocast dtype): CPU and CUDA autocast to bfloat16 and float16
AUTOCASTS = [pytest.param("cpu", torch.bfloat16, id="cpu-bf16"), pytest.param("cpu", torch.float16, id="cpu-fp16"),
             pytest.param("cuda", torch.float16, marks=NEEDS_CUDA, id="cuda-fp16"),
             pytest.param("cuda", torch.bfloat16, marks=NEEDS_CUDA, id="cuda-bf16")]
SLOW_ON_CPU = ("inductor takes about 100 s to compile the whole model on a 2-core CPU; set EELBERT_SLOW_TESTS=1 to "
               "run it")


def ngram_batch(tokenizer, device):
    """SENTENCES and a few long words (many n-grams per token), padded: (input_ids, ngram_ids) on `device`."""
    texts = SENTENCES + ["antidisestablishmentarianism and pneumonoultramicroscopic words", "x"]
    encoded = tokenizer(texts, padding=True, return_tensors="pt")
    return encoded["input_ids"].to(device), encoded["ngram_ids"].to(device)


@pytest.mark.parametrize("device", DEVICES)
def test_token_embeddings_are_bit_identical_on_every_device_cached_or_not(tokenizer, device):
    config = EELBertConfig.from_preset("tiny")
    module = DynamicNgramEmbeddings(config)
    _, ngram_ids = ngram_batch(tokenizer, "cpu")
    on_cpu = module.reference(ngram_ids)
    module.to(device)
    reference = module.reference(ngram_ids.to(device))
    first, second = module(ngram_ids.to(device)), module(ngram_ids.to(device))  # cache miss, then hit
    for output in (reference, first, second):
        assert output.device.type == device and output.dtype == torch.float32
        assert torch.equal(output.cpu(), on_cpu)  # every bit: the hash is exact integer arithmetic everywhere
    # and those bits are the spec's (its numpy implementation), not an agreement on, say, zeros
    assert torch.equal(on_cpu, torch.from_numpy(spec_embedding_numpy(ngram_ids.numpy(), config.hidden_size,
                                                                     config.ngram_seed)))


@pytest.mark.parametrize("device,dtype", AUTOCASTS)
def test_token_embeddings_stay_exact_float32_under_autocast(tokenizer, device, dtype):
    torch.manual_seed(0)
    model = EELBertForMaskedLM(small_config()).to(device).eval()
    input_ids, ngram_ids = ngram_batch(tokenizer, device)
    embeddings = model.bert.embeddings
    with torch.no_grad():
        reference = embeddings.token_embeddings(input_ids, ngram_ids)
        full = model(input_ids=input_ids, ngram_ids=ngram_ids).logits
        seen = []
        hook = model.bert.encoder.layer[0].attention.self.query.register_forward_hook(
            lambda module, args, output: seen.append(output.dtype))
        with torch.autocast(device, dtype=dtype):
            autocast = embeddings.token_embeddings(input_ids, ngram_ids)
            autocast_cached = embeddings.token_embeddings(input_ids, ngram_ids)
            mixed = model(input_ids=input_ids, ngram_ids=ngram_ids).logits
        hook.remove()
    assert seen == [dtype]  # autocast is on: the encoder's matmuls ran in low precision
    for output in (autocast, autocast_cached):
        assert output.dtype == torch.float32 and torch.equal(output, reference)  # the hash path did not
    assert mixed.dtype == dtype and torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed.float(), full, atol=0.1, rtol=0.05)  # the low-precision encoder, nearly


@pytest.mark.parametrize("device", DEVICES)
def test_compiled_token_embeddings_are_bit_identical(tokenizer, device):
    module = DynamicNgramEmbeddings(EELBertConfig.from_preset("uno")).to(device)
    _, ngram_ids = ngram_batch(tokenizer, device)
    reference = module.reference(ngram_ids)
    compiled = torch.compile(module)
    assert torch.equal(compiled(ngram_ids), reference)
    with torch.autocast(device, dtype=torch.bfloat16):
        under_autocast = compiled(ngram_ids)
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, reference)


class RecordDtypes(TrainerCallback):
    """During training, notes the output dtypes of the token-embedding module and of the first attention query."""

    def __init__(self):
        self.seen = {"ngram": set(), "query": set()}

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        record = lambda name: (lambda module, inputs, output: self.seen[name].add(output.dtype))  # noqa: E731
        model.bert.embeddings.ngram_embeddings.register_forward_hook(record("ngram"))
        model.bert.encoder.layer[0].attention.self.query.register_forward_hook(record("query"))


def losses(trainer):
    return [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]


RUN = ["--train_files", TEXT, "--max_train_samples", "1500", "--preset", "uno", "--max_seq_length", "32",
       "--per_device_train_batch_size", "8", "--report_to", "none", "--disable_tqdm", "true", "--logging_steps", "1",
       "--seed", "3", "--eval_strategy", "no", "--save_strategy", "no", "--learning_rate", "3e-3"]
PRECISIONS = [("cpu", "bf16"), pytest.param("cuda", "bf16", marks=NEEDS_CUDA),
              pytest.param("cuda", "fp16", marks=NEEDS_CUDA)]


@pytest.mark.parametrize("device,precision", PRECISIONS)
def test_mixed_precision_pretraining_runs_and_learns(tmp_path, device, precision):
    recorder = RecordDtypes()
    cpu = ["--use_cpu", "true"] if device == "cpu" else []
    trainer = pretrain(*parse_training_args("pretrain", [*RUN, f"--{precision}", "true", "--max_steps", "24", *cpu,
                                                         "--output_dir", str(tmp_path)]), callbacks=[recorder])
    assert trainer.args.device.type == device
    low = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert recorder.seen == {"ngram": {torch.float32}, "query": {low}}  # exact hash path, low-precision encoder
    curve = losses(trainer)
    assert len(curve) == 24 and all(map(lambda x: x == x and abs(x) < 1e4, curve))  # finite
    assert sum(curve[-6:]) / 6 < sum(curve[:6]) / 6 - 0.3  # and falling
    history = json.load(open(os.path.join(str(tmp_path), "trainer_state.json"), encoding="utf-8"))["log_history"]
    assert all(entry.get("tokens_per_s", 0) > 0 for entry in history if "loss" in entry)


@pytest.mark.parametrize("device", DEVICES)
def test_torch_compile_pretraining_matches_eager(tmp_path, device):
    if device == "cpu" and os.environ.get("EELBERT_SLOW_TESTS") != "1":
        pytest.skip(SLOW_ON_CPU)
    cpu = ["--use_cpu", "true"] if device == "cpu" else []
    runs = {}
    for compiled in (False, True):
        runs[compiled] = losses(pretrain(*parse_training_args("pretrain", [
            *RUN, "--max_steps", "4", "--torch_compile", str(compiled).lower(), *cpu,
            "--output_dir", str(tmp_path / str(compiled))])))
    assert len(runs[True]) == 4
    assert runs[True] == pytest.approx(runs[False], rel=2e-3)  # the same model and data: the same losses
