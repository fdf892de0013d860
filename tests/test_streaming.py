"""Streaming pretraining (`eelbert pretrain --streaming`): blocks packed on the fly, shuffle buffer, passes, resume
mid-stream, gradient accumulation, tokens/s in the logs, and two gloo processes reading disjoint shards."""

import glob
import json
import os
import random
import subprocess
import sys

import datasets
import pytest
import torch

import eelbert_hf
from conftest import CrashAt
from eelbert_hf import EELBertForMaskedLM
from eelbert_hf.apps.arguments import parse_training_args
from eelbert_hf.apps.cli import main, run
from eelbert_hf.training import DataArguments, load_raw_datasets, mlm_blocks, mlm_stream, pretrain

TEXT = os.path.join(os.path.dirname(eelbert_hf.__file__), "data", "brown_sample.txt")
SMALL_RUN = ["--preset", "uno", "--max_seq_length", "32", "--per_device_train_batch_size", "8", "--report_to",
             "none", "--disable_tqdm", "true", "--logging_steps", "1", "--seed", "3"]


def ids(dataset):
    return [list(row["input_ids"]) for row in dataset]


def test_a_stream_cuts_the_map_paths_blocks_shuffles_them_and_caches_nothing(tokenizer, tmp_path, monkeypatch):
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
    common = dict(train_files=[TEXT], max_seq_length=32, max_train_samples=3000)
    in_order = DataArguments(**common, streaming=True, shuffle_buffer_size=0, validation_files=[TEXT],
                             max_eval_samples=40)
    stream, evaluation = mlm_stream(load_raw_datasets(in_order, split_for_eval=True), tokenizer, in_order, seed=0)
    assert isinstance(stream, datasets.IterableDataset)
    streamed = ids(stream)
    assert not glob.glob(str(tmp_path / "cache" / "**" / "*.arrow"), recursive=True)  # nothing written up front
    assert len(evaluation) == 40  # the first --max_eval_samples blocks of the validation stream
    whole = DataArguments(**common, validation_split_percentage=0)
    blocks = ids(mlm_blocks(load_raw_datasets(whole, split_for_eval=True), tokenizer, whole)["train"])
    assert streamed == blocks and len(blocks) > 100  # the same blocks, in the file's order
    assert all(len(b) == 32 and b[0] == tokenizer.cls_token_id and b[-1] == tokenizer.sep_token_id for b in blocks[:-1])
    shuffled_args = DataArguments(**common, streaming=True, shuffle_buffer_size=64)
    shuffled = ids(mlm_stream(load_raw_datasets(shuffled_args, True), tokenizer, shuffled_args, seed=0)[0])
    assert shuffled != streamed and sorted(shuffled) == sorted(streamed)  # every block once, in another order
    again = ids(mlm_stream(load_raw_datasets(shuffled_args, True), tokenizer, shuffled_args, seed=0)[0])
    assert again == shuffled  # the buffer is seeded
    wrong = DataArguments(**common, streaming=True, text_column="body")
    with pytest.raises(ValueError, match="no column 'body'"):
        mlm_stream(load_raw_datasets(wrong, True), tokenizer, wrong, seed=0)


def test_streaming_needs_max_steps_and_is_for_pretraining_only(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run(["pretrain", "--streaming", "true", "--train_files", TEXT, "--output_dir", str(tmp_path)])
    assert exit_info.value.code == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("eelbert: error:")]
    assert len(errors) == 1 and "--streaming needs --max_steps" in errors[0]  # one readable line
    with pytest.raises(ValueError, match="--streaming is for `eelbert pretrain`"):
        parse_training_args("finetune", ["--streaming", "true", "--train_files", TEXT, "--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="--shuffle_buffer_size must be >= 0"):
        pretrain(*parse_training_args("pretrain", ["--streaming", "true", "--train_files", TEXT, "--max_steps", "1",
                                                   "--shuffle_buffer_size", "-1", "--output_dir", str(tmp_path)]))


def loss_at(output_dir, step):
    state = json.load(open(os.path.join(output_dir, "trainer_state.json"), encoding="utf-8"))
    return next(entry["loss"] for entry in state["log_history"] if entry.get("step") == step and "loss" in entry)


def test_resume_mid_stream_with_gradient_accumulation_matches_an_uninterrupted_run(tmp_path):
    # 6 steps x 2 micro-batches x 8 blocks of the first 2,000 lines' blocks: checkpoint at 3, crash during 5
    common = ["--streaming", "true", "--train_files", TEXT, "--max_train_samples", "2000", "--max_steps", "6",
              "--gradient_accumulation_steps", "2", "--save_steps", "3", "--shuffle_buffer_size", "200", *SMALL_RUN]
    straight, crashed = str(tmp_path / "straight"), str(tmp_path / "crashed")
    main(["pretrain", "--output_dir", straight, *common])
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(*parse_training_args("pretrain", ["--output_dir", crashed, *common]), callbacks=[CrashAt(5)])
    assert sorted(os.listdir(crashed)) == ["checkpoint-3"]
    main(["pretrain", "--output_dir", crashed, "--resume", "true", *common])
    for step in (4, 5, 6):  # the resumed run reads on from block 48 of the same shuffled stream, masked alike
        assert loss_at(crashed, step) == pytest.approx(loss_at(straight, step), abs=1e-5)
    straight_weights = EELBertForMaskedLM.from_pretrained(straight).state_dict()
    for name, tensor in EELBertForMaskedLM.from_pretrained(crashed).state_dict().items():
        torch.testing.assert_close(tensor, straight_weights[name], atol=1e-5, rtol=0)
    history = json.load(open(os.path.join(straight, "trainer_state.json"), encoding="utf-8"))["log_history"]
    steps = [entry for entry in history if "loss" in entry]
    assert [entry["step"] for entry in steps] == [1, 2, 3, 4, 5, 6]
    assert all(entry["tokens_per_s"] > 0 for entry in steps)  # the throughput of every logged step
    # Trainer's token count: 2 micro-batches of 8 blocks of at most 32 tokens per step
    assert [entry["num_input_tokens_seen"] for entry in steps][-1] <= 6 * 2 * 8 * 32
    assert steps[-1]["num_input_tokens_seen"] > 0.95 * 6 * 2 * 8 * 32


def test_ignore_data_skip_resumes_from_the_saved_stream_position(tmp_path, monkeypatch):
    collated = []
    collate = eelbert_hf.training.DataCollatorForEELBertMLM.__call__

    def record(self, features, return_tensors=None):
        collated.append([list(f["input_ids"]) for f in features])
        return collate(self, features, return_tensors)

    monkeypatch.setattr(eelbert_hf.training.DataCollatorForEELBertMLM, "__call__", record)
    common = ["--streaming", "true", "--train_files", TEXT, "--max_train_samples", "2000", "--max_steps", "6",
              "--save_steps", "3", "--shuffle_buffer_size", "0", "--eval_strategy", "no", "--ignore_data_skip",
              "true", *SMALL_RUN]
    out = str(tmp_path / "fast")
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(*parse_training_args("pretrain", ["--output_dir", out, *common]), callbacks=[CrashAt(5)])
    first_run, collated[:] = list(collated), []
    assert os.path.exists(os.path.join(out, "checkpoint-3", "stream_state-rank0.json"))
    trainer = pretrain(*parse_training_args("pretrain", ["--output_dir", out, "--resume", "true", *common]))
    assert trainer.state.global_step == 6
    # no replay: the resumed run's first batch is the stream's fifth (3 trained, 1 fetched ahead at the checkpoint)
    assert collated[0] == first_run[4] and len(collated) <= 4
    with pytest.raises(ValueError, match="--dataloader_num_workers 0"):
        pretrain(*parse_training_args("pretrain", ["--output_dir", out, *common, "--dataloader_num_workers", "2"]))


def test_a_short_stream_is_read_again_with_new_masks(tmp_path):
    # 30 lines make 30 blocks, 4 batches of at most 8: 12 steps take 3 passes
    trainer = pretrain(*parse_training_args("pretrain", [
        "--streaming", "true", "--train_files", TEXT, "--max_train_samples", "30", "--max_steps", "12",
        "--save_strategy", "no", "--output_dir", str(tmp_path), *SMALL_RUN]))
    assert trainer.state.global_step == 12
    assert trainer.data_collator.epoch == 2  # the third pass masks for epoch 2


def test_resume_after_the_stream_wrapped_begins_that_pass_again(tmp_path):
    # 4 batches a pass: the checkpoint at step 6 lies 2 batches into the second pass
    common = ["--streaming", "true", "--train_files", TEXT, "--max_train_samples", "30", "--max_steps", "10",
              "--save_steps", "6", "--eval_strategy", "no", *SMALL_RUN]
    out = str(tmp_path / "wrapped")
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(*parse_training_args("pretrain", ["--output_dir", out, *common]), callbacks=[CrashAt(7)])
    trainer = pretrain(*parse_training_args("pretrain", ["--output_dir", out, "--resume", "true", *common]))
    assert trainer.state.global_step == 10  # it trains on to --max_steps (no empty-epoch stop)
    assert trainer.data_collator.epoch == 1  # steps 7-10: the second pass from its first batch


WORDS_A = ["river", "mountain", "forest", "valley", "ocean", "island", "desert", "meadow", "canyon", "glacier"]
WORDS_B = ["seven", "eight", "twelve", "twenty", "thirty", "forty", "fifty", "hundred", "thousand", "million"]
RECORDING_DRIVER = """
import json, os, sys
from eelbert_hf import training
from eelbert_hf.apps.cli import main

collate = training.DataCollatorForEELBertMLM.__call__


def record(self, features, return_tensors=None):  # every block this process collates, before masking
    with open(os.path.join(sys.argv[1], f"rank{os.environ['RANK']}.jsonl"), "a", encoding="utf-8") as f:
        for feature in features:
            f.write(json.dumps(list(feature["input_ids"])) + "\\n")
    return collate(self, features, return_tensors)


training.DataCollatorForEELBertMLM.__call__ = record
main(["pretrain", *sys.argv[2:]])
"""


def test_two_processes_read_disjoint_shards(tmp_path, tokenizer):
    rng = random.Random(0)
    files = []
    for name, words in (("a", WORDS_A), ("b", WORDS_B)):
        path = tmp_path / f"shard-{name}.txt"
        path.write_text("\n".join(" ".join(rng.choices(words, k=12)) for _ in range(300)) + "\n", encoding="utf-8")
        files.append(str(path))
    vocab = {name: set(tokenizer(" ".join(words), add_special_tokens=False)["input_ids"])
             for name, words in (("a", WORDS_A), ("b", WORDS_B))}
    assert len(vocab["a"]) == len(vocab["b"]) == 10 and not vocab["a"] & vocab["b"]  # one token per word
    driver, out, seen = tmp_path / "driver.py", str(tmp_path / "ddp"), tmp_path / "seen"
    driver.write_text(RECORDING_DRIVER, encoding="utf-8")
    seen.mkdir()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(driver), str(seen), "--streaming", "true", "--train_files", *files, "--output_dir", out,
               "--max_steps", "3", "--save_strategy", "no", "--eval_strategy", "no", *SMALL_RUN]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""})  # gloo on CPU
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "world_size=2" in proc.stdout and "steps=3" in proc.stdout
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    read = {}
    for rank in (0, 1):
        blocks = [json.loads(line) for line in open(seen / f"rank{rank}.jsonl", encoding="utf-8")]
        assert 3 * 8 <= len(blocks) <= 4 * 8  # 3 steps of 8 blocks (and the batch the loader fetched ahead)
        read[rank] = {token for block in blocks for token in block} - special
    # each process read one file only (which one: the seeded shuffle of the shard order decides), and not the same
    owner = {rank: [name for name, words in vocab.items() if read[rank] <= words] for rank in (0, 1)}
    assert sorted(owner[0] + owner[1]) == ["a", "b"], (owner, read)
    assert os.path.exists(os.path.join(out, "model.safetensors"))
