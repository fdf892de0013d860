// End-to-end: the demo page (examples/browser/) in headless Chromium (the system browser, driven by
// playwright-core). It serves the page and an exported folder from a local port, types a review, reads the label,
// saves a screenshot, and checks onnxruntime-web's logits against Python's on every RT validation text.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";

import * as ortNode from "onnxruntime-node";
import { chromium } from "playwright-core";

import { startServer } from "../../examples/browser/serve.js";
import { EELBertClassifier, FROM_EMBEDDINGS_FILES, TOKEN_EMBEDDINGS_FILE } from "../src/eelbert.js";
import { REPO, RT_VALIDATION, exportedFolder, folderReader, pythonReference, readJsonFile, tempDir } from "../test/helpers.js";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SCREENSHOT = process.env.EELBERT_SCREENSHOT ?? join(REPO, "docs", "browser.png");
const REVIEW = "A gripping, funny and beautifully acted film: the best thing I have seen all year.";
const FP32_TOLERANCE = 1e-4;

// what the page shows as the model size: the bytes of the two .onnx files it loads
const shownSize = (dtype) => `${([TOKEN_EMBEDDINGS_FILE, FROM_EMBEDDINGS_FILES[dtype]].reduce((total, file) => total + statSync(join(folder, file)).size, 0) / 1e6).toFixed(3)} MB (${dtype})`;

let folder, reference, server, url, browser, page;
const pageErrors = [];
before(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install chromium, or set CHROMIUM_PATH`);
  }
  folder = exportedFolder();
  const out = join(tempDir("eelbert-browser-"), "python.json");
  pythonReference("rt", folder, RT_VALIDATION, out);
  reference = readJsonFile(out);
  ({ server, url } = await startServer({ modelDir: folder }));
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true });
  page = await browser.newPage({ viewport: { width: 900, height: 620 } });
  page.on("pageerror", (error) => pageErrors.push(error.message));
  page.on("console", (message) => { if (message.type() === "error") pageErrors.push(message.text()); });
});

after(async () => {
  await browser?.close();
  server?.close();
});

test("the page loads the int8 model, a typed review gets onnxruntime-node's label and score", async () => {
  await page.goto(url);
  await page.waitForSelector("#status:not([data-state=loading])", { timeout: 120_000 });
  assert.equal(await page.getAttribute("#status", "data-state"), "ready", `${await page.textContent("#status")} ${pageErrors.join("; ")}`);

  await page.locator("#review").pressSequentially(REVIEW);
  await page.locator("#review").press("Enter");
  await page.waitForFunction((text) => document.getElementById("result").dataset.text === text, REVIEW);
  const label = await page.textContent("#label");
  const score = Number((await page.textContent("#score")).match(/score ([0-9.]+)/)[1]);

  const node = await EELBertClassifier.load(folderReader(folder), { ort: ortNode, dtype: "int8" });
  const expected = await node.classify(REVIEW);
  assert.equal(label, expected.label);
  assert.ok(Math.abs(score - expected.score) < 1e-3, `score ${score} vs ${expected.score}`); // the page shows 3 decimals
  assert.equal(await page.textContent("#model-size"), shownSize("int8"));

  mkdirSync(dirname(SCREENSHOT), { recursive: true });
  await page.screenshot({ path: SCREENSHOT });
  const loadMs = await page.evaluate(() => window.eelbert.loadMs);
  console.log(`label ${label} (score ${score}); int8: first load ${loadMs.toFixed(0)} ms; screenshot ${SCREENSHOT}`);
  assert.deepEqual(pageErrors, []);
});

test("a fresh browser context loads the float32 model with ?dtype=fp32", async () => {
  const context = await browser.newContext(); // its own empty cache: a first load again
  const fresh = await context.newPage();
  fresh.on("pageerror", (error) => pageErrors.push(error.message));
  await fresh.goto(`${url}?dtype=fp32`);
  await fresh.waitForSelector("#status:not([data-state=loading])", { timeout: 120_000 });
  assert.equal(await fresh.getAttribute("#status", "data-state"), "ready", await fresh.textContent("#status"));
  assert.equal(await fresh.textContent("#model-size"), shownSize("fp32"));
  console.log(`fp32: first load ${(await fresh.evaluate(() => window.eelbert.loadMs)).toFixed(0)} ms`);
  await context.close();
});

test("in Chromium, fp32 logits agree with Python's within 1e-4 and int8 accuracy equals Python's, on every RT validation text", async () => {
  const texts = reference.texts.map((row) => row.text);
  const results = await page.evaluate(async ({ texts, maxLength }) => {
    const models = { fp32: await window.eelbert.load("fp32"), int8: window.eelbert.classifier };
    const out = {};
    for (const [dtype, model] of Object.entries(models)) {
      const logits = [];
      const ms = [];
      for (const text of texts) {
        const start = performance.now();
        logits.push(await model.logits(text, { maxLength }));
        ms.push(performance.now() - start);
      }
      out[dtype] = { logits, ms };
    }
    return out;
  }, { texts, maxLength: reference.max_length });

  const argmax = (values) => values.indexOf(Math.max(...values));
  const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
  let maxDiff = 0;
  results.fp32.logits.forEach((logits, i) => logits.forEach((x, j) => { maxDiff = Math.max(maxDiff, Math.abs(x - reference.texts[i].fp32[j])); }));
  const correct = (rows, key) => rows.filter((logits, i) => argmax(key ? logits[key] : logits) === reference.texts[i].label).length;
  const webInt8 = correct(results.int8.logits);
  const pythonInt8 = correct(reference.texts, "int8");
  console.log(`Chromium: max |web - Python| fp32 logit ${maxDiff.toExponential(2)}; int8 accuracy web ${(webInt8 / texts.length).toFixed(4)} ` +
    `Python ${(pythonInt8 / texts.length).toFixed(4)}; median per-text latency fp32 ${median(results.fp32.ms).toFixed(2)} ms, ` +
    `int8 ${median(results.int8.ms).toFixed(2)} ms (tokenize + hash + run, one thread)`);
  assert.equal(results.fp32.logits.length, reference.texts.length);
  assert.ok(maxDiff <= FP32_TOLERANCE, `max difference ${maxDiff}`);
  assert.equal(webInt8, pythonInt8);
  assert.deepEqual(pageErrors, []);
});
