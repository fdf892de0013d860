#!/usr/bin/env bash
# Fetch transformers' common model/config test-suite for the *installed* transformers version: pip downloads
# that version's sdist and we keep just tests/test_modeling_common.py and tests/test_configuration_common.py
# (tests/test_transformers_common.py runs them against every EELBERT class). Idempotent; prints the folder.
# Usage: tests/transformers_common/fetch.sh [python]   (the python whose transformers version to match)
set -euo pipefail
python=${1:-python}
version=$("$python" -c "import transformers; print(transformers.__version__)")
dest="${EELBERT_TRANSFORMERS_TESTS:-${XDG_CACHE_HOME:-$HOME/.cache}/eelbert_hf/transformers-tests}/$version"
files=(test_modeling_common.py test_configuration_common.py)
if [ ! -f "$dest/${files[1]}" ]; then
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    "$python" -m pip download -q --no-deps --no-binary :all: --retries 1 --timeout 20 \
        "transformers==$version" -d "$work" >&2
    tar -xzf "$work/transformers-$version.tar.gz" -C "$work" \
        "${files[@]/#/transformers-$version/tests/}"
    mkdir -p "$dest"
    touch "$dest/__init__.py"  # test_configuration_common imports its own folder as a package
    for f in "${files[@]}"; do cp "$work/transformers-$version/tests/$f" "$dest/$f.part" && mv "$dest/$f.part" "$dest/$f"; done
fi
echo "$dest"
