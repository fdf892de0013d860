"""Diagnostics: what the hash does to the vocabulary, and end-to-end speed against BERT."""
