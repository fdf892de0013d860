// EELBertClassifier's token-embedding cache (the export's two graphs): the same logits as the single graph, each
// token's embedding computed once, the memory bound kept, and concurrent async calls safe.
import assert from "node:assert/strict";
import { before, test } from "node:test";

import * as ort from "onnxruntime-node";

import { EELBertClassifier, TokenEmbeddingCache } from "../src/eelbert.js";
import { exportedFolder, folderReader } from "./helpers.js";

const TEXTS = ["The runner kept running, and everyone cheered!", "a gorgeous, witty film", "a dull, lifeless film",
  "Un café naïve — 文字 and emoji 😀 too.", "short", "great ".repeat(200)];
const OPTIONS = { ort, sessionOptions: { intraOpNumThreads: 1 } };

let folder;
before(() => { folder = exportedFolder(); });

const load = (options) => EELBertClassifier.load(folderReader(folder), { ...OPTIONS, ...options });

test("with the cache, logits equal the single graph's bit for bit (int8 and float32, alone and padded)", async () => {
  for (const dtype of ["int8", "fp32"]) {
    const [cached, single] = [await load({ dtype }), await load({ dtype, cacheBytes: 0 })];
    assert.ok(cached.cache && !single.cache);
    assert.deepEqual(cached.files, ["onnx/token_embeddings.onnx", `onnx/model_from_embeddings${dtype === "int8" ? "_quantized" : ""}.onnx`]);
    for (let pass = 0; pass < 2; pass++) { // the first pass computes the embeddings, the second reads them
      assert.deepEqual(await cached.logits(TEXTS), await single.logits(TEXTS));
      for (const text of TEXTS) assert.deepEqual(await cached.logits(text), await single.logits(text));
    }
  }
});

test("each token's embedding is computed once; the cache stays within its bound", async () => {
  const classifier = await load({});
  const seen = [];
  const run = classifier.tokenSession.run.bind(classifier.tokenSession);
  classifier.tokenSession = { run: (feeds) => { seen.push(feeds.ngram_ids.dims[0]); return run(feeds); } };
  const ids = new Set(TEXTS.flatMap((text) => classifier.tokenizer.encode(text, { maxLength: 128 }).inputIds));
  ids.add(classifier.tokenizer.padId);
  const first = await classifier.logits(TEXTS);
  assert.deepEqual(seen, [ids.size]);
  assert.deepEqual(await classifier.logits(TEXTS), first);
  assert.deepEqual(seen, [ids.size]); // nothing computed again
  const { tokens, bytes, maxBytes } = classifier.cache.info;
  assert.equal(tokens, ids.size);
  assert.ok(bytes <= maxBytes && maxBytes <= 16 * 2 ** 20, `${bytes} ${maxBytes}`);
  // room for 3 tokens: 3 stored, the rest computed on every call, the logits unchanged
  const d = classifier.config.hidden_size;
  const small = await load({ cacheBytes: 4 * classifier.tokenizer.vocabSize + 4 * d * 4 });
  for (let pass = 0; pass < 2; pass++) assert.deepEqual(await small.logits(TEXTS), first);
  assert.equal(small.cache.info.tokens, 3);
  assert.equal(small.cache.info.bytes, small.cache.info.maxBytes);
});

test("concurrent calls on one classifier get their own results", async () => {
  const [shared, single] = [await load({}), await load({ cacheBytes: 0 })];
  const texts = Array.from({ length: 40 }, (_, i) => `${["great", "awful", "tedious", "moving"][i % 4]} film number ${i}`);
  const got = await Promise.all(texts.map((text, i) => (i % 2 ? shared.classify(text) : shared.logits([text, text]))));
  for (const [i, text] of texts.entries()) { // against the same call on the single graph, shape for shape: a
    // batch of two sums its rows (mean pooling) in another order than a batch of one, last bits apart
    const want = i % 2 ? await single.logits(text) : (await single.logits([text, text]))[1];
    assert.deepEqual(i % 2 ? got[i].logits : got[i][1], want, text);
  }
});

test("a bad cache size, or a folder without the two graphs, is a clear error", async () => {
  await assert.rejects(load({ cacheBytes: -1 }), /cacheBytes must be an integer >= 0/);
  assert.throws(() => new TokenEmbeddingCache(10, 4, 0), /cacheBytes must be an integer > 0/);
  const withoutSplit = async (name) => {
    if (name.startsWith("onnx/token_embeddings")) throw new Error(`ENOENT: no such file, open '${name}'`);
    return folderReader(folder)(name);
  };
  await assert.rejects(EELBertClassifier.load(withoutSplit, OPTIONS), /an older export has only the single graph: load it with \{ cacheBytes: 0 \}/);
  assert.ok((await EELBertClassifier.load(withoutSplit, { ...OPTIONS, cacheBytes: 0 })).session);
});
