"""Hub-facing model files: flat, importing only torch/transformers and each other."""
