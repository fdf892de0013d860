"""The `eelbert` console command: parse the command line before torch is imported, then run it.

Importing `eelbert_hf` takes seconds (its `__init__` registers the Auto classes, which imports torch and
transformers). The parser, `eelbert_hf/apps/command_line.py`, imports only the standard library, so this module
runs that file on its own, without importing the package: `eelbert --help`, `eelbert classify --help`, a missing or
unknown command and a bad flag are answered without torch, transformers or eelbert_hf. Only a command that parsed
imports `eelbert_hf.apps.cli`, which runs it. Nothing in eelbert_hf imports this module: the package's own entry
points (`python -m eelbert_hf`, `eelbert_hf.apps.cli.main` and `run`) parse with the same file.
"""

import importlib.util
import os


def command_line():
    """eelbert_hf/apps/command_line.py, executed from its file: importing it by name would first run
    eelbert_hf/__init__.py (torch, transformers). The module is not entered in sys.modules, so a later
    `import eelbert_hf` still loads the package as usual."""
    package = importlib.util.find_spec("eelbert_hf")  # finds the package's folder without running its __init__
    path = os.path.join(list(package.submodule_search_locations)[0], "apps", "command_line.py")
    spec = importlib.util.spec_from_file_location("eelbert_hf.apps.command_line", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(argv=None):
    """The `eelbert` console command: parse `argv` (default: sys.argv[1:]); only then import eelbert_hf and run it
    (`eelbert_hf.apps.cli.execute`: the thread rule, one-line user errors, `--debug` for the traceback)."""
    args = command_line().parse(argv)
    from eelbert_hf.apps.cli import execute

    return execute(args)


if __name__ == "__main__":
    run()
