"""The `eelbert` entry point (src/eelbert_cli.py) and the parser it runs (eelbert_hf/apps/command_line.py): help and
argument errors come without torch, transformers or eelbert_hf; commands still run through it."""

import argparse
import importlib.metadata
import os
import shutil
import subprocess
import sys

import pytest

HEAVY = ("torch", "transformers", "eelbert_hf")

# Runs eelbert_cli.run(argv) in a fresh interpreter, then prints the exit status and the heavy modules imported.
PROBE = """
import sys, eelbert_cli
try:
    eelbert_cli.run(sys.argv[1:])
    code = 0
except SystemExit as exit:
    code = exit.code
print("exit", code, "heavy", ",".join(sorted(m for m in {heavy!r} if m in sys.modules)) or "none")
"""


def probe(*argv):
    result = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY), *argv], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    *printed, last = result.stdout.strip().splitlines() or [""]
    _, code, _, heavy = last.split()
    return int(code), heavy, "\n".join(printed), result.stderr


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["-h"], 0), (["classify", "--help"], 0),
                                        (["export", "--help"], 0), (["hash-report", "--help"], 0),
                                        ([], 2), (["no-such-command"], 2), (["classify", "--no-such-flag"], 2),
                                        (["export", "only-one-argument"], 2), (["bench", "--repeats", "x"], 2),
                                        (["--debug"], 2)])
def test_help_and_argument_errors_import_neither_torch_nor_transformers_nor_the_package(argv, code):
    exit_code, heavy, stdout, stderr = probe(*argv)
    assert (exit_code, heavy) == (code, "none"), stderr
    if code == 0:
        assert stdout.startswith("usage: eelbert"), stdout
    else:
        assert stderr.startswith("usage: eelbert") and "eelbert" in stderr.splitlines()[-1], stderr


def test_the_top_level_help_lists_every_subcommand():
    _, _, stdout, _ = probe("--help")
    for command in ("quickstart", "pretrain", "finetune", "distill", "export", "hash-report", "classify", "bench",
                    "push"):
        assert command in stdout


def test_the_installed_console_script_is_eelbert_cli():
    (entry,) = importlib.metadata.entry_points(group="console_scripts", name="eelbert")
    assert entry.value == "eelbert_cli:run", "reinstall the package (pip install -e .): the entry point moved"


def installed_eelbert() -> str:
    """The `eelbert` script of this interpreter's environment."""
    found = shutil.which("eelbert", path=os.path.dirname(sys.executable)) or shutil.which("eelbert")
    if found is None:
        pytest.skip("no `eelbert` script installed (pip install -e .)")
    return found


def test_the_installed_command_prints_its_help():
    result = subprocess.run([installed_eelbert(), "--help"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: eelbert") and "classify" in result.stdout and "export" in result.stdout


def test_the_installed_command_classifies():
    result = subprocess.run([installed_eelbert(), "classify", "a gripping film"], capture_output=True, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    label, score, text = result.stdout.strip().split("\t")
    assert label in ("positive", "negative") and 0.5 <= float(score) <= 1 and text == "a gripping film"


def test_a_user_error_is_one_line_through_the_entry_point_and_debug_shows_the_traceback(tmp_path):
    missing = str(tmp_path / "no-such-file.txt")
    result = subprocess.run([sys.executable, "-m", "eelbert_cli", "classify", "--file", missing],
                            capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("eelbert: error: --file: no such file")
    debug = subprocess.run([sys.executable, "-m", "eelbert_cli", "classify", "--file", missing],
                           capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1",
                                                                 "EELBERT_DEBUG": "1"})
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_the_entry_point_and_the_package_parse_with_one_parser():
    """The console script runs the package's own parser file (not a copy), and every command it parses has a
    handler in eelbert_hf.apps.cli, and no more."""
    import eelbert_cli
    from eelbert_hf.apps import cli, command_line

    assert eelbert_cli.command_line().__file__ == command_line.__file__
    subcommands = next(a for a in command_line.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    assert set(cli.COMMANDS) == set(subcommands.choices)


def test_a_training_command_keeps_its_arguments_for_hf_argument_parser():
    from eelbert_hf.apps.command_line import parse

    args = parse(["finetune", "--output_dir", "out", "--max_steps", "3", "--debug"])
    assert (args.command, args.training_args, args.debug) == ("finetune", ["--output_dir", "out", "--max_steps", "3"],
                                                              True)


def test_running_processes_are_counted_from_proc_loadavg(monkeypatch, tmp_path):
    import builtins

    real_open = builtins.open
    fake = tmp_path / "loadavg"
    fake.write_text("1.90 1.20 0.80 3/412 12345\n")  # three running: this process and two others
    monkeypatch.setattr(builtins, "open", lambda path, *a, **k: real_open(fake if path == "/proc/loadavg" else path,
                                                                          *a, **k))
    from eelbert_hf.apps.cli import _running_elsewhere

    assert _running_elsewhere() == 2
    fake.write_text("garbage\n")
    assert _running_elsewhere() is None
