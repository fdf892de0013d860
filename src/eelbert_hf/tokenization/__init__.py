"""Hub-facing tokenizer files: flat, importing only numpy/torch/transformers and each other."""
