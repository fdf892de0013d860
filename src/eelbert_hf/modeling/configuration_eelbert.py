"""EELBERT configuration: BERT's fields plus the n-gram hash fields."""

from transformers import PreTrainedConfig

from .ngram_hashing import MAX_NGRAM_ID, NGRAM_DEFAULTS, NGRAM_FIELDS, check_ngram_params

EMBEDDING_TYPES = ("dynamic", "table", "hash_init", "random_hash")  # see the class docstring
TABLE_TYPES = ("table", "hash_init")
POOLINGS = ("cls", "mean")
# BERT's sizes (layers, hidden, heads; intermediate is 4 x hidden); "uno" is the paper's smallest, 1-layer model.
PRESETS = {name: dict(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads, intermediate_size=4 * hidden)
           for name, (layers, hidden, heads) in dict(base=(12, 768, 12), mini=(4, 256, 4), tiny=(2, 128, 2),
                                                     uno=(1, 128, 2)).items()}
# Defaults of BERT's fields (bert-base-uncased) and of EELBERT's (documented in the class docstring).
BERT_FIELDS = dict(vocab_size=30522, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                   intermediate_size=3072, hidden_act="gelu", hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                   max_position_embeddings=512, type_vocab_size=2, initializer_range=0.02, layer_norm_eps=1e-12,
                   classifier_dropout=None, classifier_pooling="cls")
EELBERT_FIELDS = dict(embedding_type="dynamic", **NGRAM_DEFAULTS, ngram_seed=0, ngram_weight_buckets=4096,
                      ngram_gate_scale=300.0, ngram_codebook_buckets=0, ngram_codebook_dim=8)
# Written into every saved config.json, so a folder loads through any of these Auto classes with remote code.
AUTO_MAP = {"AutoConfig": "configuration_eelbert.EELBertConfig", **{
    f"AutoModel{head}": f"modeling_eelbert.EELBert{head or 'Model'}" for head in ("", "ForMaskedLM",
    "ForSequenceClassification", "ForTokenClassification", "ForQuestionAnswering", "ForMultipleChoice")}}


class EELBertConfig(PreTrainedConfig):
    r"""Configuration of an EELBERT model.

    Args beyond [`BertConfig`]'s:
        embedding_type (`str`, defaults to `"dynamic"`): `"dynamic"` computes token embeddings from `ngram_ids`
            (no table); `"table"` is BERT's learned `vocab_size x hidden_size` table fed by `input_ids`, for
            baselines; `"hash_init"` is that table initialised from the dynamic embeddings
            (`eelbert_hf.training.init_table_from_hash`); `"random_hash"` is dynamic with a tokenizer of
            `feature_type="whole_token"` (one hashed atom per token, no morphology), the paper's ablation.
        hash_scheme (`str`, defaults to `"eelbert-ngram-v1"`): version of the n-gram hash spec.
        ngram_min_n, ngram_max_n (`int`, default 1 and 3): character n-gram lengths the tokenizer emits.
        max_ngrams_per_token (`int`, defaults to 48): width of `ngram_ids` (at most 128).
        ngram_seed (`int`, defaults to 0): seed of the per-dimension hash constants.
        ngram_weight_buckets (`int`, defaults to 4096): learned per-n-gram gates (n-gram id mod this); 0: none.
        ngram_gate_scale (`float`, defaults to 300.0): a gate `g` weighs its n-grams by `1 + ngram_gate_scale * g`,
            so the gates train this many times faster than the rest at one learning rate.
        ngram_codebook_buckets (`int`, defaults to 0): learned n-gram codebook of this many rows (n-gram id mod this),
            `ngram_codebook_dim` wide; a token adds the mean of its n-grams' rows times a learned
            `ngram_codebook_dim x hidden_size` map that starts at zero. 0: none, the spec's embedding alone.
        ngram_codebook_dim (`int`, defaults to 8): width of a codebook row.
        classifier_pooling (`str`, defaults to `"cls"`): the vector a sequence classifier (and multiple choice)
            reads, through BERT's pooler layer: `"cls"` the first token's final hidden state, as BERT; `"mean"` the
            mean over the tokens the attention mask keeps (ModernBERT's option of the same name).
    """

    model_type = "eelbert"

    def __init__(self, pad_token_id=0, **kwargs):
        fields = {name: kwargs.pop(name, default) for name, default in {**BERT_FIELDS, **EELBERT_FIELDS}.items()}
        kwargs.setdefault("tie_word_embeddings", False)  # the MLM output layer is its own, never tied
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        super().__init__(pad_token_id=pad_token_id, **kwargs)
        for name, value in fields.items():
            setattr(self, name, value)
        self.is_decoder = self.add_cross_attention = self.use_cache = False  # an encoder: no decoder or cache paths
        self.check()

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "EELBertConfig":
        """`"base"`, `"mini"`, `"tiny"` or `"uno"` (L12/H768, L4/H256, L2/H128, L1/H128), then `overrides`."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})

    def check(self):
        """Raise a ``ValueError`` naming the first invalid field."""
        def is_int(value, low=1, high=float("inf")):
            return type(value) is int and low <= value < high

        rules = [(name, is_int, "a positive integer") for name in ("vocab_size", "hidden_size",
                 "num_hidden_layers", "num_attention_heads", "intermediate_size", "max_position_embeddings",
                 "type_vocab_size")] + [
            ("hidden_size", lambda v: v % self.num_attention_heads == 0,
             f"a multiple of num_attention_heads ({self.num_attention_heads})"),
            ("embedding_type", lambda v: v in EMBEDDING_TYPES, f"one of {EMBEDDING_TYPES}"),
            ("ngram_seed", lambda v: is_int(v, 0, 2**64), "an integer in [0, 2**64)"),
            # n-gram ids lie in 1..MAX_NGRAM_ID, so more buckets than that would never be read
            ("ngram_weight_buckets", lambda v: is_int(v, 0, MAX_NGRAM_ID + 1),
             f"an integer in [0, {MAX_NGRAM_ID}] (0 turns the learned n-gram gates off)"),
            ("ngram_gate_scale", lambda v: type(v) in (int, float) and 0 < v < float("inf"), "a positive finite number"),
            ("ngram_codebook_buckets", lambda v: is_int(v, 0, MAX_NGRAM_ID + 1),
             f"an integer in [0, {MAX_NGRAM_ID}] (0 turns the n-gram codebook off)"),
            ("ngram_codebook_dim", is_int, "a positive integer"),
            ("ngram_codebook_buckets", lambda v: v == 0 or self.embedding_type not in TABLE_TYPES,
             f"0 with embedding_type={self.embedding_type!r}, which reads no n-gram ids"),
            ("classifier_pooling", lambda v: v in POOLINGS, f"one of {POOLINGS}"),
            ("hidden_dropout_prob", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("attention_probs_dropout_prob", lambda v: 0 <= v < 1, "in [0, 1)"),
            ("pad_token_id", lambda v: v is None or is_int(v, 0, self.vocab_size), f"in [0, vocab_size={self.vocab_size})"),
        ]
        for name, ok, what in rules:
            if not ok(getattr(self, name)):
                raise ValueError(f"{name} must be {what}, got {getattr(self, name)!r}")
        check_ngram_params(**{field: getattr(self, field) for field in NGRAM_FIELDS})


__all__ = ["EELBertConfig"]
