"""The package's layers: every module imports only from its own layer or the ones below it, so there are no cycles.

modeling/ and tokenization/ (the Hub-facing files) -> loading -> training, distillation -> packaging/ ->
diagnostics/ -> apps/.

Above them all, outside the package, src/eelbert_cli.py (the `eelbert` console script) runs the package's parser,
apps/command_line.py (standard library only), from its file, and imports eelbert_hf only inside its functions, after
parsing, so that `eelbert --help` does not import torch. Nothing in the package imports eelbert_cli: the two do not
form a circle."""

import ast
import pathlib
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "eelbert_hf"
ENTRY_POINT = PACKAGE.parent / "eelbert_cli.py"
PARSER = PACKAGE / "apps" / "command_line.py"  # what ENTRY_POINT runs without importing the package
LAYERS = {"modeling": 0, "tokenization": 0, "loading": 1, "training": 2, "distillation": 2, "packaging": 3,
          "diagnostics": 4, "apps": 5}


def layer_of(dotted: str) -> int | None:
    """Layer of a module inside eelbert_hf ("apps.cli" -> 5); None for the package root (__init__, __main__)."""
    return LAYERS.get(dotted.split(".")[0])


def package_imports(path: pathlib.Path) -> list[str]:
    """The eelbert_hf modules a file imports (relative imports resolved), as dotted names below eelbert_hf."""
    here = list(path.relative_to(PACKAGE).with_suffix("").parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                parts = base + (node.module.split(".") if node.module else [])
                names = [".".join(parts)] if node.module else [".".join(parts + [alias.name]) for alias in node.names]
            elif (node.module or "").startswith("eelbert_hf."):
                names = [node.module.removeprefix("eelbert_hf.")]
            else:
                continue
            found += [name for name in names if name]
        elif isinstance(node, ast.Import):
            found += [a.name.removeprefix("eelbert_hf.") for a in node.names if a.name.startswith("eelbert_hf.")]
    return found


MODULES = [p for p in sorted(PACKAGE.rglob("*.py")) if p.name not in ("__init__.py", "__main__.py")]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers(path):
    own = layer_of(".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    assert own is not None, f"{path.relative_to(PACKAGE)} is in no layer: add it to LAYERS"
    upward = [name for name in package_imports(path) if (layer_of(name) or 0) > own]
    assert upward == [], f"{path.relative_to(PACKAGE)} (layer {own}) imports from above: {upward}"


def module_level_imports(path: pathlib.Path) -> list[str]:
    """The top-level names of the modules a file imports outside any function (at import time)."""
    found = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if isinstance(child, ast.Import):
                found.extend(alias.name.split(".")[0] for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                found.append("." if child.level else child.module.split(".")[0])
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_the_entry_point_imports_only_the_standard_library_at_import_time():
    imported = module_level_imports(ENTRY_POINT)
    assert imported and all(name in sys.stdlib_module_names for name in imported), imported


def all_imports(path: pathlib.Path) -> list[str]:
    """The top-level names of every module a file imports, at import time or inside functions ("." if relative)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.append("." if node.level else node.module.split(".")[0])
    return found


def test_the_parser_the_entry_point_runs_imports_only_the_standard_library():
    imported = all_imports(PARSER)
    assert imported and all(name in sys.stdlib_module_names for name in imported), imported


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_package_never_imports_the_entry_point(path):
    assert ENTRY_POINT.stem not in all_imports(path), f"{path.relative_to(PACKAGE)} imports {ENTRY_POINT.stem}"


def test_the_import_checker_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\n\ndef f():\n    from eelbert_cli import run\n    from . import cli\n")
    assert all_imports(module) == ["os", "eelbert_cli", "."]


def test_the_import_time_checker_skips_function_bodies(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("import os\nfrom eelbert_hf.apps import cli\n\ndef f():\n    import torch\n")
    assert module_level_imports(module) == ["os", "eelbert_hf"]


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    fake = tmp_path / "eelbert_hf"
    (fake / "packaging").mkdir(parents=True)
    (fake / "packaging" / "hub.py").write_text("from ..apps.cli import run\nfrom ..loading import resolve\n")
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert package_imports(fake / "packaging" / "hub.py") == ["apps.cli", "loading"]
