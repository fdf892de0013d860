"""eelbert_hf: EELBERT — BERT with n-gram hash embeddings instead of an input-embedding table.

Importing this package registers the EELBERT config, tokenizer and models with transformers' Auto classes,
so `AutoModel.from_pretrained(folder)` works without `trust_remote_code`. The files under `modeling/` and
`tokenization/` are the ones a saved folder carries for users who load it with `trust_remote_code=True`.
"""

import sys

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForMaskedLM,
    AutoModelForMultipleChoice,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoModelForTokenClassification,
    AutoTokenizer,
)

from .modeling import ngram_hashing

# The tokenizer imports the hash spec as `.ngram_hashing`, as it is laid out in a flat Hub folder; in the package the
# one file sits in modeling/, so it is registered under tokenization/ too, before anything imports the tokenizer.
sys.modules[f"{__name__}.tokenization.ngram_hashing"] = ngram_hashing

from .modeling.configuration_eelbert import EELBertConfig
from .modeling.modeling_eelbert import (
    EELBertForMaskedLM,
    EELBertForMultipleChoice,
    EELBertForQuestionAnswering,
    EELBertForSequenceClassification,
    EELBertForTokenClassification,
    EELBertModel,
    EELBertPreTrainedModel,
)
from .modeling.ngram_embedding import DynamicNgramEmbeddings
from .loading import pipeline
from .packaging.onnx_runtime import load_onnx_classifier
from .tokenization.tokenization_eelbert import EELBertTokenizer

__version__ = "0.1.0"

MODEL_AUTO_CLASSES = {
    "AutoModel": (AutoModel, EELBertModel),
    "AutoModelForMaskedLM": (AutoModelForMaskedLM, EELBertForMaskedLM),
    "AutoModelForSequenceClassification": (AutoModelForSequenceClassification, EELBertForSequenceClassification),
    "AutoModelForTokenClassification": (AutoModelForTokenClassification, EELBertForTokenClassification),
    "AutoModelForQuestionAnswering": (AutoModelForQuestionAnswering, EELBertForQuestionAnswering),
    "AutoModelForMultipleChoice": (AutoModelForMultipleChoice, EELBertForMultipleChoice),
}

AutoConfig.register(EELBertConfig.model_type, EELBertConfig, exist_ok=True)
AutoTokenizer.register(EELBertConfig, tokenizer_class=EELBertTokenizer, exist_ok=True)
EELBertConfig.register_for_auto_class("AutoConfig")
for _name, (_auto, _model) in MODEL_AUTO_CLASSES.items():
    _auto.register(EELBertConfig, _model, exist_ok=True)
    _model.register_for_auto_class(_name)

__all__ = [
    "EELBertConfig",
    "EELBertModel",
    "EELBertForMaskedLM",
    "EELBertForSequenceClassification",
    "EELBertForTokenClassification",
    "EELBertForQuestionAnswering",
    "EELBertForMultipleChoice",
    "EELBertPreTrainedModel",
    "EELBertTokenizer",
    "DynamicNgramEmbeddings",
    "pipeline",
    "load_onnx_classifier",
]
