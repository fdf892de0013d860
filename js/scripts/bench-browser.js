// Texts per second in headless Chromium (the system browser, driven by playwright-core), one thread of
// onnxruntime-web's WebAssembly: the demo page's own EELBertClassifier (int8, with its token-embedding cache and as
// the single graph) against a BERT twin (int8 ONNX + tokenizers.js WordPiece through the same onnxruntime-web, as
// transformers.js runs BERT), on the same texts, in alternation; prints JSON rows as `eelbert bench` does.
//
//   node js/scripts/bench-browser.js EXPORTED_FOLDER BERT_TWIN_FOLDER TEXTS_JSON [REPEATS] [BATCH_SIZES]
//
// BERT_TWIN_FOLDER holds onnx/model_quantized.onnx, tokenizer.json and tokenizer_config.json; TEXTS_JSON a JSON list
// of strings; BATCH_SIZES comma-separated (default 1,64). `eelbert bench --parts browser` writes all three and runs it.
import { existsSync, readFileSync } from "node:fs";

import { chromium } from "playwright-core";

import { startServer } from "../../examples/browser/serve.js";

const [folder, twin, textsPath, repeats = "3", batchSizes = "1,64"] = process.argv.slice(2);
if (!folder || !twin || !textsPath) {
  console.error("usage: node js/scripts/bench-browser.js EXPORTED_FOLDER BERT_TWIN_FOLDER TEXTS_JSON [REPEATS] [BATCH_SIZES]");
  process.exit(2);
}
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
const texts = JSON.parse(readFileSync(textsPath, "utf8"));

const { server, url } = await startServer({ modelDir: folder, mounts: { bert: twin } });
const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
try {
  const page = await browser.newPage();
  const errors = [];
  page.on("pageerror", (error) => errors.push(error.message));
  await page.goto(url);
  await page.waitForSelector("#status:not([data-state=loading])", { timeout: 120_000 });
  if ((await page.getAttribute("#status", "data-state")) !== "ready") throw new Error(`${await page.textContent("#status")} ${errors.join("; ")}`);
  const result = await page.evaluate(async ({ texts, repeats, batchSizes }) => {
    const { ort, classifier: cached } = window.eelbert; // the page's own: int8, with the cache
    const { Tokenizer } = await import("@huggingface/tokenizers");
    const { EELBertClassifier, fetchReader } = await import("/js/src/eelbert.js");
    const single = await EELBertClassifier.load(fetchReader(new URL("/model/", location.href)), { ort, dtype: "int8", cacheBytes: 0 });
    const read = async (name) => (await fetch(new URL(`/bert/${name}`, location.href))).arrayBuffer();
    const json = async (name) => JSON.parse(new TextDecoder().decode(await read(name)));
    const wordpiece = new Tokenizer(await json("tokenizer.json"), await json("tokenizer_config.json"));
    const session = await ort.InferenceSession.create(new Uint8Array(await read("onnx/model_quantized.onnx")));
    const padId = wordpiece.token_to_id("[PAD]");
    const bert = async (batch) => { // what transformers.js does for a BERT: WordPiece, cut to 128, pad, run
      const encoded = batch.map((text) => {
        const ids = wordpiece.encode(text).ids;
        return ids.length > 128 ? [...ids.slice(0, 127), ids[ids.length - 1]] : ids;
      });
      const seq = Math.max(...encoded.map((ids) => ids.length));
      const [inputIds, mask] = [new BigInt64Array(batch.length * seq).fill(BigInt(padId)), new BigInt64Array(batch.length * seq)];
      encoded.forEach((ids, i) => ids.forEach((id, j) => { inputIds[i * seq + j] = BigInt(id); mask[i * seq + j] = 1n; }));
      const dims = [batch.length, seq];
      return session.run({ input_ids: new ort.Tensor("int64", inputIds, dims), attention_mask: new ort.Tensor("int64", mask, dims),
        token_type_ids: new ort.Tensor("int64", new BigInt64Array(batch.length * seq), dims) });
    };
    const sides = { cached: (batch) => cached.logits(batch), single: (batch) => single.logits(batch), bert };
    const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
    const rows = [];
    for (const size of batchSizes) {
      const seconds = { cached: [], single: [], bert: [] };
      for (const run of Object.values(sides)) await run(texts.slice(0, size)); // warm-up
      for (let r = 0; r < repeats; r++) {
        for (const [name, run] of Object.entries(sides)) {
          const start = performance.now();
          for (let i = 0; i < texts.length; i += size) await run(texts.slice(i, i + size));
          seconds[name].push((performance.now() - start) / 1000);
        }
      }
      const rate = Object.fromEntries(Object.entries(seconds).map(([name, s]) => [name, texts.length / median(s)]));
      for (const [name, label] of [["single", "single graph"], ["cached", "cached token embeddings"]]) {
        rows.push({ what: `Chromium (onnxruntime-web) int8, ${label}`, batch_size: size, eelbert_texts_per_s: rate[name],
          bert_texts_per_s: rate.bert, ratio: rate[name] / rate.bert });
      }
    }
    const info = cached.cache.info;
    rows.filter((row) => row.what.endsWith("cached token embeddings")).forEach((row) => {
      row.note = `cache: ${info.tokens.toLocaleString("en")} tokens, ${(info.bytes / 2 ** 20).toFixed(2)} MiB (bound ${(info.maxBytes / 2 ** 20).toFixed(0)} MiB)`;
    });
    return rows;
  }, { texts, repeats: Number(repeats), batchSizes: batchSizes.split(",").map(Number) });
  if (errors.length) throw new Error(errors.join("; "));
  console.log(JSON.stringify({ browser: browser.version(), rows: result }));
} finally {
  await browser.close();
  server.close();
}
