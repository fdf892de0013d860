"""Packaging a model for others: Hub-ready folders, model cards, push, ONNX."""
