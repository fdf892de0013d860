// EELBERT in JavaScript: the base tokenizer (tokenizers.js reading the saved tokenizer.json: WordPiece, BPE, byte-level
// BPE or Unigram), n-gram ids (ngram-hash.js),
// and an onnxruntime session (onnxruntime-web in the browser, onnxruntime-node in node) -> label and score.
// The folder is what `eelbert export ... --onnx` writes: config.json, tokenizer.json, tokenizer_config.json and
// the model as two graphs, onnx/token_embeddings.onnx (n-gram ids -> token embeddings, run only for tokens not seen
// yet) and onnx/model_from_embeddings[_quantized].onnx (float32 / int8), or as one, onnx/model[_quantized].onnx.
import { Tokenizer } from "@huggingface/tokenizers";

import { HASH_SCHEME, ngramParams, tokenNgramIds } from "./ngram-hash.js";

export const MODEL_FILES = { fp32: "onnx/model.onnx", int8: "onnx/model_quantized.onnx" }; // the single graph
export const TOKEN_EMBEDDINGS_FILE = "onnx/token_embeddings.onnx";
export const FROM_EMBEDDINGS_FILES = { fp32: "onnx/model_from_embeddings.onnx", int8: "onnx/model_from_embeddings_quantized.onnx" };
export const CACHE_BYTES = 16 * 2 ** 20; // as Python's: the whole 30,522-token vocabulary at d=128 fits
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
  const embeddingType = config.embedding_type ?? "dynamic";
  if (embeddingType !== "dynamic" && embeddingType !== "random_hash") {
    throw new Error(`embedding_type ${JSON.stringify(embeddingType)} reads no n-gram ids (need dynamic or random_hash)`);
  }
  for (const field of ["ngram_min_n", "ngram_max_n", "max_ngrams_per_token", "hash_scheme", "token_format"]) {
    if (field in tokenizerConfig && tokenizerConfig[field] !== config[field]) {
      throw new Error(`tokenizer_config.json and config.json disagree on ${field}: ${tokenizerConfig[field]} vs ${config[field]}`);
    }
  }
  return ngramParams({
    ngramMinN: config.ngram_min_n,
    ngramMaxN: config.ngram_max_n,
    maxNgramsPerToken: config.max_ngrams_per_token,
    wholeToken: embeddingType === "random_hash", // one hashed atom per token, as the Python tokenizer's "whole_token"
    tokenFormat: config.token_format ?? "wordpiece", // configs written before token formats existed are WordPiece
  });
}

/** The base tokenizer plus n-gram ids: what EELBertTokenizer returns in Python, for one text. */
export class EELBertTokenizer {
  constructor(tokenizerJson, tokenizerConfig, config) {
    this.base = new Tokenizer(tokenizerJson, tokenizerConfig);
    this.options = ngramOptions(config, tokenizerConfig);
    // special tokens (added with special=true) are atoms, as Python's all_special_tokens
    this.specialTokens = new Set(tokenizerJson.added_tokens.filter((t) => t.special).map((t) => t.content));
    // WordPiece and BPE name their unknown token, Unigram gives its id; a byte-level BPE has none
    const { unk_token: unkToken, unk_id: unkIdOfModel } = tokenizerJson.model;
    this.unkId = unkIdOfModel ?? (unkToken == null ? undefined : this.base.token_to_id(unkToken));
    this.padId = this.base.token_to_id(tokenizerConfig.pad_token ?? "[PAD]");
    if (this.padId === undefined) throw new Error(`the vocabulary has no pad token ${tokenizerConfig.pad_token ?? "[PAD]"}`);
    // the post-processor's tokens around one text ([CLS] .. [SEP] for BERT's template, none without a template)
    const withSpecial = this.base.encode("a").ids;
    const bare = this.base.encode("a", { add_special_tokens: false }).ids;
    const start = withSpecial.findIndex((_, i) => bare.every((id, k) => withSpecial[i + k] === id));
    [this.before, this.after] = [withSpecial.slice(0, start), withSpecial.slice(start + bare.length)];
    this.rows = new Map(); // token id -> its n-gram ids, each token hashed once
    const ids = [...Object.values(tokenizerJson.model.vocab), ...tokenizerJson.added_tokens.map((t) => t.id)];
    this.vocabSize = ids.reduce((a, b) => Math.max(a, b), -1) + 1; // token ids lie in [0, vocabSize)
  }

  static async load(read, config = null) {
    const [tokenizerJson, tokenizerConfig] = await Promise.all([readJson(read, "tokenizer.json"), readJson(read, "tokenizer_config.json")]);
    return new EELBertTokenizer(tokenizerJson, tokenizerConfig, config ?? (await readJson(read, "config.json")));
  }

  /** The n-gram ids of token `id` (unpadded). */
  ngramRow(id) {
    let row = this.rows.get(id);
    if (row === undefined) {
      const token = this.base.id_to_token(id);
      if (token === undefined) throw new RangeError(`no token with id ${id}`);
      row = tokenNgramIds(token, { atom: this.specialTokens.has(token), ...this.options });
      this.rows.set(id, row);
    }
    return row;
  }

  /** One text -> { inputIds, ngramIds (one padded row per token), known }, cut to `maxLength` tokens as Python's
   * truncation=True does (the text's first pieces, between the special tokens). `known`: some piece is not unknown. */
  encode(text, { maxLength = 512 } = {}) {
    if (typeof text !== "string") throw new TypeError(`text must be a string, got ${typeof text}`);
    const specials = this.before.length + this.after.length;
    if (!Number.isInteger(maxLength) || maxLength < Math.max(specials, 1)) {
      throw new RangeError(`maxLength must be an integer >= ${Math.max(specials, 1)} (the special tokens), got ${maxLength}`);
    }
    // the Python tokenizer replaces lone surrogates with U+FFFD (the Rust tokenizer refuses them); do the same
    const clean = text.replace(LONE_SURROGATE, "\ufffd");
    const pieces = this.base.encode(clean, { add_special_tokens: false }).ids;
    const known = pieces.some((id) => id !== this.unkId);
    const inputIds = [...this.before, ...pieces.slice(0, maxLength - specials), ...this.after];
    const tokenizer = this;
    return { inputIds, known, get ngramIds() { return tokenizer.encodeIds(inputIds); } }; // computed when read
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

/** Token id -> its embedding, stored on first sight while `cacheBytes` lasts (first come, first kept): the slot
 * index (4 bytes a vocabulary entry) and the rows (4 bytes a dimension) stay within it. */
export class TokenEmbeddingCache {
  constructor(vocabSize, hidden, cacheBytes = CACHE_BYTES) {
    if (!Number.isInteger(cacheBytes) || cacheBytes <= 0) throw new RangeError(`cacheBytes must be an integer > 0, got ${cacheBytes}`);
    this.hidden = hidden;
    this.budget = Math.max(Math.floor((cacheBytes - 4 * vocabSize) / (4 * hidden)), 1); // rows, row 0 never written
    this.slot = new Int32Array(vocabSize); // token id -> its row; 0 = not stored
    this.rows = new Float32Array(Math.min(this.budget, 1024) * hidden); // grown by doubling up to the budget
    this.used = 1;
  }

  get info() {
    return { tokens: this.used - 1, bytes: this.slot.byteLength + 4 * this.hidden * this.used,
      maxBytes: this.slot.byteLength + 4 * this.hidden * this.budget };
  }

  /** Token ids not stored yet, each once. */
  missing(ids) {
    let out = null;
    for (const id of ids) if (this.slot[id] === 0) (out ??= new Set()).add(id);
    return out ? [...out] : [];
  }

  /** Store `embeddings` (Float32Array, one row of `hidden` per id) of `ids` while the budget lasts. */
  store(ids, embeddings) {
    const keep = Math.min(ids.length, this.budget - this.used);
    if (keep <= 0) return;
    if ((this.used + keep) * this.hidden > this.rows.length) {
      const grown = new Float32Array(Math.min(this.budget, Math.max(2 * this.rows.length / this.hidden, this.used + keep)) * this.hidden);
      grown.set(this.rows.subarray(0, this.used * this.hidden));
      this.rows = grown;
    }
    this.rows.set(embeddings.subarray(0, keep * this.hidden), this.used * this.hidden);
    for (let i = 0; i < keep; i++) this.slot[ids[i]] = this.used + i;
    this.used += keep;
  }

  /** ids (flat) -> their embeddings (Float32Array, ids.length x hidden); `computed` holds the rows of `extra`, ids
   * computed for this call that the budget left unstored. */
  gather(ids, extra = [], computed = null) {
    const d = this.hidden;
    const out = new Float32Array(ids.length * d);
    const unstored = extra.length ? new Map(extra.map((id, i) => [id, i])) : null;
    ids.forEach((id, i) => {
      const row = this.slot[id];
      if (row !== 0) out.set(this.rows.subarray(row * d, row * d + d), i * d);
      else out.set(computed.subarray(unstored.get(id) * d, unstored.get(id) * d + d), i * d);
    });
    return out;
  }
}

/** A text classifier over an exported folder. `ort` is the onnxruntime module (onnxruntime-web or -node). */
export class EELBertClassifier {
  constructor(ort, session, tokenizer, config, modelBytes, { tokenSession = null, cacheBytes = 0, files = [] } = {}) {
    Object.assign(this, { ort, session, tokenizer, config, modelBytes, tokenSession, files });
    this.labels = Object.entries(config.id2label ?? {}).sort((a, b) => a[0] - b[0]).map(([, label]) => label);
    this.cache = tokenSession ? new TokenEmbeddingCache(tokenizer.vocabSize, config.hidden_size, cacheBytes) : null;
    this.queue = Promise.resolve(); // runs take turns: the cache is filled once, and onnxruntime-web runs one at a time
  }

  /** `read`: name -> ArrayBuffer (see fetchReader); `dtype`: "fp32" or "int8"; `cacheBytes`: the bound on stored
   * token embeddings (default 16 MiB), 0 for the single graph on every call. */
  static async load(read, { ort, dtype = "int8", sessionOptions = {}, cacheBytes = CACHE_BYTES } = {}) {
    if (!ort?.InferenceSession) throw new TypeError("pass the onnxruntime module as { ort }");
    if (!(dtype in MODEL_FILES)) throw new RangeError(`dtype must be one of ${Object.keys(MODEL_FILES).join(", ")}, got ${dtype}`);
    if (!Number.isInteger(cacheBytes) || cacheBytes < 0) throw new RangeError(`cacheBytes must be an integer >= 0, got ${cacheBytes}`);
    const config = await readJson(read, "config.json");
    if (!(config.architectures ?? []).includes("EELBertForSequenceClassification")) {
      throw new Error(`config.json holds ${config.architectures}, not an EELBertForSequenceClassification`);
    }
    const files = cacheBytes > 0 ? [TOKEN_EMBEDDINGS_FILE, FROM_EMBEDDINGS_FILES[dtype]] : [MODEL_FILES[dtype]];
    const readModel = (name) => read(name).catch((error) => {
      throw new Error(`${error.message} (${name}: write it with eelbert export ... --onnx${dtype === "int8" ? " --quantize" : ""}` +
        `${cacheBytes > 0 ? "; an older export has only the single graph: load it with { cacheBytes: 0 }" : ""})`);
    });
    const [tokenizer, ...models] = await Promise.all([EELBertTokenizer.load(read, config), ...files.map(readModel)]);
    const sessions = await Promise.all(models.map((model) => ort.InferenceSession.create(new Uint8Array(model), sessionOptions)));
    const bytes = models.reduce((total, model) => total + model.byteLength, 0);
    if (cacheBytes === 0) return new EELBertClassifier(ort, sessions[0], tokenizer, config, bytes, { files });
    return new EELBertClassifier(ort, sessions[1], tokenizer, config, bytes, { tokenSession: sessions[0], cacheBytes, files });
  }

  /** The graph inputs for encoded texts, right-padded to the longest with [PAD], whose n-gram row is its own (as
   * Python's tokenizer.pad recomputes it) and whose attention mask is 0: the single graph's four (all int64), or,
   * with the cache, token_embeddings (float32) and the masks. */
  async feeds(encoded) {
    const [batch, seq] = [encoded.length, Math.max(...encoded.map((e) => e.inputIds.length))];
    const dims = [batch, seq];
    const ids = new Int32Array(batch * seq).fill(this.tokenizer.padId); // (B, S), flat
    const mask = new BigInt64Array(batch * seq);
    encoded.forEach((e, b) => {
      ids.set(e.inputIds, b * seq);
      mask.fill(1n, b * seq, b * seq + e.inputIds.length);
    });
    const masks = {
      attention_mask: new this.ort.Tensor("int64", mask, dims),
      token_type_ids: new this.ort.Tensor("int64", new BigInt64Array(batch * seq), dims),
    };
    if (this.cache) {
      const embeddings = await this.tokenEmbeddings(ids); // (B * S * d)
      return { token_embeddings: new this.ort.Tensor("float32", embeddings, [batch, seq, this.cache.hidden]), ...masks };
    }
    const width = this.tokenizer.options.maxNgramsPerToken;
    return { input_ids: new this.ort.Tensor("int64", BigInt64Array.from(ids, BigInt), dims),
      ngram_ids: new this.ort.Tensor("int64", this.ngramIds(ids), [batch, seq, width]), ...masks };
  }

  /** Token ids (flat) -> their n-gram rows, zero-padded, flat (ids.length x maxNgramsPerToken) int64. */
  ngramIds(ids) {
    const width = this.tokenizer.options.maxNgramsPerToken;
    const out = new BigInt64Array(ids.length * width); // 0: the empty slot
    ids.forEach((id, i) => this.tokenizer.ngramRow(id).forEach((ngram, j) => { out[i * width + j] = BigInt(ngram); }));
    return out;
  }

  /** Token ids (flat) -> their embeddings (Float32Array): the token-embedding graph runs only for ids not stored. */
  async tokenEmbeddings(ids) {
    const missing = this.cache.missing(ids);
    if (missing.length === 0) return this.cache.gather(ids);
    const width = this.tokenizer.options.maxNgramsPerToken;
    const output = await this.tokenSession.run({ ngram_ids: new this.ort.Tensor("int64", this.ngramIds(missing), [missing.length, width]) });
    const computed = output.token_embeddings.data;
    const stored = this.cache.used;
    this.cache.store(missing, computed);
    const unstored = missing.slice(this.cache.used - stored);
    return this.cache.gather(ids, unstored, computed.subarray((this.cache.used - stored) * this.cache.hidden));
  }

  /** One run at a time, in call order, whatever the previous run's outcome. */
  serial(fn) {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => {});
    return run;
  }

  async run(encoded) {
    return this.serial(async () => (await this.session.run(await this.feeds(encoded))).logits);
  }

  /** Raw logits of one text, or of a list of texts run as one padded batch (each cut to `maxLength` tokens). */
  async logits(texts, { maxLength = 128 } = {}) {
    const batch = Array.isArray(texts) ? texts : [texts];
    if (batch.length === 0) throw new RangeError("got an empty batch: pass a string or a non-empty list of strings");
    const logits = await this.run(batch.map((text) => this.tokenizer.encode(text, { maxLength })));
    const rows = [];
    const width = logits.dims.at(-1);
    for (let i = 0; i < batch.length; i++) rows.push(Array.from(logits.data.subarray(i * width, (i + 1) * width)));
    return Array.isArray(texts) ? rows : rows[0];
  }

  /** { label, score, logits } as Python's classify (texts cut to 128 tokens); a text with no known word gets
   * { label: null, score: null, warning } instead of a guess. */
  async classify(text, { maxLength = 128 } = {}) {
    const encoded = this.tokenizer.encode(text, { maxLength });
    if (!encoded.known) return { label: null, score: null, warning: NO_KNOWN_WORDS };
    const logits = Array.from((await this.run([encoded])).data);
    const probs = softmax(logits);
    const best = probs.indexOf(Math.max(...probs));
    return { label: this.labels[best] ?? `LABEL_${best}`, score: probs[best], logits };
  }
}
