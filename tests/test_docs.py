"""README.md and docs/*.md against the code: every `eelbert` command they show exists with the flags it is given,
every script they run exists, every relative link resolves, every page is reachable from the README or
docs/index.md, and nothing tells users to install a package that is not published.

The checks read the parser of the console script (`build_parser`, standard library only), so no model is
loaded here. `pretrain`, `finetune` and `distill` take every `TrainingArguments` flag through
transformers' `HfArgumentParser`: for them only the command name is checked."""

import configparser
import pathlib
import re
import shlex

import pytest

try:  # the parser of the console script: standard library only
    from eelbert_hf.apps.command_line import TRAINING_COMMANDS, build_parser
except ImportError:  # where it lives in src/eelbert_cli.py itself
    from eelbert_cli import TRAINING_COMMANDS, build_parser

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
INDEX = ROOT / "docs" / "index.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
README_MAX_LINES = 150
# The README's two commands for a fresh machine (CI runs the same steps in .ci/run).
FRESH_MACHINE_COMMANDS = ('pip install torch==2.13.0 && pip install -e . && eelbert quickstart',
                          'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest -q tests')
GLOBAL_FLAGS = {"--debug", "--help", "-h"}  # `run` strips --debug before parsing; argparse adds --help
SHELL_LANGUAGES = {"", "bash", "sh", "shell", "console"}
UNPUBLISHED = re.compile(r"pip install\s+(?:-U\s+|--upgrade\s+)?[\"']?eelbert[_-]hf", re.IGNORECASE)
TRANSFORMERS_MINIMUM = re.compile(r"transformers\s*\(?\s*(?:≥|>=)\s*([0-9][0-9.]*[0-9])")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def page_id(path: pathlib.Path) -> str:
    return str(path.relative_to(ROOT))


# --------------------------------------------------------------------------------------------- reading markdown
def split_markdown(text: str) -> tuple[list[tuple[str, str]], str]:
    """(fenced code blocks as (language, body), the prose with those blocks blanked out)."""
    blocks, prose, fence, language, body = [], [], None, "", []
    for line in text.splitlines():
        stripped = line.strip()
        if fence is None:
            opening = re.match(r"(```+|~~~+)\s*([\w+-]*)", stripped)
            if opening:
                fence, language, body = opening.group(1), opening.group(2).lower(), []
                prose.append("")
            else:
                prose.append(line)
        elif stripped.startswith(fence) and stripped.strip(fence[0]) == "":
            blocks.append((language, "\n".join(body)))
            fence = None
            prose.append("")
        else:
            body.append(line)
            prose.append("")
    return blocks, "\n".join(prose)


def logical_lines(text: str) -> list[str]:
    """Shell lines with backslash continuations joined."""
    return re.sub(r"\\\n", " ", text).splitlines()


def shell_lines(text: str) -> list[str]:
    """Every shell command line a page shows: in shell code blocks, in indented code blocks (4 spaces) and in
    inline code that starts with a command (`eelbert ...`, `python ...`, `node ...`)."""
    blocks, prose = split_markdown(text)
    lines = [line for language, body in blocks if language in SHELL_LANGUAGES for line in logical_lines(body)]
    lines += [line for line in logical_lines(prose) if re.match(r" {4,}(eelbert|python3?) ", line)]
    lines += [span for span in re.findall(r"`([^`\n]+)`", prose) if re.match(r"(eelbert|python3?|node) ", span)]
    return lines


def commands(line: str) -> list[list[str]]:
    """The simple commands of a shell line (split at &&, ||, ;, |, parentheses; comments dropped), each as its
    words without leading VAR=value assignments."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()")
    lexer.whitespace_split = True
    found, words = [], []
    for token in lexer:
        if token and set(token) <= set(";&|()"):
            found.append(words)
            words = []
        else:
            words.append(token)
    found.append(words)
    return [dropped_assignments(words) for words in found if dropped_assignments(words)]


def dropped_assignments(words: list[str]) -> list[str]:
    while words and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]):
        words = words[1:]
    return words


# ------------------------------------------------------------------------------------------------------ checkers
def subparsers() -> dict:
    parser = build_parser()
    (action,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return action.choices


def eelbert_problem(words: list[str], choices: dict) -> str | None:
    """What is wrong with `eelbert WORDS...` (words after the program name), or None."""
    words = [w for w in words if w != "--debug"]
    if not words or words[0].startswith("-"):
        return None if not words or words[0] in GLOBAL_FLAGS else f"unknown flag {words[0]} of eelbert"
    command, rest = words[0], words[1:]
    if command not in choices:
        return f"no command `eelbert {command}` (commands: {', '.join(choices)})"
    if command in TRAINING_COMMANDS:  # TrainingArguments flags: parsed by HfArgumentParser, not checked here
        return None
    known = {flag for action in choices[command]._actions for flag in action.option_strings} | GLOBAL_FLAGS
    unknown = [w.split("=")[0] for w in rest if w.startswith("-") and w.split("=")[0] not in known and w != "-"]
    return f"`eelbert {command}` has no flag {', '.join(unknown)}" if unknown else None


def script_problem(words: list[str]) -> str | None:
    """A script that a command runs (python X.py, node X.js, X.sh) and that does not exist, or None."""
    program = words[0]
    if pathlib.PurePath(program).name in ("python", "python3", "node", "bash") and len(words) > 1:
        script = words[1]
    elif program.endswith(".sh"):
        script = program
    else:
        return None
    if not re.search(r"\.(py|js|sh)$", script) or script.startswith(("-", "$", "<")):
        return None
    bases = [ROOT, ROOT / "js"]  # node's scripts also run from js/ (`cd js && ...`)
    path = next((base / script for base in bases if (base / script).is_file()), None)
    if path is None:
        return f"no script {script}"
    flags = script_flags(path)
    unknown = [w.split("=")[0] for w in words[2:] if w.startswith("--") and flags and w.split("=")[0] not in flags]
    return f"{script} has no flag {', '.join(unknown)}" if unknown else None


def script_flags(path: pathlib.Path) -> set[str]:
    """The flags an argparse script declares (`add_argument("--name", ...)`); empty where it declares none."""
    flags = set(re.findall(r"add_argument\(\s*[\"'](--[\w-]+)", path.read_text(encoding="utf-8")))
    return flags | {"--help"} if flags else set()


def command_problems(text: str) -> list[str]:
    """Every problem with the commands a markdown text shows."""
    choices, problems = subparsers(), []
    for line in shell_lines(text):
        try:
            parsed = commands(line)
        except ValueError as error:  # unbalanced quotes
            problems.append(f"cannot parse {line.strip()!r}: {error}")
            continue
        for words in parsed:
            program = pathlib.PurePath(words[0]).name
            if program == "eelbert":
                problem = eelbert_problem(words[1:], choices)
            elif program.startswith("python") and words[1:3] == ["-m", "eelbert_hf"]:
                problem = eelbert_problem(words[3:], choices)
            else:
                problem = script_problem(words)
            if problem:
                problems.append(f"{problem}: {line.strip()}")
    return problems


def install_problems(text: str) -> list[str]:
    problems = [f"`{m.group(0)}`: nothing is published; install from a clone (pip install -e .) or a built wheel"
                for m in UNPUBLISHED.finditer(text)]
    if "huggingface-cli" in text:
        problems.append("huggingface-cli: huggingface_hub >= 1.0 has `hf` (hf auth login)")
    minimum = declared_transformers_minimum()
    problems += [f"transformers >= {v}, but setup.cfg declares >= {'.'.join(map(str, minimum))}"
                 for v in TRANSFORMERS_MINIMUM.findall(text) if version(v) != minimum]
    return problems


def version(text: str) -> tuple[int, ...]:
    """"5.6.0" -> (5, 6): trailing zeros dropped, so 5.6 and 5.6.0 compare equal."""
    parts = [int(p) for p in text.split(".")]
    while len(parts) > 1 and parts[-1] == 0:
        parts.pop()
    return tuple(parts)


def declared_transformers_minimum() -> tuple[int, ...]:
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg", encoding="utf-8")
    (minimum,) = re.findall(r"^transformers>=([0-9.]+)", setup["options"]["install_requires"], re.MULTILINE)
    return version(minimum)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: link text kept, formatting and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: pathlib.Path) -> set[str]:
    _, prose = split_markdown(path.read_text(encoding="utf-8"))
    found, seen = set(), {}
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", prose, re.MULTILINE):
        base = slug(heading)
        found.add(base if base not in seen else f"{base}-{seen[base]}")
        seen[base] = seen.get(base, 0) + 1
    return found


def link_targets(path: pathlib.Path, text: str) -> list[tuple[str, pathlib.Path | None, str]]:
    """(link as written, the file it points to or None for an external link, the anchor) of each link."""
    _, prose = split_markdown(text)
    prose = re.sub(r"`[^`\n]*`", "", prose)  # inline code is not a link
    found = []
    for target in LINK.findall(prose):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:, ...
            found.append((target, None, ""))
            continue
        file_part, _, anchor = target.partition("#")
        found.append((target, (path.parent / file_part).resolve() if file_part else path, anchor))
    return found


def link_problems(path: pathlib.Path, text: str) -> list[str]:
    problems = []
    for written, target, anchor in link_targets(path, text):
        if target is None:
            continue
        if not target.exists():
            problems.append(f"link to a missing file: {written}")
        elif anchor and target.suffix == ".md" and anchor not in anchors(target):
            problems.append(f"link to a missing heading: {written} (headings: {sorted(anchors(target))})")
    return problems


# ------------------------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_every_command_shown_exists(page):
    assert command_problems(page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_install_instructions_are_true(page):
    assert install_problems(page.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("page", PAGES, ids=page_id)
def test_relative_links_resolve(page):
    assert link_problems(page, page.read_text(encoding="utf-8")) == []


def test_every_doc_is_linked_from_the_readme_or_the_index():
    linked = {target for page in (README, INDEX) for _, target, _ in link_targets(page, page.read_text("utf-8"))}
    assert INDEX in linked, "README.md must link docs/index.md"
    assert [page_id(p) for p in PAGES if p != README and p not in linked] == []


def test_readme_is_short_and_keeps_the_fresh_machine_commands():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_MAX_LINES
    for command in FRESH_MACHINE_COMMANDS:
        assert command in text.splitlines(), f"the README lost its command {command!r}"


def test_license_is_apache_2():
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text  # the whole text, not a one-line notice
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg", encoding="utf-8")
    assert setup["metadata"]["license"] == "Apache-2.0"


# ------------------------------------------------------------------------------- the checkers can fail
BAD_PAGE = """# A page with mistakes

```bash
eelbert nosuchcommand --x
eelbert classify --no-such-flag "a film"    # a comment
OMP_NUM_THREADS=1 eelbert export a b --onnx && python -m eelbert_hf bench --nope
python benchmarks/no_such_script.py --json out.json
python benchmarks/bench_speed.py --parts latency --no-such-option
eelbert finetune --any_trainer_flag 1 --output_dir out     # training commands: only the name is checked
```

Run `eelbert hash-report --no-corpus-flag` first, then `pip install eelbert_hf` and `huggingface-cli login`,
with transformers (≥ 5.0). See [the spec](no-such-page.md) and [a heading](hash-spec.md#no-such-heading).
"""


def test_the_checkers_flag_a_page_with_mistakes():
    problems = command_problems(BAD_PAGE)
    assert len(problems) == 6, problems
    for expected in ("no command `eelbert nosuchcommand`", "`eelbert classify` has no flag --no-such-flag",
                     "`eelbert bench` has no flag --nope", "no script benchmarks/no_such_script.py",
                     "benchmarks/bench_speed.py has no flag --no-such-option",
                     "`eelbert hash-report` has no flag --no-corpus-flag"):
        assert any(p.startswith(expected) for p in problems), (expected, problems)
    installs = install_problems(BAD_PAGE)
    assert len(installs) == 3 and "5.0" in installs[2], installs
    links = link_problems(ROOT / "docs" / "bad.md", BAD_PAGE)
    assert [p.split(":")[0] for p in links] == ["link to a missing file", "link to a missing heading"], links


def test_the_checkers_pass_a_correct_page():
    good = ("```bash\neelbert export bundled out/x --fp16 --onnx --quantize   # comment\n"
            "(cd js && npm ci) && eelbert classify --model bundled \"it's fine\"\n```\n"
            "Then `eelbert push out/x org/name --private` ([the spec](hash-spec.md#1-tokenizer-half-token-string---n-gram-ids)).\n")
    assert command_problems(good) == []
    assert install_problems(good) == []
    assert link_problems(ROOT / "docs" / "good.md", good) == []
