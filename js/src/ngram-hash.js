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

/** Checks the parameters as the spec bounds them; returns them with defaults filled in. */
export function ngramParams({ ngramMinN = 1, ngramMaxN = 3, maxNgramsPerToken = 48, wholeToken = false } = {}) {
  const isInt = (x) => Number.isInteger(x);
  if (!isInt(ngramMinN) || !isInt(ngramMaxN) || !(ngramMinN >= 1 && ngramMinN <= ngramMaxN)) {
    throw new RangeError(`need integers 1 <= ngramMinN <= ngramMaxN, got ${ngramMinN} and ${ngramMaxN}`);
  }
  if (!isInt(maxNgramsPerToken) || maxNgramsPerToken < 1 || maxNgramsPerToken > 128) {
    throw new RangeError(`need an integer 1 <= maxNgramsPerToken <= 128, got ${maxNgramsPerToken}`);
  }
  return { ngramMinN, ngramMaxN, maxNgramsPerToken, wholeToken: Boolean(wholeToken) };
}

/** The n-gram ids of one token string (unpadded, at most maxNgramsPerToken of them). */
export function tokenNgramIds(token, { atom = false, ...options } = {}) {
  if (typeof token !== "string") throw new TypeError(`token must be a string, got ${typeof token}`);
  const { ngramMinN, ngramMaxN, maxNgramsPerToken, wholeToken } = ngramParams(options);
  // Code points, not UTF-16 units: for...of yields an astral character as one string and a lone surrogate alone.
  const points = Array.from(token, (ch) => ch.codePointAt(0));

  // Step 1: an atom (forced, whole_token, or bracketed with more than 2 code points) is one id.
  const bracketed = points.length > 2 && points[0] === 0x5b && points[points.length - 1] === 0x5d; // [ ... ]
  if (atom || wholeToken || bracketed) return [hashId([ATOM_TAG, ...points.flatMap(codePointBytes)])];

  // Steps 2 and 3: the symbols as byte arrays; a continuation piece drops its "##", a word start gets the marker.
  const continuation = points.length > 2 && points[0] === 0x23 && points[1] === 0x23; // ##...
  const symbols = continuation
    ? points.slice(2).map(codePointBytes)
    : [[WORD_START], ...points.map(codePointBytes)];

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
