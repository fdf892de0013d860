"""The Hub round trip: a saved folder loads through the Auto classes with remote code, on a machine where
eelbert_hf cannot be imported, both from the folder and as "org/uno-eelbert" from an offline Hub cache."""

import json
import os
import pathlib
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification, AutoTokenizer

from conftest import SENTENCES
from eelbert_hf import EELBertConfig, EELBertForSequenceClassification, EELBertModel, EELBertTokenizer

HUB_FILES = {"configuration_eelbert.py", "modeling_eelbert.py", "ngram_embedding.py", "tokenization_eelbert.py",
             "ngram_hashing.py", "config.json", "model.safetensors", "tokenizer_config.json", "tokenizer.json"}
AUTO_CLASSES = ["AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification"]
AUTO_MAP_CLASSES = [*AUTO_CLASSES, "AutoModelForTokenClassification", "AutoModelForQuestionAnswering",
                    "AutoModelForMultipleChoice"]
SNAPSHOT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    folder = tmp_path_factory.mktemp("uno-eelbert")
    torch.manual_seed(0)
    model = EELBertForSequenceClassification(EELBertConfig.from_preset("uno", num_labels=2)).eval()
    model.save_pretrained(folder)
    EELBertTokenizer.from_bundled_vocab().save_pretrained(folder)
    return folder


def hub_cache(folder, home, repo="org/uno-eelbert"):
    """Lay `folder` out as huggingface_hub's cache does after a download of `repo`."""
    root = home / "hub" / f"models--{repo.replace('/', '--')}"
    shutil.copytree(folder, root / "snapshots" / SNAPSHOT)
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(SNAPSHOT)  # no trailing newline, as the Hub client writes it


def in_process_outputs(folder):
    tokenizer = AutoTokenizer.from_pretrained(folder)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    outputs = {}
    for auto in (AutoModel, AutoModelForMaskedLM, AutoModelForSequenceClassification):
        torch.manual_seed(0)  # the MLM head is new when loading a classifier checkpoint: seed its init alike
        model = auto.from_pretrained(folder).eval()
        result = model(**batch)
        outputs[auto.__name__] = (result.logits if hasattr(result, "logits") else result.last_hidden_state).tolist()
    return batch["ngram_ids"].tolist(), outputs


REMOTE_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["eelbert_hf"] = None  # the package is not installed for this user
    import torch, transformers
    source, sentences = sys.argv[1], json.loads(sys.argv[2])
    tokenizer = transformers.AutoTokenizer.from_pretrained(source, trust_remote_code=True)
    batch = tokenizer(sentences, padding=True, return_tensors="pt")
    outputs = {}
    for name in ("AutoModel", "AutoModelForMaskedLM", "AutoModelForSequenceClassification"):
        torch.manual_seed(0)
        model = getattr(transformers, name).from_pretrained(source, trust_remote_code=True).eval()
        assert not type(model).__module__.startswith("eelbert_hf"), type(model).__module__
        result = model(**batch)
        outputs[name] = (result.logits if hasattr(result, "logits") else result.last_hidden_state).tolist()
    print(json.dumps({"tokenizer": type(tokenizer).__module__, "ngram_ids": batch["ngram_ids"].tolist(),
                      "outputs": outputs}))
""")


def run_remote(source, env):
    proc = subprocess.run([sys.executable, "-c", REMOTE_SCRIPT, str(source), json.dumps(SENTENCES)],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_saved_folder_is_hub_ready(saved):
    assert HUB_FILES <= set(os.listdir(saved))
    config = json.loads((saved / "config.json").read_text())
    assert set(config["auto_map"]) == {"AutoConfig", *AUTO_MAP_CLASSES}
    assert config["hash_scheme"] == "eelbert-ngram-v1" and config["embedding_type"] == "dynamic"
    tok_config = json.loads((saved / "tokenizer_config.json").read_text())
    assert tok_config["auto_map"]["AutoTokenizer"][0] == "tokenization_eelbert.EELBertTokenizer"
    assert {k: tok_config[k] for k in ("hash_scheme", "ngram_min_n", "ngram_max_n", "max_ngrams_per_token")} == \
        {"hash_scheme": "eelbert-ngram-v1", "ngram_min_n": 1, "ngram_max_n": 3, "max_ngrams_per_token": 48}


def test_uno_checkpoint_size(saved):
    assert os.path.getsize(saved / "model.safetensors") <= 1.25e6


def test_local_registration_needs_no_remote_code(saved):
    assert type(AutoModel.from_pretrained(saved)) is EELBertModel
    assert type(AutoTokenizer.from_pretrained(saved)) is EELBertTokenizer


@pytest.mark.parametrize("where", ["folder", "hub_cache"])
def test_remote_code_round_trip_without_the_package(saved, tmp_path, where):
    home = tmp_path / "hf_home"
    env = {**os.environ, "HF_HOME": str(home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules"), "PYTHONHASHSEED": "7"}
    if where == "hub_cache":
        hub_cache(saved, home)
        source = "org/uno-eelbert"
    else:
        source = saved
    remote = run_remote(source, env)
    assert remote["tokenizer"].startswith("transformers_modules")
    ngram_ids, outputs = in_process_outputs(saved)
    assert remote["ngram_ids"] == ngram_ids
    for name in AUTO_CLASSES:
        torch.testing.assert_close(torch.tensor(remote["outputs"][name]), torch.tensor(outputs[name]),
                                   atol=1e-5, rtol=0)


def test_mismatched_tokenizer_is_refused(tmp_path):
    from eelbert_hf.packaging.hub import save_hub_folder

    model = EELBertModel(EELBertConfig.from_preset("uno"))
    tokenizer = EELBertTokenizer.from_bundled_vocab(max_ngrams_per_token=32)
    with pytest.raises(ValueError, match="max_ngrams_per_token"):
        save_hub_folder(model, tokenizer, str(tmp_path))
    assert not os.listdir(tmp_path)  # nothing half-written


MISMATCH_SCRIPT = textwrap.dedent("""
    import sys
    sys.modules["eelbert_hf"] = None  # the package is not installed for this user
    import transformers
    try:
        transformers.AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
    except ValueError as error:
        print("refused:", error)
    else:
        print("loaded")
""")


@pytest.mark.parametrize("field, value", [("ngram_max_n", 4), ("feature_type", "whole_token")])
def test_remote_code_tokenizer_refuses_a_model_it_does_not_match(saved, tmp_path, field, value):
    """A Hub folder whose tokenizer (same width) was built with other n-gram settings than its model: with remote code
    and without the package, AutoTokenizer refuses it, naming the field."""
    folder = tmp_path / "mismatched"
    shutil.copytree(saved, folder)
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tok_config, field: value}))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    for source, expected in ((folder, f"refused: tokenizer and model disagree on {field}"), (saved, "loaded")):
        proc = subprocess.run([sys.executable, "-c", MISMATCH_SCRIPT, str(source)], capture_output=True, text=True,
                              env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert proc.stdout.strip().splitlines()[-1].startswith(expected), proc.stdout


def test_quickstart_runs_offline(tmp_path, capsys):
    from eelbert_hf.apps.cli import main
    from eelbert_hf.apps.quickstart import run_quickstart

    main(["quickstart", "--output-dir", str(tmp_path / "cli"), "--epochs", "0.05", "--copies", "1"])
    printed = capsys.readouterr().out
    assert "parameters: 285,186" in printed and "without eelbert_hf (transformers_modules" in printed
    assert "labels alone" in printed and "majority class" in printed
    result = run_quickstart(str(tmp_path / "api"), preset="tiny", epochs=0.05, copies=1)
    assert result["bundled_accuracy"] >= result["majority"] + 0.1  # the bundled classifier works
    tiny = EELBertForSequenceClassification(EELBertConfig.from_preset("tiny", num_labels=2))
    assert result["parameters"] == sum(p.numel() for p in tiny.parameters())  # the model it trained, not the bundled
    assert result["eelbert_bytes"] > 1.5e6  # 2 layers: more than the bundled 1-layer UNO's 1.14 MB
    assert result["remote_accuracy"] == pytest.approx(result["accuracy"])  # the exported student, by remote code
    assert result["max_diff"] <= 1e-5
    assert os.path.getsize(tmp_path / "api" / "hub" / "model.safetensors") == result["eelbert_bytes"]
    assert os.path.getsize(tmp_path / "cli" / "hub" / "model.safetensors") <= 1.25e6  # the default UNO


def test_model_card_and_push_upload_the_complete_folder(tmp_path, monkeypatch):
    import huggingface_hub

    from eelbert_hf.apps.cli import main
    from eelbert_hf.packaging.hub import HUB_REQUIRED, save_hub_folder

    model = EELBertForSequenceClassification(EELBertConfig.from_preset("uno", num_labels=2))
    folder = tmp_path / "hub"
    save_hub_folder(model, EELBertTokenizer.from_bundled_vocab(), str(folder), "Rotten Tomatoes",
                    {"eval_accuracy": 0.75, "eval_runtime": 2.0})
    card = (folder / "README.md").read_text()
    header = card.split("---")[1]
    for line in ("library_name: transformers", "pipeline_tag: text-classification", "license: apache-2.0",
                 "- eelbert", "- custom_code"):
        assert line in header
    for fact in ("285,186", "eelbert-ngram-v1", "uno (L1 / H128 / A2)", "Rotten Tomatoes", "| eval_accuracy | 0.7500 |",
                 "trust_remote_code=True"):
        assert fact in card
    assert "eval_runtime" not in card

    calls = []

    class FakeApi:  # the Hub is unreachable here: record what would be sent
        def __init__(self, token=None):
            pass

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(("create_repo", repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message):
            calls.append(("upload_folder", repo_id, sorted(os.listdir(folder_path))))
            return "fake-commit"

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    main(["push", str(folder), "org/uno-eelbert"])
    assert calls[0] == ("create_repo", "org/uno-eelbert", False, True)
    assert calls[1][0] == "upload_folder" and set(HUB_REQUIRED) <= set(calls[1][2])
    assert 'from_pretrained("org/uno-eelbert", trust_remote_code=True)' in (folder / "README.md").read_text()
    (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="missing model.safetensors"):
        main(["push", str(folder), "org/uno-eelbert"])


def test_package_pipeline_refuses_a_mismatched_tokenizer(saved):
    import eelbert_hf

    good = eelbert_hf.pipeline("text-classification", model=str(saved))
    assert good(SENTENCES[0])[0]["label"] in ("LABEL_0", "LABEL_1")
    wrong = EELBertTokenizer.from_bundled_vocab(ngram_max_n=4)  # same width, different n-grams: silent otherwise
    with pytest.raises(ValueError, match="ngram_max_n"):
        eelbert_hf.pipeline("text-classification", model=str(saved), tokenizer=wrong)


def test_export_of_an_mlm_checkpoint_as_an_encoder_is_small_and_loads_cleanly(tmp_path, capsys):
    from transformers.utils import logging as hf_logging

    from eelbert_hf import EELBertForMaskedLM
    from eelbert_hf.apps.cli import main

    checkpoint, out = tmp_path / "mlm", tmp_path / "encoder"
    mlm = EELBertForMaskedLM(EELBertConfig.from_preset("uno")).eval()
    mlm.save_pretrained(checkpoint)
    EELBertTokenizer.from_bundled_vocab().save_pretrained(checkpoint)
    main(["export", str(checkpoint), str(tmp_path / "whole")])
    assert "--head feature-extraction writes the encoder alone" in capsys.readouterr().out
    main(["export", str(checkpoint), str(out), "--head", "feature-extraction"])
    whole, encoder = (os.path.getsize(d / "model.safetensors") for d in (tmp_path / "whole", out))
    assert encoder <= 1.2e6 < 10e6 < whole  # the 30,522-row MLM output layer stays behind
    def load_report(folder):  # what transformers logs while loading `folder` through AutoModel
        import io
        import logging

        stream, verbosity = io.StringIO(), hf_logging.get_verbosity()
        handler = logging.StreamHandler(stream)
        hf_logging.set_verbosity_warning()
        hf_logging.get_logger().addHandler(handler)
        try:
            return AutoModel.from_pretrained(folder).eval(), stream.getvalue()
        finally:
            hf_logging.get_logger().removeHandler(handler)
            hf_logging.set_verbosity(verbosity)

    assert "UNEXPECTED" in load_report(tmp_path / "whole")[1]  # the report is seen when there is one
    loaded, report = load_report(out)
    assert "MISSING" not in report and "UNEXPECTED" not in report, report
    tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(loaded(**batch).last_hidden_state, mlm.bert(**batch).last_hidden_state)
    with pytest.raises(ValueError, match="unknown head"):
        main(["export", str(checkpoint), str(tmp_path / "bad"), "--head", "summarization"])
    with pytest.raises(ValueError, match="no folder"):
        main(["export", str(tmp_path / "nothing"), str(tmp_path / "bad")])


TOKENIZER_ONLY_SCRIPT = textwrap.dedent("""
    import json, sys
    sys.modules["eelbert_hf"] = None  # the package is not installed for this user
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(sys.argv[1], trust_remote_code=True)
    print(json.dumps({"module": type(tokenizer).__module__, "ngram_ids": tokenizer("a gripping film")["ngram_ids"]}))
""")


def test_a_tokenizer_saved_alone_carries_its_code_and_loads_without_the_package(tmp_path):
    """The flat Hub layout from the tokenizer alone: its file and the hash spec it imports (which lives in
    `modeling/` in the package) are both written, and the folder loads with remote code only."""
    tokenizer = EELBertTokenizer.from_bundled_vocab()
    tokenizer.save_pretrained(tmp_path)
    assert {"tokenization_eelbert.py", "ngram_hashing.py"} <= set(os.listdir(tmp_path))
    package_spec = pathlib.Path(sys.modules["eelbert_hf.modeling.ngram_hashing"].__file__)
    assert (tmp_path / "ngram_hashing.py").read_bytes() == package_spec.read_bytes()
    env = {**os.environ, "HF_MODULES_CACHE": str(tmp_path / "modules")}
    proc = subprocess.run([sys.executable, "-c", TOKENIZER_ONLY_SCRIPT, str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    remote = json.loads(proc.stdout.strip().splitlines()[-1])
    assert not remote["module"].startswith("eelbert_hf"), remote["module"]
    assert remote["ngram_ids"] == tokenizer("a gripping film")["ngram_ids"]


def test_save_with_push_to_hub_is_refused_before_anything_is_written(tmp_path):
    with pytest.raises(ValueError, match=r"push_to_hub\(repo_id\)"):
        EELBertTokenizer.from_bundled_vocab().save_pretrained(tmp_path / "out", push_to_hub=True)
    assert not (tmp_path / "out").exists()


def test_codebook_and_mean_pooling_round_trip_without_the_package(tmp_path):
    """The n-gram codebook (config fields, two tensors) and mean pooling travel in the Hub files: remote code
    computes what the package computes."""
    folder = tmp_path / "codebook"
    torch.manual_seed(0)
    model = EELBertForSequenceClassification(EELBertConfig.from_preset(
        "uno", num_labels=2, ngram_codebook_buckets=256, ngram_codebook_dim=4, classifier_pooling="mean")).eval()
    with torch.no_grad():
        model.bert.embeddings.ngram_embeddings.codebook_map.normal_()  # non-zero: the codebook counts
    model.save_pretrained(folder)
    EELBertTokenizer.from_bundled_vocab().save_pretrained(folder)
    saved = json.loads((folder / "config.json").read_text())
    assert saved["ngram_codebook_buckets"] == 256 and saved["classifier_pooling"] == "mean"
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_MODULES_CACHE": str(tmp_path / "modules")}
    remote = run_remote(folder, env)
    ngram_ids, outputs = in_process_outputs(folder)
    assert remote["ngram_ids"] == ngram_ids
    for name in AUTO_CLASSES:
        torch.testing.assert_close(torch.tensor(remote["outputs"][name]), torch.tensor(outputs[name]),
                                   atol=1e-5, rtol=0)
    with torch.no_grad():
        expected = model(**AutoTokenizer.from_pretrained(folder)(SENTENCES, padding=True, return_tensors="pt")).logits
    torch.testing.assert_close(torch.tensor(outputs["AutoModelForSequenceClassification"]), expected)
