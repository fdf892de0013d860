"""EELBERT: BERT whose input-embedding table is replaced by n-gram hash embeddings computed on the fly.

Cohn et al., 2023 (arXiv:2310.20144). The only new module is the embedding layer (`EELBertEmbeddings`, with
`DynamicNgramEmbeddings`); encoder, pooler, heads and losses are transformers' BERT classes, reused by inheritance.
Inputs are checked where they enter: a bad tensor is a TypeError/ValueError that says what to pass.
"""

from collections import OrderedDict
from contextvars import ContextVar

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import MaskedLMOutput
from transformers.models.bert.modeling_bert import (BertEncoder, BertForMultipleChoice, BertForQuestionAnswering,
                                                    BertForSequenceClassification, BertForTokenClassification,
                                                    BertModel, BertPooler, BertPreTrainedModel,
                                                    BertPredictionHeadTransform)
from transformers.utils import can_return_tuple

from .configuration_eelbert import TABLE_TYPES, EELBertConfig
from .ngram_embedding import DynamicNgramEmbeddings
from .ngram_hashing import MAX_NGRAM_ID

NGRAM_HINT = "pass the `ngram_ids` that EELBertTokenizer returns next to input_ids"


def check_ids(name, tensor, shape=None, high=None, hint=""):
    """Raise a TypeError/ValueError unless `tensor` is an integer tensor of `shape` (ints must match, names stand for
    any size) with values in [0, high] (the range is not read while compiling)."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}; {hint}")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must hold integers (torch.long), got {tensor.dtype}; {hint}")
    if shape is not None and (tensor.dim() != len(shape)
                              or any(isinstance(w, int) and w != got for w, got in zip(shape, tensor.shape))):
        raise ValueError(f"{name} must have shape ({', '.join(map(str, shape))}) to match the other inputs, "
                         f"got {tuple(tensor.shape)}; {hint}")
    if high is not None and tensor.numel() and not torch.compiler.is_compiling():
        low, top = (int(v) for v in torch.aminmax(tensor))  # one pass over the tensor
        if low < 0 or top > high:
            raise ValueError(f"{name} values must lie in [0, {high}], got [{low}, {top}]; {hint}")


def check_labels(labels, classes, shape=None, hint=""):
    """Check class-id `labels` of `shape` against `classes` (-100 marks a position without a label, as in the
    cross-entropy); return the mask of labelled positions."""
    hint = f"{hint}; -100 marks a position without a label"
    check_ids("labels", labels, shape, hint=hint)
    selected = labels != -100
    check_ids("labels", labels[selected], high=classes - 1, hint=hint)
    return selected


def classifier_dropout(config):  # BERT's rule: classifier_dropout if set, else hidden_dropout_prob
    return nn.Dropout(config.hidden_dropout_prob if config.classifier_dropout is None else config.classifier_dropout)


class EELBertEmbeddings(nn.Module):
    """Token embedding (dynamic n-gram hash, or a table) + BERT's position and segment embeddings."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        # Read on every call, so copied out of the config (whose attribute access goes through a slow __getattribute__).
        self.uses_table, self.ngram_width = config.embedding_type in TABLE_TYPES, config.max_ngrams_per_token
        if self.uses_table:  # BERT's own table and parameter name: BERT checkpoints load
            self.word_embeddings = nn.Embedding(config.vocab_size, config.hidden_size, padding_idx=config.pad_token_id)
        else:
            self.ngram_embeddings = DynamicNgramEmbeddings(config)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, config.hidden_size)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, config.hidden_size)
        self.LayerNorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)
        self.position_ids = nn.Buffer(torch.arange(config.max_position_embeddings)[None], persistent=False)

    def token_embeddings(self, input_ids=None, ngram_ids=None, axes=("batch", "seq_len")):
        """The part that replaces BERT's table: ids of shape `axes`, or n-gram ids of shape (*axes, K) -> (*axes, d)."""
        if self.uses_table:
            if input_ids is None:
                raise ValueError(f"embedding_type={self.config.embedding_type!r} needs input_ids (or inputs_embeds)")
            check_ids("input_ids", input_ids, axes, self.config.vocab_size - 1, "use the tokenizer the model was trained with")
            return self.word_embeddings(input_ids)
        if ngram_ids is None:
            raise ValueError(f"EELBERT computes token embeddings from n-gram ids, but ngram_ids is missing: {NGRAM_HINT}")
        check_ids("ngram_ids", ngram_ids, (*axes, self.ngram_width), MAX_NGRAM_ID, NGRAM_HINT)
        if input_ids is not None:  # any values work: the fast path's table is keyed by them, the result is not
            check_ids("input_ids", input_ids, tuple(ngram_ids.shape[:-1]), hint=NGRAM_HINT)
            input_ids = input_ids.long()
        return self.ngram_embeddings(ngram_ids.long(), input_ids).to(self.position_embeddings.weight.dtype)

    def forward(self, inputs_embeds, token_type_ids=None, position_ids=None, **kwargs):
        # BertModel.forward calls this with the token embeddings as `inputs_embeds` (see EELBertModel.forward).
        batch, seq = inputs_embeds.shape[:2]
        if position_ids is None:
            if seq > self.position_ids.shape[-1]:
                raise ValueError(f"sequence length {seq} exceeds max_position_embeddings="
                                 f"{self.position_ids.shape[-1]}: tokenize with truncation=True")
            position_ids = self.position_ids[:, :seq]
        else:
            check_ids("position_ids", position_ids, ("batch or 1", seq), self.position_ids.shape[-1] - 1,
                      "one row or one per sequence")
        if token_type_ids is None:  # segment 0 everywhere: one row, broadcast
            types = self.token_type_embeddings.weight[0]
        else:
            count = self.token_type_embeddings.num_embeddings
            check_ids("token_type_ids", token_type_ids, (batch, seq), count - 1, f"this model has type_vocab_size={count}")
            types = self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(inputs_embeds + types + self.position_embeddings(position_ids)))


class EELBertPreTrainedModel(BertPreTrainedModel):
    config_class = EELBertConfig
    base_model_prefix = "bert"
    _keys_to_ignore_on_load_unexpected = [r"cls\.predictions\.bias"]  # BERT's tied bias has no twin here
    accepts_loss_kwargs = False  # losses are batch means: Trainer scales them for accumulation and DDP itself

    def __init__(self, config, *args, **kwargs):
        # Skip the Bert* constructors that follow in the MRO: they would build the vocab x hidden table.
        PreTrainedModel.__init__(self, config, *args, **kwargs)

    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, DynamicNgramEmbeddings):
            module.reset_constants()
            if module.weight_buckets:
                init.zeros_(module.bucket_weights)  # gates start at weight 1.0: the plain n-gram mean
            if module.codebook_buckets:  # rows like BERT's table; the map at zero: the sum starts as the spec's
                init.normal_(module.codebook, std=self.config.initializer_range)
                init.zeros_(module.codebook_map)
        elif isinstance(module, EELBertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1])[None])


# BertModel.forward calls the pooler with the hidden states alone, and a mean must leave the padding out:
# EELBertModel.forward puts the attention mask here for the length of its call. A context variable, so each thread
# and each asyncio task sees only its own call's mask.
_POOLING_MASK = ContextVar("eelbert_pooling_mask", default=None)


class EELBertPooler(BertPooler):
    """BERT's pooler (dense + tanh) over the first token, or with `classifier_pooling="mean"` over the mean of the
    tokens the attention mask keeps (`attention_mask`, else the mask of the EELBertModel call under way, else
    every token); the same weights either way."""

    def __init__(self, config):
        super().__init__(config)
        self.mean = config.classifier_pooling == "mean"

    def forward(self, hidden_states, attention_mask=None):
        if not self.mean:
            return super().forward(hidden_states)
        if attention_mask is None:
            attention_mask = _POOLING_MASK.get()
        if attention_mask is None:
            pooled = hidden_states.mean(1)
        else:  # a row with no kept token pools to zeros instead of 0 / 0
            keep = attention_mask.unsqueeze(-1).to(hidden_states.dtype)
            pooled = (hidden_states * keep).sum(1) / keep.sum(1).clamp(min=1)
        return self.activation(self.dense(pooled))


class EELBertModel(EELBertPreTrainedModel, BertModel):
    """BERT encoder fed by EELBERT embeddings; `forward` is BertModel's, after the token-embedding step."""

    _no_split_modules = ["EELBertEmbeddings", "BertLayer"]

    def __init__(self, config, add_pooling_layer=True):
        super().__init__(config)
        self.embeddings = EELBertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = EELBertPooler(config) if add_pooling_layer else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings if self.embeddings.uses_table else self.embeddings.ngram_embeddings

    def set_input_embeddings(self, value):
        if not self.embeddings.uses_table:
            raise ValueError(f"embedding_type={self.config.embedding_type!r} has no input-embedding table to replace")
        self.embeddings.word_embeddings = value

    @can_return_tuple  # return_dict=False gives a tuple, as BertModel's
    def forward(self, input_ids=None, ngram_ids=None, attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, **kwargs):
        if inputs_embeds is None:
            inputs_embeds = self.embeddings.token_embeddings(input_ids, ngram_ids)
        elif not (isinstance(inputs_embeds, torch.Tensor) and inputs_embeds.is_floating_point()
                  and inputs_embeds.dim() == 3 and inputs_embeds.shape[-1] == self.config.hidden_size):
            raise ValueError(f"inputs_embeds must be a float tensor of shape (batch, seq_len, {self.config.hidden_size})")
        shape = tuple(inputs_embeds.shape[:2])
        if 0 in shape:  # torch would fail deep inside attention with a reshape error
            raise ValueError(f"empty input of shape {shape}: pass at least one sequence with at least one token")
        if attention_mask is not None and not isinstance(attention_mask, torch.Tensor):
            raise TypeError(f"attention_mask must be a torch.Tensor, got {type(attention_mask).__name__}")
        if attention_mask is not None and tuple(attention_mask.shape) != shape:
            raise ValueError(f"attention_mask shape {tuple(attention_mask.shape)} does not match the input shape {shape}")
        mask = _POOLING_MASK.set(attention_mask)  # for a mean pooler, which BertModel.forward calls without it
        try:
            return super().forward(attention_mask=attention_mask, token_type_ids=token_type_ids,
                                   position_ids=position_ids, inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        finally:
            _POOLING_MASK.reset(mask)


class EELBertForMaskedLM(EELBertPreTrainedModel):
    _tied_weights_keys = None
    accepts_loss_kwargs = True  # with Trainer's `num_items_in_batch`, the loss is per masked token of the step

    def __init__(self, config):
        super().__init__(config)
        self.bert = EELBertModel(config, add_pooling_layer=False)
        self.cls = nn.Module()  # BERT's MLM transform + a trainable output layer, never tied; BERT's names:
        self.cls.predictions = nn.Sequential(OrderedDict(  # cls.predictions.transform.*, cls.predictions.decoder.*
            transform=BertPredictionHeadTransform(config), decoder=nn.Linear(config.hidden_size, config.vocab_size)))
        self.post_init()

    def get_output_embeddings(self):
        return self.cls.predictions.decoder

    def set_output_embeddings(self, new_embeddings):
        self.cls.predictions.decoder = new_embeddings

    @can_return_tuple  # return_dict=False gives a tuple, as for every BERT head
    def forward(self, input_ids=None, ngram_ids=None, attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, **kwargs):
        """With `labels`, logits are computed only where a label is set (`labels != -100`): `logits` is then
        (num_labelled, vocab_size) in row-major position order. Without labels: (B, S, vocab_size)."""
        kwargs.pop("return_dict", None)
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.bert(input_ids, ngram_ids=ngram_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids, position_ids=position_ids,
                            inputs_embeds=inputs_embeds, return_dict=True, **kwargs)
        hidden, loss = outputs.last_hidden_state, None
        if labels is None:
            logits = self.cls.predictions(hidden)
        else:
            selected = check_labels(labels, self.config.vocab_size, tuple(hidden.shape[:2]), "one token id per position")
            logits = self.cls.predictions(hidden[selected])  # (B, S, d) -> (N, d) -> (N, V)
            # Per labelled token of this batch, or of the whole step (every micro-batch and process) when Trainer
            # passes num_items_in_batch. With nothing labelled, a zero loss that still has a graph.
            count = max(len(logits), 1) if num_items_in_batch is None else num_items_in_batch
            loss = nn.functional.cross_entropy(logits, labels[selected], reduction="sum") / count
        return MaskedLMOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states,
                              attentions=outputs.attentions)


# The heads below are BERT's, over an EELBERT encoder. Each forward names `ngram_ids` so that Trainer keeps that
# dataset column and pipelines pass it; BERT's forward hands it on to `self.bert`.
class EELBertClassifier(EELBertPreTrainedModel):
    """BERT's classifier layers over an EELBERT encoder; with a BERT head class after it, that head's forward."""

    pooled = True  # classify the pooled [CLS] vector (sequence), or each token's

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = EELBertModel(config, add_pooling_layer=self.pooled)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, ngram_ids=None, attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, **kwargs):
        if labels is not None and not (isinstance(labels, torch.Tensor)  # class ids, unless regression or multi-label
                                       and (self.num_labels == 1 or labels.is_floating_point())):
            check_labels(labels, self.num_labels, hint=f"this model has num_labels={self.num_labels}")
        return super().forward(input_ids=input_ids, ngram_ids=ngram_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids, position_ids=position_ids,
                               inputs_embeds=inputs_embeds, labels=labels, **kwargs)


class EELBertForSequenceClassification(EELBertClassifier, BertForSequenceClassification):
    """Single-label, regression or multi-label classification of the whole sequence (BERT's loss rules)."""


class EELBertForTokenClassification(EELBertClassifier, BertForTokenClassification):
    """One label per token (-100 ignored)."""

    pooled = False


class EELBertForQuestionAnswering(EELBertPreTrainedModel, BertForQuestionAnswering):
    """Extractive question answering: start and end logits per token."""

    def __init__(self, config):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.bert = EELBertModel(config, add_pooling_layer=False)
        self.qa_outputs = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(self, input_ids=None, ngram_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, start_positions=None, end_positions=None, **kwargs):
        return super().forward(input_ids=input_ids, ngram_ids=ngram_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids, position_ids=position_ids, inputs_embeds=inputs_embeds,
                               start_positions=start_positions, end_positions=end_positions, **kwargs)


class EELBertForMultipleChoice(EELBertPreTrainedModel, BertForMultipleChoice):
    """One score per choice, softmax over choices. Inputs carry a choice axis: ids (B, C, S), `ngram_ids`
    (B, C, S, K), `labels` (B,)."""

    def __init__(self, config):
        super().__init__(config)
        self.bert = EELBertModel(config)
        self.dropout = classifier_dropout(config)
        self.classifier = nn.Linear(config.hidden_size, 1)
        self.post_init()

    def forward(self, input_ids=None, ngram_ids=None, attention_mask=None, token_type_ids=None,
                position_ids=None, inputs_embeds=None, labels=None, **kwargs):
        if ngram_ids is not None and inputs_embeds is None:  # (B, C, S, K) -> (B, C, S, d): BERT reads C off it
            inputs_embeds = self.bert.embeddings.token_embeddings(input_ids, ngram_ids, ("batch", "num_choices", "seq_len"))
            input_ids = None
        if input_ids is None and inputs_embeds is None:
            raise ValueError(f"no input: {NGRAM_HINT}, with a choice axis (batch, num_choices, seq_len, ...)")
        if labels is not None:  # one choice index per example
            batch, choices = (inputs_embeds if input_ids is None else input_ids).shape[:2]
            check_labels(labels, choices, (batch,), "labels hold one choice index per example")
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               position_ids=position_ids, inputs_embeds=inputs_embeds, labels=labels, **kwargs)


__all__ = ["EELBertPreTrainedModel", "EELBertModel", "EELBertForMaskedLM", "EELBertForSequenceClassification",
           "EELBertForTokenClassification", "EELBertForQuestionAnswering", "EELBertForMultipleChoice"]
