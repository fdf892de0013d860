// The tokenizer half of docs/hash-spec.md (`eelbert-ngram-v1`): one token string -> its n-gram ids.
// The step numbers below are the spec's. 64-bit arithmetic is done in BigInt, wrapped with asUintN(64).

export const HASH_SCHEME = "eelbert-ngram-v1";

const MASK64 = (1n << 64n) - 1n;
const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x00000100000001b3n;
const FMIX_C1 = 0xff51afd7ed558ccdn;
const FMIX_C2 = 0xc4ceb9fe1a85ec53n;
const ID_RANGE = 2147483646n; // 2^31 - 2: ids lie in 1 ..= 2^31 - 2, and 0 means "empty slot"
const WORD_START = 0xff; // Step 3: the word-start marker, a byte that valid UTF-8 never holds
const ATOM_TAG = 0xfe; // Step 1: the tag byte in front of an atom's bytes
const RAW_BYTE = 0xfd; // Step 2: the tag in front of a byte that is not a UTF-8 character by itself
export const TOKEN_FORMATS = ["wordpiece", "metaspace", "byte_level", "plain"];
const METASPACE = 0x2581; // SentencePiece's word-start character
const BYTE_FALLBACK = /^<0x([0-9A-F]{2})>$/; // SentencePiece's piece for one raw byte

/** GPT-2's byte-level alphabet, code point -> byte: printable Latin-1 bytes stand for themselves, the other 68
 * bytes for U+0100 onwards in byte order (so the space 0x20 is "Ġ", U+0120). */
const BYTE_OF = (() => {
  const printable = new Set();
  for (const [lo, hi] of [[0x21, 0x7e], [0xa1, 0xac], [0xae, 0xff]]) for (let b = lo; b <= hi; b++) printable.add(b);
  const table = new Map();
  let next = 0x100;
  for (let b = 0; b < 256; b++) table.set(printable.has(b) ? b : next++, b);
  return table;
})();

/** hash_id(bytes): FNV-1a 64, then murmur3's fmix64, then 1 + (h mod (2^31 - 2)). `bytes` holds 0..255. */
export function hashId(bytes) {
  let h = FNV_OFFSET;
  for (const b of bytes) h = ((h ^ BigInt(b)) * FNV_PRIME) & MASK64;
  h ^= h >> 33n;
  h = (h * FMIX_C1) & MASK64;
  h ^= h >> 33n;
  h = (h * FMIX_C2) & MASK64;
  h ^= h >> 33n;
  return Number(1n + (h % ID_RANGE)); // h is non-negative here: the remainder is on the full unsigned value
}

/** Step 3: the UTF-8 bytes of one code point. A lone surrogate (U+D800..U+DFFF), which a JS string can hold,
 * takes the generalised 3-byte form (Python's `surrogatepass`); TextEncoder would turn it into U+FFFD. */
export function codePointBytes(cp) {
  if (cp < 0x80) return [cp];
  if (cp < 0x800) return [0xc0 | (cp >> 6), 0x80 | (cp & 0x3f)];
  if (cp < 0x10000) return [0xe0 | (cp >> 12), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
  return [0xf0 | (cp >> 18), 0x80 | ((cp >> 12) & 0x3f), 0x80 | ((cp >> 6) & 0x3f), 0x80 | (cp & 0x3f)];
}

/** The byte length of the valid UTF-8 character at data[i] (strict: no overlong forms, no surrogates, nothing above
 * U+10FFFF), or 0 where the bytes there are not one. */
function utf8Width(data, i) {
  const lead = data[i];
  const width = lead < 0xc0 ? 1 : lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4;
  if (width === 1) return lead < 0x80 ? 1 : 0;
  if (i + width > data.length) return 0;
  // the second byte's range depends on the lead byte; every later byte is a continuation 0x80..0xBF
  const [lo, hi] = lead < 0xc2 || lead > 0xf4 ? [1, 0]
    : lead === 0xe0 ? [0xa0, 0xbf] : lead === 0xed ? [0x80, 0x9f]
    : lead === 0xf0 ? [0x90, 0xbf] : lead === 0xf4 ? [0x80, 0x8f] : [0x80, 0xbf];
  if (data[i + 1] < lo || data[i + 1] > hi) return 0;
  for (let k = 2; k < width; k++) if (data[i + k] < 0x80 || data[i + k] > 0xbf) return 0;
  return width;
}

/** Bytes -> symbols: each valid UTF-8 character is one symbol, every other byte the symbol [RAW_BYTE, byte]. */
export function utf8Symbols(data) {
  const symbols = [];
  for (let i = 0; i < data.length; ) {
    const width = utf8Width(data, i);
    symbols.push(width ? data.slice(i, i + width) : [RAW_BYTE, data[i]]);
    i += width || 1;
  }
  return symbols;
}

/** Step 2: a token string -> the byte arrays of its symbols, [WORD_START] first where its format marks a word start
 * (`points`: its code points). */
function tokenSymbols(points, tokenFormat) {
  if (tokenFormat === "wordpiece") {
    const continuation = points.length > 2 && points[0] === 0x23 && points[1] === 0x23; // ##...
    return continuation ? points.slice(2).map(codePointBytes) : [[WORD_START], ...points.map(codePointBytes)];
  }
  if (tokenFormat === "metaspace") {
    const fallback = BYTE_FALLBACK.exec(String.fromCodePoint(...points));
    if (fallback) return utf8Symbols([parseInt(fallback[1], 16)]);
    return points[0] === METASPACE ? [[WORD_START], ...points.slice(1).map(codePointBytes)] : points.map(codePointBytes);
  }
  if (tokenFormat === "byte_level") {
    const data = points.flatMap((cp) => (BYTE_OF.has(cp) ? [BYTE_OF.get(cp)] : codePointBytes(cp)));
    return data[0] === 0x20 ? [[WORD_START], ...utf8Symbols(data.slice(1))] : utf8Symbols(data);
  }
  return points.map(codePointBytes); // plain
}

/** Checks the parameters as the spec bounds them; returns them with defaults filled in. */
export function ngramParams({ ngramMinN = 1, ngramMaxN = 3, maxNgramsPerToken = 48, wholeToken = false,
  tokenFormat = "wordpiece" } = {}) {
  const isInt = (x) => Number.isInteger(x);
  if (!isInt(ngramMinN) || !isInt(ngramMaxN) || !(ngramMinN >= 1 && ngramMinN <= ngramMaxN)) {
    throw new RangeError(`need integers 1 <= ngramMinN <= ngramMaxN, got ${ngramMinN} and ${ngramMaxN}`);
  }
  if (!isInt(maxNgramsPerToken) || maxNgramsPerToken < 1 || maxNgramsPerToken > 128) {
    throw new RangeError(`need an integer 1 <= maxNgramsPerToken <= 128, got ${maxNgramsPerToken}`);
  }
  if (!TOKEN_FORMATS.includes(tokenFormat)) {
    throw new RangeError(`tokenFormat must be one of ${TOKEN_FORMATS.join(", ")}, got ${JSON.stringify(tokenFormat)}`);
  }
  return { ngramMinN, ngramMaxN, maxNgramsPerToken, wholeToken: Boolean(wholeToken), tokenFormat };
}

/** The n-gram ids of one token string (unpadded, at most maxNgramsPerToken of them). */
export function tokenNgramIds(token, { atom = false, ...options } = {}) {
  if (typeof token !== "string") throw new TypeError(`token must be a string, got ${typeof token}`);
  const { ngramMinN, ngramMaxN, maxNgramsPerToken, wholeToken, tokenFormat } = ngramParams(options);
  // Code points, not UTF-16 units: for...of yields an astral character as one string and a lone surrogate alone.
  const points = Array.from(token, (ch) => ch.codePointAt(0));

  // Step 1: an atom (forced, whole_token, or in the wordpiece format bracketed with more than 2 code points).
  const bracketed = tokenFormat === "wordpiece" && points.length > 2 && points[0] === 0x5b
    && points[points.length - 1] === 0x5d; // [ ... ]
  if (atom || wholeToken || bracketed) return [hashId([ATOM_TAG, ...points.flatMap(codePointBytes)])];

  // Steps 2 and 3: the symbols as byte arrays, by the vocabulary's token format.
  const symbols = tokenSymbols(points, tokenFormat);

  // Step 4: n ascending, then start left to right; repeats are kept. Step 5: stop at maxNgramsPerToken.
  const ids = [];
  for (let n = ngramMinN; n <= ngramMaxN; n++) {
    for (let start = 0; start + n <= symbols.length; start++) {
      if (ids.length === maxNgramsPerToken) return ids;
      ids.push(hashId(symbols.slice(start, start + n).flat()));
    }
  }
  return ids;
}
