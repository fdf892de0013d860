// What the demo page downloads, in bytes, raw and gzip-compressed (zlib level 9), as a markdown table.
//
//   node js/scripts/payload.js EXPORTED_FOLDER
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const JS = resolve(fileURLToPath(new URL("..", import.meta.url)));
const REPO = resolve(JS, "..");
const folder = process.argv[2];
if (!folder) {
  console.error("usage: node js/scripts/payload.js EXPORTED_FOLDER");
  process.exit(2);
}
const ortDist = join(JS, "node_modules", "onnxruntime-web", "dist");
const rows = [
  ["model as the page loads it, int8 (onnx/token_embeddings.onnx + model_from_embeddings_quantized.onnx)",
    [join(folder, "onnx", "token_embeddings.onnx"), join(folder, "onnx", "model_from_embeddings_quantized.onnx")]],
  ["model as one graph, int8 (onnx/model_quantized.onnx)", [join(folder, "onnx", "model_quantized.onnx")]],
  ["model as one graph, float32 (onnx/model.onnx)", [join(folder, "onnx", "model.onnx")]],
  ["tokenizer (tokenizer.json)", [join(folder, "tokenizer.json")]],
  ["config.json + tokenizer_config.json", [join(folder, "config.json"), join(folder, "tokenizer_config.json")]],
  ["our JS (js/src: eelbert.js, ngram-hash.js)", [join(JS, "src", "eelbert.js"), join(JS, "src", "ngram-hash.js")]],
  ["demo page (index.html, app.js)", [join(REPO, "examples", "browser", "index.html"), join(REPO, "examples", "browser", "app.js")]],
  ["tokenizers.js (tokenizers.min.mjs)", [join(JS, "node_modules", "@huggingface", "tokenizers", "dist", "tokenizers.min.mjs")]],
  ["onnxruntime-web JS (ort.wasm.min.mjs, ort-wasm-simd-threaded.mjs)", [join(ortDist, "ort.wasm.min.mjs"), join(ortDist, "ort-wasm-simd-threaded.mjs")]],
  ["onnxruntime-web WebAssembly (ort-wasm-simd-threaded.wasm)", [join(ortDist, "ort-wasm-simd-threaded.wasm")]],
];
const version = (name) => JSON.parse(readFileSync(join(JS, "node_modules", ...name.split("/"), "package.json"), "utf8")).version;

const sizes = rows.map(([name, files]) => {
  const bytes = files.map((file) => readFileSync(file));
  return [name, bytes.reduce((n, b) => n + b.length, 0), bytes.reduce((n, b) => n + gzipSync(b, { level: 9 }).length, 0)];
});
const fmt = (n) => n.toLocaleString("en-US");
console.log(`onnxruntime-web ${version("onnxruntime-web")}, @huggingface/tokenizers ${version("@huggingface/tokenizers")}\n`);
console.log("| what | bytes | gzip |\n|---|---:|---:|");
for (const [name, raw, gz] of sizes) console.log(`| ${name} | ${fmt(raw)} | ${fmt(gz)} |`);
const int8Total = sizes.filter(([name]) => !name.startsWith("model as one graph")); // what the page downloads
console.log(`| **first load with the int8 model** | ${fmt(int8Total.reduce((n, r) => n + r[1], 0))} | ${fmt(int8Total.reduce((n, r) => n + r[2], 0))} |`);
