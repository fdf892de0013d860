// Differential test over tokenizer families: EELBertTokenizer in JS (tokenizers.js + ngram-hash.js) against the
// Python EELBertTokenizer on WordPiece, byte-level BPE and Unigram vocabularies trained by the Python side.
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, test } from "node:test";

import { EELBertTokenizer } from "../src/eelbert.js";
import { folderReader, pythonReference, readJsonFile, tempDir } from "./helpers.js";

const TEXTS = [
  "The runner kept running, and everyone cheered!", "Un café naïve — 文字 and emoji 😀 too.", "short", "",
  "Здравствуй, мир. 你好，世界。 नमस्ते दुनिया مرحبا بالعالم", "Γειά σου Κόσμε ᚠᛇᚻ 𓀀 🧑🏿‍🚀 x² ǅ ﬁ",
  "a\u0000b\u0007c lone \ud800 surrogate", "word ".repeat(200), "x".repeat(300), "  spaced   out  \t tabs\n",
];
const FORMATS = { wordpiece: "wordpiece", bpe: "byte_level", unigram: "metaspace" };

let folder;
let reference;
before(() => {
  folder = tempDir("eelbert-families-");
  writeFileSync(join(folder, "texts.json"), JSON.stringify(TEXTS));
  pythonReference("families", folder, join(folder, "texts.json"), join(folder, "python.json"));
  reference = readJsonFile(join(folder, "python.json"));
});

for (const [family, format] of Object.entries(FORMATS)) {
  test(`${family}: the same input_ids and ngram_ids as Python, whole and truncated`, async () => {
    const tokenizer = await EELBertTokenizer.load(folderReader(join(folder, family)));
    assert.equal(tokenizer.options.tokenFormat, format);
    const expected = reference[family];
    assert.equal(expected.length, 2 * TEXTS.length);
    expected.forEach(({ input_ids: ids, ngram_ids: ngrams, max_length: maxLength }, i) => {
      const text = TEXTS[Math.floor(i / 2)];
      const got = tokenizer.encode(text, { maxLength });
      assert.deepEqual(got.inputIds, ids, `${family} ${JSON.stringify(text.slice(0, 40))} (max ${maxLength})`);
      assert.deepEqual(got.ngramIds, ngrams, `${family} ${JSON.stringify(text.slice(0, 40))} (max ${maxLength})`);
    });
  });
}

test("a byte-level vocabulary knows every text, in any script", async () => {
  const tokenizer = await EELBertTokenizer.load(folderReader(join(folder, "bpe")));
  assert.equal(tokenizer.unkId, undefined);
  for (const text of TEXTS.filter((t) => t.trim())) assert.ok(tokenizer.encode(text).known, text);
  const unigram = await EELBertTokenizer.load(folderReader(join(folder, "unigram")));
  assert.ok(unigram.encode("ᚠᛇᚻ").inputIds.includes(unigram.unkId)); // characters a Unigram vocabulary never saw
});
