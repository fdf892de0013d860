// Differential test: the JS hash against the Python tokenizer (EELBertTokenizer.token_ngram_ids) on every token
// of the bundled vocabulary and on random Unicode strings (astral characters, lone surrogates, combining marks).
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";

import { tokenNgramIds } from "../src/ngram-hash.js";
import { REPO, pythonReference, readJsonFile, tempDir } from "./helpers.js";

const SEED = Number(process.env.EELBERT_TEST_SEED ?? 20240601);
const COUNT = 3000;

// mulberry32: a small seeded PRNG, so a failure can be replayed with EELBERT_TEST_SEED
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// [low, high] code point ranges; lone surrogates are single UTF-16 units that String.fromCharCode keeps unpaired
const RANGES = [
  [0x00, 0x7f], [0x80, 0x24f], [0x300, 0x36f], [0x370, 0x7ff], [0x800, 0xd7ff], [0x4e00, 0x9fff],
  [0xd800, 0xdbff], [0xdc00, 0xdfff], [0xe000, 0xfffd], [0x1f300, 0x1faff], [0x10000, 0x10ffff],
  [0x200d, 0x200d], [0xfe0f, 0xfe0f], [0x23, 0x23], [0x5b, 0x5b], [0x5d, 0x5d],
];

function randomStrings(count, seed) {
  const random = prng(seed);
  const pick = (n) => Math.floor(random() * n);
  const strings = ["", "#", "##", "###", "##a", "[", "]", "[]", "[a]", "##[a]", "[a", "a]", "\ud800", "\udfff", "\ud83d\ude00"];
  while (strings.length < count) {
    const length = pick(60); // past 48 n-grams, so truncation is exercised
    let s = "";
    for (let i = 0; i < length; i++) {
      const [low, high] = RANGES[pick(RANGES.length)];
      const cp = low + pick(high - low + 1);
      s += cp >= 0xd800 && cp <= 0xdfff ? String.fromCharCode(cp) : String.fromCodePoint(cp);
    }
    const shape = pick(9);
    // each format's own markers: "##", brackets, SentencePiece's "▁" and byte fallback, GPT-2's space "Ġ"
    const fallback = `<0x${pick(256).toString(16).toUpperCase().padStart(2, "0")}>`;
    strings.push([`##${s}`, `[${s}]`, `\u2581${s}`, fallback, `\u0120${s}`][shape] ?? s);
  }
  return strings;
}

let reference;
let strings;
before(() => {
  const dir = tempDir("eelbert-ngram-diff-");
  strings = randomStrings(COUNT, SEED);
  writeFileSync(join(dir, "strings.json"), JSON.stringify(strings)); // lone surrogates become \udXXX escapes
  pythonReference("ngrams", join(dir, "strings.json"), join(dir, "python.json"));
  reference = readJsonFile(join(dir, "python.json"));
});

function mismatches(cases) {
  const bad = cases.filter(({ js, py }) => JSON.stringify(js) !== JSON.stringify(py));
  return bad.slice(0, 3).map(({ label, js, py }) => `${label}: JS ${JSON.stringify(js)} vs Python ${JSON.stringify(py)}`);
}

test("every token of the bundled vocabulary hashes as in Python", () => {
  const vocabLines = readFileSync(join(REPO, "src", "eelbert_hf", "data", "vocab.txt"), "utf8").split("\n").filter((l) => l !== "");
  assert.equal(reference.vocab.length, vocabLines.length, "Python's vocabulary is the bundled vocab.txt");
  const specials = new Set(reference.special_tokens);
  assert.ok(specials.size > 0);
  const cases = reference.vocab.map(([token, py]) => ({ label: JSON.stringify(token), py, js: tokenNgramIds(token, { atom: specials.has(token) }) }));
  assert.deepEqual(mismatches(cases), []);
});

test(`the same strings hash as in Python in every token format (seed ${SEED})`, () => {
  const cases = [];
  for (const [tokenFormat, ids] of Object.entries(reference.formats)) {
    ids.forEach((py, i) => cases.push({ label: `${tokenFormat} ${JSON.stringify(strings[i])}`, py,
      js: tokenNgramIds(strings[i], { tokenFormat }) }));
  }
  assert.deepEqual(Object.keys(reference.formats).sort(), ["byte_level", "metaspace", "plain", "wordpiece"]);
  assert.ok(strings.some((s) => /^<0x[0-9A-F]{2}>$/.test(s)) && strings.some((s) => s.startsWith("\u0120")));
  assert.deepEqual(mismatches(cases), []);
});

test(`${COUNT} random Unicode strings hash as in Python, as words and as atoms (seed ${SEED})`, () => {
  assert.equal(reference.strings.length, strings.length);
  const cases = [];
  reference.strings.forEach(([echoed, word, atom], i) => {
    // the strings made the round trip JS -> JSON -> Python -> JSON -> JS unchanged, lone surrogates included
    assert.equal(echoed, strings[i], `string ${i} came back changed`);
    cases.push({ label: `${JSON.stringify(strings[i])} word`, py: word, js: tokenNgramIds(strings[i]) });
    cases.push({ label: `${JSON.stringify(strings[i])} atom`, py: atom, js: tokenNgramIds(strings[i], { atom: true }) });
  });
  assert.ok(strings.some((s) => /[\ud800-\udfff]/u.test(s)), "the sample holds lone surrogates");
  assert.ok(strings.some((s) => /[\u{10000}-\u{10ffff}]/u.test(s)), "the sample holds astral characters");
  assert.deepEqual(mismatches(cases), []);
});

test(`the same strings hash as in Python in every token format (seed ${SEED})`, () => {
  const cases = [];
  for (const [tokenFormat, ids] of Object.entries(reference.formats)) {
    ids.forEach((py, i) => cases.push({ label: `${tokenFormat} ${JSON.stringify(strings[i])}`, py,
      js: tokenNgramIds(strings[i], { tokenFormat }) }));
  }
  assert.deepEqual(Object.keys(reference.formats).sort(), ["byte_level", "metaspace", "plain", "wordpiece"]);
  assert.ok(strings.some((s) => /^<0x[0-9A-F]{2}>$/.test(s)) && strings.some((s) => s.startsWith("\u0120")));
  assert.deepEqual(mismatches(cases), []);
});
