// The hash against the golden vectors of tests/golden/ngram_hash_v1.json (made by tests/golden/make_golden.py).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { HASH_SCHEME, TOKEN_FORMATS, codePointBytes, hashId, tokenNgramIds, utf8Symbols } from "../src/ngram-hash.js";

const golden = JSON.parse(readFileSync(new URL("../../tests/golden/ngram_hash_v1.json", import.meta.url), "utf8"));
const params = {
  ngramMinN: golden.params.ngram_min_n,
  ngramMaxN: golden.params.ngram_max_n,
  maxNgramsPerToken: golden.params.max_ngrams_per_token,
  wholeToken: golden.params.whole_token,
};

test("the golden file is for this scheme", () => {
  assert.equal(golden.hash_scheme, HASH_SCHEME);
});

test("hashId of raw bytes matches the golden ids", () => {
  assert.ok(golden.ngram_hash_ids.length > 0);
  for (const { bytes_hex: hex, id } of golden.ngram_hash_ids) {
    assert.equal(hashId(Buffer.from(hex, "hex")), id, `bytes ${hex}`);
  }
});

test("tokenNgramIds of the golden tokens (astral, ZWJ, combining, lone surrogate, atoms, truncation)", () => {
  assert.ok(golden.tokens.length > 0);
  for (const { token, atom, ngram_ids: ids } of golden.tokens) {
    assert.deepEqual(tokenNgramIds(token, { atom, ...params }), ids, `token ${JSON.stringify(token)}`);
  }
});

test("the worked example of the spec: ##run is run without the marker's n-grams", () => {
  const run = golden.tokens.find((t) => t.token === "run").ngram_ids;
  assert.deepEqual(tokenNgramIds("##run"), [run[1], run[2], run[3], run[5], run[6], run[8]]);
});

test("UTF-8 of code points, lone surrogates in the surrogatepass form", () => {
  assert.deepEqual(codePointBytes(0x61), [0x61]);
  assert.deepEqual(codePointBytes(0xe9), [0xc3, 0xa9]);
  assert.deepEqual(codePointBytes(0xd800), [0xed, 0xa0, 0x80]);
  assert.deepEqual(codePointBytes(0x1f600), [0xf0, 0x9f, 0x98, 0x80]);
  for (const ch of ["é", "中", "😀", "\u0301"]) {
    assert.deepEqual(codePointBytes(ch.codePointAt(0)), [...Buffer.from(ch, "utf8")]);
  }
});

test("parameters: n-gram range, truncation, whole_token", () => {
  assert.equal(tokenNgramIds("pneumonoultramicroscopicsilico").length, 48);
  assert.equal(tokenNgramIds("pneumonoultramicroscopicsilico", { maxNgramsPerToken: 5 }).length, 5);
  assert.deepEqual(tokenNgramIds("run", { ngramMinN: 2, ngramMaxN: 2 }), golden.tokens[1].ngram_ids.slice(4, 7));
  const atomRun = [hashId([0xfe, ...Buffer.from("run")])]; // Step 1: the tag byte, then the token's bytes
  assert.deepEqual(tokenNgramIds("run", { atom: true }), atomRun);
  assert.deepEqual(tokenNgramIds("run", { wholeToken: true }), atomRun);
});

test("bad input is a clear error", () => {
  assert.throws(() => tokenNgramIds(42), /token must be a string/);
  assert.throws(() => tokenNgramIds("run", { ngramMinN: 0 }), /1 <= ngramMinN <= ngramMaxN/);
  assert.throws(() => tokenNgramIds("run", { ngramMinN: 3, ngramMaxN: 2 }), /1 <= ngramMinN <= ngramMaxN/);
  assert.throws(() => tokenNgramIds("run", { maxNgramsPerToken: 129 }), /maxNgramsPerToken <= 128/);
});

const formats = JSON.parse(readFileSync(new URL("../../tests/golden/ngram_token_formats.json", import.meta.url), "utf8"));

test("every token format of the spec matches its golden vectors (tests/golden/ngram_token_formats.json)", () => {
  assert.equal(formats.hash_scheme, HASH_SCHEME);
  const options = { ngramMinN: formats.params.ngram_min_n, ngramMaxN: formats.params.ngram_max_n,
    maxNgramsPerToken: formats.params.max_ngrams_per_token };
  const seen = new Set();
  for (const { token_format: tokenFormat, token, ngram_ids: ids } of formats.tokens) {
    assert.deepEqual(tokenNgramIds(token, { tokenFormat, ...options }), ids, `${tokenFormat} ${JSON.stringify(token)}`);
    seen.add(tokenFormat);
  }
  assert.deepEqual([...seen].sort(), TOKEN_FORMATS.filter((f) => f !== "wordpiece").sort()); // wordpiece: ngram_hash_v1.json
});

test("byte-level pieces: partial UTF-8 characters are tagged raw bytes, and the raw byte 0xFF is not the word start", () => {
  assert.deepEqual(utf8Symbols([0xe2, 0x82, 0xac]), [[0xe2, 0x82, 0xac]]);
  assert.deepEqual(utf8Symbols([0xe2, 0x82]), [[0xfd, 0xe2], [0xfd, 0x82]]);
  assert.deepEqual(utf8Symbols([0xed, 0xa0, 0x80]), [[0xfd, 0xed], [0xfd, 0xa0], [0xfd, 0x80]]); // a surrogate
  assert.deepEqual(utf8Symbols([0xc0, 0xaf]), [[0xfd, 0xc0], [0xfd, 0xaf]]); // an overlong form
  assert.notDeepEqual(tokenNgramIds("ÿ", { tokenFormat: "byte_level" }), tokenNgramIds("Ġ", { tokenFormat: "byte_level" }));
  assert.deepEqual(tokenNgramIds("Ġrun", { tokenFormat: "byte_level" }), tokenNgramIds("run"));
  assert.deepEqual(tokenNgramIds("▁run", { tokenFormat: "metaspace" }), tokenNgramIds("run"));
  assert.throws(() => tokenNgramIds("run", { tokenFormat: "bpe" }), /tokenFormat must be one of/);
});
