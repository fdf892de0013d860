"""Hub-facing tokenizer files: flat, importing only numpy/torch/transformers and each other.

The hash spec the tokenizer imports as ``.ngram_hashing`` is one file, ``modeling/ngram_hashing.py``, shared with the
model: a flat Hub folder holds it beside both, and in the package it is registered here under this folder's name.
"""

import sys

from ..modeling import ngram_hashing

sys.modules[f"{__name__}.ngram_hashing"] = ngram_hashing
