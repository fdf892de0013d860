// EELBERT in JavaScript: WordPiece (tokenizers.js reading the saved tokenizer.json), n-gram ids (ngram-hash.js),
// and an onnxruntime session (onnxruntime-web in the browser, onnxruntime-node in node) -> label and score.
// The folder is what `eelbert export ... --onnx` writes: config.json, tokenizer.json, tokenizer_config.json and
// onnx/model.onnx (float32) or onnx/model_quantized.onnx (int8).
import { Tokenizer } from "@huggingface/tokenizers";

import { HASH_SCHEME, ngramParams, tokenNgramIds } from "./ngram-hash.js";

export const MODEL_FILES = { fp32: "onnx/model.onnx", int8: "onnx/model_quantized.onnx" };
export const NO_KNOWN_WORDS = "no prediction: the text has no word the vocabulary knows (empty, or only unknown characters)";
const LONE_SURROGATE = /[\ud800-\udfff]/gu; // with the u flag this matches only unpaired surrogates

/** A reader over a folder served at `base` (a URL ending in "/"): name -> ArrayBuffer. */
export function fetchReader(base) {
  return async (name) => {
    const url = new URL(name, base);
    const response = await fetch(url);
    if (!response.ok) throw new Error(`could not load ${url}: HTTP ${response.status}`);
    return response.arrayBuffer();
  };
}

async function readJson(read, name) {
  const text = new TextDecoder().decode(await read(name));
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${name} is not valid JSON: ${error.message}`);
  }
}

/** The n-gram parameters of a model's config.json, checked against its tokenizer_config.json. */
export function ngramOptions(config, tokenizerConfig = {}) {
  if (config.hash_scheme !== HASH_SCHEME) {
    throw new Error(`config.json has hash_scheme ${JSON.stringify(config.hash_scheme)}; this code implements ${HASH_SCHEME}`);
  }
  // token formats other than WordPiece's (docs/hash-spec.md, step 2) are not implemented here yet: refuse them
  // rather than compute other n-gram ids than the model was trained on
  if ((config.token_format ?? "wordpiece") !== "wordpiece") {
    throw new Error(`config.json has token_format ${JSON.stringify(config.token_format)}; this code implements "wordpiece" only`);
  }
  const embeddingType = config.embedding_type ?? "dynamic";
  if (embeddingType !== "dynamic" && embeddingType !== "random_hash") {
    throw new Error(`embedding_type ${JSON.stringify(embeddingType)} reads no n-gram ids (need dynamic or random_hash)`);
  }
  for (const field of ["ngram_min_n", "ngram_max_n", "max_ngrams_per_token", "hash_scheme"]) {
    if (field in tokenizerConfig && tokenizerConfig[field] !== config[field]) {
      throw new Error(`tokenizer_config.json and config.json disagree on ${field}: ${tokenizerConfig[field]} vs ${config[field]}`);
    }
  }
  return ngramParams({
    ngramMinN: config.ngram_min_n,
    ngramMaxN: config.ngram_max_n,
    maxNgramsPerToken: config.max_ngrams_per_token,
    wholeToken: embeddingType === "random_hash", // one hashed atom per token, as the Python tokenizer's "whole_token"
  });
}

/** WordPiece plus n-gram ids: what EELBertTokenizer returns in Python, for one text. */
export class EELBertTokenizer {
  constructor(tokenizerJson, tokenizerConfig, config) {
    this.wordpiece = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.options = ngramOptions(config, tokenizerConfig);
    // special tokens (added with special=true) are atoms, as Python's all_special_tokens
    this.specialTokens = new Set(tokenizerJson.added_tokens.filter((t) => t.special).map((t) => t.content));
    this.unkId = this.wordpiece.token_to_id(tokenizerJson.model.unk_token);
    this.padId = this.wordpiece.token_to_id(tokenizerConfig.pad_token ?? "[PAD]");
    if (this.padId === undefined) throw new Error(`the vocabulary has no pad token ${tokenizerConfig.pad_token ?? "[PAD]"}`);
    this.rows = new Map(); // token id -> its n-gram ids, each token hashed once
  }

  static async load(read, config = null) {
    const [tokenizerJson, tokenizerConfig] = await Promise.all([readJson(read, "tokenizer.json"), readJson(read, "tokenizer_config.json")]);
    return new EELBertTokenizer(tokenizerJson, tokenizerConfig, config ?? (await readJson(read, "config.json")));
  }

  /** The n-gram ids of token `id` (unpadded). */
  ngramRow(id) {
    let row = this.rows.get(id);
    if (row === undefined) {
      const token = this.wordpiece.id_to_token(id);
      if (token === undefined) throw new RangeError(`no token with id ${id}`);
      row = tokenNgramIds(token, { atom: this.specialTokens.has(token), ...this.options });
      this.rows.set(id, row);
    }
    return row;
  }

  /** One text -> { inputIds, ngramIds (one padded row per token), known }, cut to `maxLength` tokens as Python's
   * truncation=True does ([CLS], the first maxLength - 2 pieces, [SEP]). `known`: some piece is not [UNK]. */
  encode(text, { maxLength = 512 } = {}) {
    if (typeof text !== "string") throw new TypeError(`text must be a string, got ${typeof text}`);
    if (!Number.isInteger(maxLength) || maxLength < 2) throw new RangeError(`maxLength must be an integer >= 2, got ${maxLength}`);
    // the Python tokenizer replaces lone surrogates with U+FFFD (the Rust tokenizer refuses them); do the same
    const clean = text.replace(LONE_SURROGATE, "\ufffd");
    const pieces = this.wordpiece.encode(clean, { add_special_tokens: false }).ids;
    let inputIds = this.wordpiece.encode(clean).ids;
    if (inputIds.length > maxLength) inputIds = [...inputIds.slice(0, maxLength - 1), inputIds[inputIds.length - 1]];
    return { inputIds, ngramIds: this.encodeIds(inputIds), known: pieces.some((id) => id !== this.unkId) };
  }

  /** Token ids -> their n-gram rows, each right-padded with 0 (the empty slot) to maxNgramsPerToken. */
  encodeIds(ids) {
    const width = this.options.maxNgramsPerToken;
    return ids.map((id) => {
      const row = this.ngramRow(id);
      return row.length === width ? row : [...row, ...new Array(width - row.length).fill(0)];
    });
  }
}

function softmax(logits) {
  const top = Math.max(...logits);
  const exps = logits.map((x) => Math.exp(x - top));
  const total = exps.reduce((a, b) => a + b, 0);
  return exps.map((x) => x / total);
}

/** A text classifier over an exported folder. `ort` is the onnxruntime module (onnxruntime-web or -node). */
export class EELBertClassifier {
  constructor(ort, session, tokenizer, config, modelBytes) {
    Object.assign(this, { ort, session, tokenizer, config, modelBytes });
    this.labels = Object.entries(config.id2label ?? {}).sort((a, b) => a[0] - b[0]).map(([, label]) => label);
  }

  /** `read`: name -> ArrayBuffer (see fetchReader); `dtype`: "fp32" or "int8". */
  static async load(read, { ort, dtype = "int8", sessionOptions = {} } = {}) {
    if (!ort?.InferenceSession) throw new TypeError("pass the onnxruntime module as { ort }");
    if (!(dtype in MODEL_FILES)) throw new RangeError(`dtype must be one of ${Object.keys(MODEL_FILES).join(", ")}, got ${dtype}`);
    const config = await readJson(read, "config.json");
    if (!(config.architectures ?? []).includes("EELBertForSequenceClassification")) {
      throw new Error(`config.json holds ${config.architectures}, not an EELBertForSequenceClassification`);
    }
    const [tokenizer, model] = await Promise.all([EELBertTokenizer.load(read, config), read(MODEL_FILES[dtype])]);
    const session = await ort.InferenceSession.create(new Uint8Array(model), sessionOptions);
    return new EELBertClassifier(ort, session, tokenizer, config, model.byteLength);
  }

  /** The four graph inputs (all int64) for encoded texts, right-padded to the longest with [PAD], whose n-gram
   * row is its own (as Python's tokenizer.pad recomputes it) and whose attention mask is 0. */
  feeds(encoded) {
    const seq = Math.max(...encoded.map((e) => e.inputIds.length));
    const width = this.tokenizer.options.maxNgramsPerToken;
    const pad = this.tokenizer.padId;
    const padRow = this.tokenizer.encodeIds([pad])[0];
    const [inputIds, ngramIds, mask] = [[], [], []];
    for (const e of encoded) {
      const extra = seq - e.inputIds.length;
      inputIds.push(...e.inputIds, ...new Array(extra).fill(pad));
      for (const row of e.ngramIds) ngramIds.push(...row);
      for (let i = 0; i < extra; i++) ngramIds.push(...padRow);
      mask.push(...new Array(e.inputIds.length).fill(1), ...new Array(extra).fill(0));
    }
    const int64 = (values, dims) => new this.ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
    return {
      input_ids: int64(inputIds, [encoded.length, seq]),
      ngram_ids: int64(ngramIds, [encoded.length, seq, width]),
      attention_mask: int64(mask, [encoded.length, seq]),
      token_type_ids: int64(new Array(encoded.length * seq).fill(0), [encoded.length, seq]),
    };
  }

  /** Raw logits of one text, or of a list of texts run as one padded batch (each cut to `maxLength` tokens). */
  async logits(texts, { maxLength = 128 } = {}) {
    const batch = Array.isArray(texts) ? texts : [texts];
    if (batch.length === 0) throw new RangeError("got an empty batch: pass a string or a non-empty list of strings");
    const outputs = await this.session.run(this.feeds(batch.map((text) => this.tokenizer.encode(text, { maxLength }))));
    const rows = [];
    const width = outputs.logits.dims.at(-1);
    for (let i = 0; i < batch.length; i++) rows.push(Array.from(outputs.logits.data.subarray(i * width, (i + 1) * width)));
    return Array.isArray(texts) ? rows : rows[0];
  }

  /** { label, score, logits } as Python's classify (texts cut to 128 tokens); a text with no known word gets
   * { label: null, score: null, warning } instead of a guess. */
  async classify(text, { maxLength = 128 } = {}) {
    const encoded = this.tokenizer.encode(text, { maxLength });
    if (!encoded.known) return { label: null, score: null, warning: NO_KNOWN_WORDS };
    const outputs = await this.session.run(this.feeds([encoded]));
    const logits = Array.from(outputs.logits.data);
    const probs = softmax(logits);
    const best = probs.indexOf(Math.max(...probs));
    return { label: this.labels[best] ?? `LABEL_${best}`, score: probs[best], logits };
  }
}
