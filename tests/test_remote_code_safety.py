"""Remote-code safety: what a stranger runs with `trust_remote_code=True` imports only stdlib, numpy, torch,
transformers and its sibling files, and never evaluates code, starts processes, opens the network or unpickles.
Weights are safetensors only."""

import ast
import pathlib
import sys

import pytest
import torch

from conftest import small_config
from eelbert_hf import EELBertForMaskedLM, EELBertForSequenceClassification, EELBertModel, EELBertTokenizer
from eelbert_hf.packaging.hub import save_hub_folder

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "eelbert_hf"
HUB_FACING = sorted([*PACKAGE.glob("modeling/*.py"), *PACKAGE.glob("tokenization/*.py")])
ALLOWED_ROOTS = {"numpy", "torch", "transformers"}
BANNED_MODULES = {  # stdlib modules that run code, start processes, reach the network or unpickle
    "subprocess", "multiprocessing", "socket", "ssl", "urllib", "http", "ftplib", "smtplib", "telnetlib", "xmlrpc",
    "asyncio", "pickle", "cPickle", "marshal", "shelve", "dill", "ctypes", "code", "codeop", "runpy", "pty", "webbrowser",
}
BANNED_CALLS = {"eval", "exec", "compile", "__import__", "breakpoint", "input", "os.system", "os.popen", "os.fork",
                "os.execv", "os.execve", "os.execl", "os.spawnv", "os.spawnl", "os.startfile", "os.posix_spawn",
                "importlib.import_module", "torch.hub.load", "torch.jit.load", "torch.package.PackageImporter",
                "urllib.request.urlopen", "shutil.rmtree"}


def dotted(node) -> str:
    """`os.path.join` for the expression os.path.join; '' for anything that is not a dotted name."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return f"{base}.{node.attr}" if base else ""
    return ""


def keyword_is_true(call: ast.Call, name: str) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is True for k in call.keywords)


def findings(source: str, hub_facing: bool = True) -> list[str]:
    """What makes `source` unsafe to run as remote code; with hub_facing=False only the unpickling rules."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and hub_facing:
            if isinstance(node, ast.ImportFrom) and node.level:
                continue  # a sibling file of the same folder
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                root = name.split(".")[0]
                if root in BANNED_MODULES or name in BANNED_MODULES:
                    problems.append(f"line {node.lineno}: imports {name}")
                elif root not in ALLOWED_ROOTS and root not in sys.stdlib_module_names:
                    problems.append(f"line {node.lineno}: imports {name} (not stdlib/numpy/torch/transformers)")
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            if name == "torch.load" and not keyword_is_true(node, "weights_only"):
                problems.append(f"line {node.lineno}: torch.load without weights_only=True")
            elif name in ("np.load", "numpy.load") and any(k.arg == "allow_pickle" for k in node.keywords):
                problems.append(f"line {node.lineno}: {name} with allow_pickle")
            elif hub_facing and (name in BANNED_CALLS or name.split(".")[0] in BANNED_MODULES):
                problems.append(f"line {node.lineno}: calls {name}")
        elif isinstance(node, ast.Name) and hub_facing and node.id in ("eval", "exec", "__import__", "__builtins__"):
            problems.append(f"line {node.lineno}: refers to {node.id}")
    return problems


def test_hub_facing_files_are_the_shipped_ones():
    names = {p.name for p in HUB_FACING}
    assert {"configuration_eelbert.py", "modeling_eelbert.py", "ngram_embedding.py", "tokenization_eelbert.py",
            "ngram_hashing.py"} <= names


@pytest.mark.parametrize("path", HUB_FACING, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_hub_facing_file_is_safe(path):
    assert findings(path.read_text()) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_unpickling_anywhere_in_the_package(path):
    assert findings(path.read_text(), hub_facing=False) == []


@pytest.mark.parametrize("snippet", [
    "import subprocess", "from urllib.request import urlopen", "import pickle", "import requests",
    "import huggingface_hub", "from eelbert_hf import EELBertConfig", "import socket as s", "import http.client",
    "eval('1')", "exec(code)", "f = eval", "__import__('os')", "os.system('ls')", "torch.load(path)",
    "torch.load(path, weights_only=False)", "np.load(path, allow_pickle=True)", "importlib.import_module('x')",
    "subprocess.run(['ls'])",
])
def test_the_checker_catches_unsafe_code(snippet):
    assert findings(snippet), snippet


@pytest.mark.parametrize("snippet", [
    "from .ngram_hashing import token_ngram_ids", "import torch", "from torch import nn", "import numpy as np",
    "from transformers import PreTrainedModel", "import os, re, importlib.util", "torch.load(path, weights_only=True)",
    "model.eval()", "x.compile_mode", "np.load(path)",
])
def test_the_checker_allows_safe_code(snippet):
    assert findings(snippet) == []


@pytest.mark.parametrize("cls", [EELBertModel, EELBertForMaskedLM, EELBertForSequenceClassification])
@pytest.mark.parametrize("embedding_type", ["dynamic", "table"])
def test_weights_are_saved_as_safetensors_only(tmp_path, tokenizer, cls, embedding_type):
    model = cls(small_config(embedding_type=embedding_type))
    save_hub_folder(model, tokenizer, str(tmp_path))
    files = {p.name for p in tmp_path.iterdir()}
    assert "model.safetensors" in files
    assert not {f for f in files if f.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy"))}
    with open(tmp_path / "model.safetensors", "rb") as fh:  # a safetensors header, not a zip/pickle archive
        header_len = int.from_bytes(fh.read(8), "little")
        assert fh.read(1) == b"{" and 0 < header_len < 10**6
    assert isinstance(EELBertTokenizer.from_pretrained(tmp_path), EELBertTokenizer)
    torch.testing.assert_close(cls.from_pretrained(tmp_path).state_dict(), model.state_dict(), rtol=0, atol=0)
