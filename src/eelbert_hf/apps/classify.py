"""`eelbert classify`: sentiment with the UNO-EELBERT classifier that ships inside the package (offline).

The bundled model (`data/uno-rt/`, 1.14 MB) is UNO-EELBERT distilled on the Rotten Tomatoes training split;
`data/uno-rt/README.md` says how it was trained and how well it does. Any other EELBERT sequence classifier
(a folder or a Hub name) works in its place.
"""

import os
import threading

from ..loading import BUNDLED_CLASSIFIER, load_classifier, resolve

BUNDLED_TRAINING_DATA = ("Rotten Tomatoes critic snippets, training split (10,201 reviews; labels 0 = negative, "
                         "1 = positive) and 15 augmented copies of each, labelled by an n-gram logistic-regression "
                         "teacher (distilled, see docs/distill.md)")


def training_data(path: str) -> str | None:
    """What the model card says the model was trained on: known for the bundled classifier only."""
    return BUNDLED_TRAINING_DATA if os.path.abspath(path) == BUNDLED_CLASSIFIER else None


# classify()'s pipelines, one per model (its absolute folder or Hub name), each with a lock, loaded on first use and
# kept for the process. `_LOADING` makes threads that ask for a model at once load it once; a model's own lock lets
# one call at a time use its pipeline, whose tokenizer fills its n-gram table as new tokens arrive (not thread-safe).
_CLASSIFIERS: dict = {}
_LOADING = threading.Lock()


def _loaded(name_or_path: str | None):
    """(pipeline, lock) for `name_or_path`: `load_classifier`'s pipeline, built on the first call for the model."""
    path = resolve(name_or_path)
    key = os.path.abspath(path) if os.path.isdir(path) else path
    loaded = _CLASSIFIERS.get(key)
    if loaded is None:
        with _LOADING:
            loaded = _CLASSIFIERS.get(key)  # another thread may have loaded it while this one waited
            if loaded is None:
                loaded = _CLASSIFIERS[key] = (load_classifier(path), threading.Lock())
    return loaded


def classify(texts: list[str], name_or_path: str | None = None, batch_size: int = 64) -> list[dict]:
    """`[{"label": "positive", "score": 0.93}, ...]`, one per text (each cut to 128 tokens). A text with no word the
    vocabulary knows (empty, blank, or only unknown characters such as emoji) gets no prediction:
    `{"label": None, "score": None, "warning": "..."}`, not a confident guess. The model is loaded on the first call
    that names it and kept for later calls; calls from several threads are safe (they take turns per model)."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        return []
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise ValueError(f"classify takes strings, got {bad[0]}")
    classifier, in_use = _loaded(name_or_path)
    with in_use:
        tokenizer = classifier.tokenizer
        pieces = tokenizer(texts, add_special_tokens=False, return_ngram_ids=False)["input_ids"]
        known = [any(i != tokenizer.unk_token_id for i in ids) for ids in pieces]
        scored = iter(classifier([t for t, k in zip(texts, known) if k], batch_size=batch_size, truncation=True,
                                 max_length=128) if any(known) else [])
    return [next(scored) if k else {"label": None, "score": None, "warning": NO_KNOWN_WORDS} for k in known]


NO_KNOWN_WORDS = "no prediction: the text has no word the vocabulary knows (empty, or only unknown characters)"
