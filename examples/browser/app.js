// The demo page: load an exported folder (?model=URL, default model/; ?dtype=int8|fp32, default int8) with
// onnxruntime-web, then classify what the user types. window.eelbert exposes the pieces to scripts and tests.
import * as ort from "onnxruntime-web";

import { EELBertClassifier, fetchReader } from "/js/src/eelbert.js";

ort.env.wasm.wasmPaths = new URL("/js/node_modules/onnxruntime-web/dist/", location.href).href;
ort.env.wasm.numThreads = 1; // threads need cross-origin isolation (SharedArrayBuffer); one is plenty for UNO

const params = new URLSearchParams(location.search);
const modelParam = params.get("model") ?? "model/";
const modelBase = new URL(modelParam, location.href).href;
const dtype = params.get("dtype") ?? "int8";
const $ = (id) => document.getElementById(id);

/** An EELBertClassifier for the folder at `base` (a URL ending in "/"). */
export function load(loadDtype = dtype, base = modelBase) {
  return EELBertClassifier.load(fetchReader(base), { ort, dtype: loadDtype });
}

let latest = 0; // results of older texts that finish late are not shown

async function show(classifier) {
  const text = $("review").value;
  const call = ++latest;
  const start = performance.now();
  const result = await classifier.classify(text);
  const ms = performance.now() - start;
  if (call !== latest) return;
  $("label").textContent = result.label ?? "no prediction";
  $("label").dataset.label = result.label ?? "";
  $("score").textContent = result.score === null ? "" : `(score ${result.score.toFixed(3)})`;
  $("latency").textContent = `${ms.toFixed(1)} ms`;
  $("result").dataset.text = text; // which text the label is for
}

async function main() {
  try {
    const classifier = await load();
    const loadMs = performance.now(); // since navigation start: page, runtime, tokenizer and model
    window.eelbert = { ort, load, classifier, loadMs };
    $("model").textContent = classifier.files.map((file) => `${modelParam}${file}`).join(" + ");
    $("runtime").textContent = `onnxruntime-web ${ort.env.versions.web} (WebAssembly, ${ort.env.wasm.numThreads} thread)`;
    $("model-size").textContent = `${(classifier.modelBytes / 1e6).toFixed(3)} MB (${dtype})`;
    $("load-time").textContent = `${loadMs.toFixed(0)} ms`;
    $("status").textContent = "ready";
    $("status").dataset.state = "ready";
    $("classify").disabled = false;
    $("classify").addEventListener("click", () => show(classifier));
    let timer;
    $("review").addEventListener("input", () => { // as the user types, once they pause for 150 ms
      clearTimeout(timer);
      timer = setTimeout(() => show(classifier), 150);
    });
    $("review").addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey) {
        event.preventDefault();
        show(classifier);
      }
    });
  } catch (error) {
    $("status").textContent = `could not load the model: ${error.message}`;
    $("status").dataset.state = "error";
    throw error;
  }
}

main();
