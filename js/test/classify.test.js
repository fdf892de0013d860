// The JS pipeline (tokenizers.js WordPiece -> n-gram ids -> onnxruntime-node) against Python on every Rotten
// Tomatoes validation text: identical input_ids and ngram_ids, float32 logits within 1e-4, equal int8 accuracy.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";

import * as ort from "onnxruntime-node";

import { EELBertClassifier, EELBertTokenizer, NO_KNOWN_WORDS } from "../src/eelbert.js";
import { RT_VALIDATION, exportedFolder, folderReader, pythonReference, readJsonFile, tempDir } from "./helpers.js";

const FP32_TOLERANCE = 1e-4;

let folder;
let reference;
const classifiers = {};
before(async () => {
  folder = exportedFolder();
  const out = join(tempDir("eelbert-rt-"), "python.json");
  pythonReference("rt", folder, RT_VALIDATION, out);
  reference = readJsonFile(out);
  for (const dtype of ["fp32", "int8"]) {
    classifiers[dtype] = await EELBertClassifier.load(folderReader(folder), { ort, dtype, sessionOptions: { intraOpNumThreads: 1 } });
  }
});

const argmax = (values) => values.indexOf(Math.max(...values));

test("the reference covers the whole validation file", () => {
  const lines = readFileSync(RT_VALIDATION, "utf8").split("\n").filter((line) => line.trim());
  assert.equal(reference.texts.length, lines.length);
});

test("input_ids and ngram_ids are Python's on every validation text", () => {
  const { tokenizer } = classifiers.fp32;
  const bad = [];
  for (const row of reference.texts) {
    const { inputIds, ngramIds } = tokenizer.encode(row.text, { maxLength: reference.max_length });
    if (JSON.stringify(inputIds) !== JSON.stringify(row.input_ids)) bad.push(`input_ids of ${JSON.stringify(row.text)}`);
    else if (JSON.stringify(ngramIds) !== JSON.stringify(row.ngram_ids)) bad.push(`ngram_ids of ${JSON.stringify(row.text)}`);
  }
  assert.deepEqual(bad.slice(0, 5), [], `${bad.length} texts differ`);
});

test(`float32 logits agree with Python's within ${FP32_TOLERANCE} on every validation text`, async () => {
  let maxDiff = 0;
  for (const row of reference.texts) {
    const logits = await classifiers.fp32.logits(row.text, { maxLength: reference.max_length });
    assert.equal(logits.length, row.fp32.length);
    logits.forEach((x, i) => { maxDiff = Math.max(maxDiff, Math.abs(x - row.fp32[i])); });
  }
  console.log(`max |JS - Python| float32 logit: ${maxDiff.toExponential(2)} over ${reference.texts.length} texts`);
  assert.ok(maxDiff <= FP32_TOLERANCE, `max difference ${maxDiff}`);
});

test("one text at a time, int8 accuracy equals Python's int8 accuracy", async () => {
  let jsCorrect = 0;
  let pyCorrect = 0;
  let maxDiff = 0;
  let disagreements = 0;
  for (const row of reference.texts) {
    const logits = await classifiers.int8.logits(row.text, { maxLength: reference.max_length });
    jsCorrect += argmax(logits) === row.label;
    pyCorrect += argmax(row.int8) === row.label;
    disagreements += argmax(logits) !== argmax(row.int8);
    logits.forEach((x, i) => { maxDiff = Math.max(maxDiff, Math.abs(x - row.int8[i])); });
  }
  const n = reference.texts.length;
  console.log(`int8 accuracy: JS ${(jsCorrect / n).toFixed(4)}, Python ${(pyCorrect / n).toFixed(4)} one text at a time ` +
    `(batched, as eelbert export --eval-file: ${reference.batched_accuracy.int8.toFixed(4)}); ` +
    `max |JS - Python| int8 logit ${maxDiff.toExponential(2)}, ${disagreements} predictions differ`);
  assert.equal(jsCorrect, pyCorrect);
});

// Batched int8 logits depend on the batch (the activations' quantisation range covers the padded batch) and on the
// CPU's int8 kernels, which differ between processors and onnxruntime builds. So a text may change side between
// two int8 runtimes only where int8 itself cannot tell the classes apart: its margin is within the int8 error of
// this very batch run (the largest |int8 - float32| logit difference over the validation texts).
test("batched like eelbert export --eval-file (64 texts a batch, padded): float32 equals Python's, int8 differs only on ties", async () => {
  const { batch_size: batchSize, texts } = reference;
  const int8Error = Math.max(...texts.flatMap((row) => row.int8_batched.map((x, i) => Math.abs(x - row.fp32_batched[i]))));
  for (const dtype of ["fp32", "int8"]) {
    let correct = 0;
    let pyCorrect = 0;
    let maxDiff = 0;
    const differ = [];
    for (let start = 0; start < texts.length; start += batchSize) {
      const rows = texts.slice(start, start + batchSize);
      const logits = await classifiers[dtype].logits(rows.map((row) => row.text), { maxLength: reference.max_length });
      rows.forEach((row, i) => {
        const py = row[`${dtype}_batched`];
        correct += argmax(logits[i]) === row.label;
        pyCorrect += argmax(py) === row.label;
        logits[i].forEach((x, j) => { maxDiff = Math.max(maxDiff, Math.abs(x - py[j])); });
        if (argmax(logits[i]) !== argmax(py)) differ.push({ text: row.text, margin: Math.max(...py) - Math.min(...py) });
      });
    }
    const accuracy = correct / texts.length;
    console.log(`${dtype} batched accuracy: JS ${accuracy.toFixed(4)}, Python ${reference.batched_accuracy[dtype].toFixed(4)}; ` +
      `max |JS - Python| logit ${maxDiff.toExponential(2)}, ${differ.length} predictions differ` +
      (dtype === "int8" ? ` (int8 error of the run ${int8Error.toExponential(2)})` : ""));
    // the per-text logits are the ones behind eelbert export --eval-file's accuracy
    assert.equal(pyCorrect / texts.length, reference.batched_accuracy[dtype]);
    if (dtype === "fp32") {
      assert.ok(maxDiff <= FP32_TOLERANCE, `max difference ${maxDiff}`);
      assert.deepEqual(differ, []);
      assert.equal(accuracy, reference.batched_accuracy.fp32);
    } else {
      assert.deepEqual(differ.filter((d) => d.margin > int8Error), [], `int8 error ${int8Error}`);
    }
  }
});

test("classify gives a label of config.json and a softmax score; no known word gives no prediction", async () => {
  const labels = Object.values(readJsonFile(join(folder, "config.json")).id2label);
  const result = await classifiers.int8.classify(reference.texts[0].text);
  assert.ok(labels.includes(result.label), result.label);
  assert.ok(result.score >= 1 / labels.length && result.score <= 1);
  const probs = result.logits.map((x) => Math.exp(x));
  assert.ok(Math.abs(result.score - Math.max(...probs) / probs.reduce((a, b) => a + b)) < 1e-6);
  for (const text of ["", "   ", "😀😀"]) {
    assert.deepEqual(await classifiers.int8.classify(text), { label: null, score: null, warning: NO_KNOWN_WORDS });
  }
});

test("long texts are cut to maxLength tokens ending in [SEP], lone surrogates read as U+FFFD", async () => {
  const { tokenizer } = classifiers.fp32;
  const long = tokenizer.encode("great ".repeat(300), { maxLength: 16 });
  assert.equal(long.inputIds.length, 16);
  assert.equal(long.inputIds.at(-1), tokenizer.base.token_to_id("[SEP]"));
  assert.deepEqual(tokenizer.encode("a\ud800b").inputIds, tokenizer.encode("a\ufffdb").inputIds);
});

test("bad input and bad folders are clear errors", async () => {
  await assert.rejects(classifiers.int8.classify(42), /text must be a string/);
  await assert.rejects(classifiers.int8.logits([]), /empty batch/);
  assert.throws(() => classifiers.int8.tokenizer.encode("x", { maxLength: 1 }), /maxLength must be an integer >= 2/);
  await assert.rejects(EELBertClassifier.load(folderReader(folder), { ort, dtype: "fp16" }), /dtype must be one of fp32, int8/);
  await assert.rejects(EELBertClassifier.load(folderReader(folder)), /pass the onnxruntime module/);
  await assert.rejects(EELBertClassifier.load(folderReader(join(folder, "missing")), { ort }), /ENOENT/);
  const config = readJsonFile(join(folder, "config.json"));
  const read = folderReader(folder);
  const tokenizerJson = JSON.parse(new TextDecoder().decode(await read("tokenizer.json")));
  assert.throws(() => new EELBertTokenizer(tokenizerJson, {}, { ...config, hash_scheme: "other" }), /hash_scheme "other"/);
  assert.throws(() => new EELBertTokenizer(tokenizerJson, { ngram_max_n: config.ngram_max_n + 1 }, config),
    /disagree on ngram_max_n/);
});
