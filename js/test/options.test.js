// ngramOptions: the n-gram fields of config.json as the JS hash takes them, and what it refuses.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ngramOptions } from "../src/eelbert.js";

const CONFIG = { hash_scheme: "eelbert-ngram-v1", ngram_min_n: 1, ngram_max_n: 3, max_ngrams_per_token: 48 };

test("a WordPiece config, with or without token_format, gives the spec's parameters", () => {
  const expected = { ngramMinN: 1, ngramMaxN: 3, maxNgramsPerToken: 48, wholeToken: false, tokenFormat: "wordpiece" };
  assert.deepEqual(ngramOptions(CONFIG), expected);
  assert.deepEqual(ngramOptions({ ...CONFIG, token_format: "wordpiece" }), expected);
});

test("every token format of the spec is taken from config.json, and one the spec lacks is refused", () => {
  for (const format of ["byte_level", "metaspace", "plain"]) {
    assert.equal(ngramOptions({ ...CONFIG, token_format: format }).tokenFormat, format);
  }
  assert.throws(() => ngramOptions({ ...CONFIG, token_format: "bpe" }), /tokenFormat must be one of/);
});

test("config.json and tokenizer_config.json must agree on the token format", () => {
  assert.throws(() => ngramOptions({ ...CONFIG, token_format: "byte_level" }, { token_format: "metaspace" }),
    /disagree on token_format/);
});
