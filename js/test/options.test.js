// ngramOptions: the n-gram fields of config.json as the JS hash takes them, and what it refuses.
import assert from "node:assert/strict";
import { test } from "node:test";

import { ngramOptions } from "../src/eelbert.js";

const CONFIG = { hash_scheme: "eelbert-ngram-v1", ngram_min_n: 1, ngram_max_n: 3, max_ngrams_per_token: 48 };

test("a WordPiece config, with or without token_format, gives the spec's parameters", () => {
  const expected = { ngramMinN: 1, ngramMaxN: 3, maxNgramsPerToken: 48, wholeToken: false };
  assert.deepEqual(ngramOptions(CONFIG), expected);
  assert.deepEqual(ngramOptions({ ...CONFIG, token_format: "wordpiece" }), expected);
});

test("a token format this port does not implement is refused, not hashed as WordPiece", () => {
  for (const format of ["byte_level", "metaspace", "plain"]) {
    assert.throws(() => ngramOptions({ ...CONFIG, token_format: format }), /implements "wordpiece" only/);
  }
});
