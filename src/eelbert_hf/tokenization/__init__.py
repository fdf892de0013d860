"""Hub-facing tokenizer files: flat, importing only numpy/torch/transformers and each other.

The hash spec the tokenizer imports as ``.ngram_hashing`` is one file, ``modeling/ngram_hashing.py``, shared with the
model: a flat Hub folder holds it beside both, and the package (``eelbert_hf/__init__.py``) registers it under this
folder's name.
"""
