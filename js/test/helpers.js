// Shared by the tests: the Python interpreter with eelbert_hf, an exported model folder, a file reader.
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const REPO = resolve(fileURLToPath(new URL("../..", import.meta.url)));
export const RT_VALIDATION = process.env.EELBERT_RT_VALIDATION ?? join(REPO, "..", "shared", "data", "sentiment", "rotten_tomatoes", "validation.jsonl");

/** The Python that runs eelbert_hf: $EELBERT_PYTHON, else the repository's .venv, else python3. */
export function python() {
  const venv = join(REPO, ".venv", "bin", "python");
  const exe = process.env.EELBERT_PYTHON ?? (existsSync(venv) ? venv : "python3");
  try {
    execFileSync(exe, ["-c", "import eelbert_hf"], { stdio: "pipe" });
  } catch (error) {
    throw new Error(`${exe} cannot import eelbert_hf (set EELBERT_PYTHON to a Python with the package installed): ${error.stderr ?? error.message}`);
  }
  return exe;
}

/** Runs js/scripts/python_reference.py with `args`; returns nothing (it writes its JSON to a path in `args`). */
export function pythonReference(...args) {
  execFileSync(python(), [join(REPO, "js", "scripts", "python_reference.py"), ...args], { stdio: ["ignore", 2, 2] });
}

/** A fresh temporary folder, removed when the test process exits (the Python side's JSON is ~20 MB). */
export function tempDir(prefix) {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** $EELBERT_EXPORT_DIR (a folder written by `eelbert export ... --onnx --quantize`), else a fresh export of the
 * bundled classifier into a temporary folder. */
export function exportedFolder() {
  const given = process.env.EELBERT_EXPORT_DIR;
  const folder = given ?? join(tempDir("eelbert-export-"), "uno-rt");
  if (!given) {
    execFileSync(python(), ["-m", "eelbert_hf", "export", "bundled", folder, "--onnx", "--quantize"], { stdio: ["ignore", 2, 2] });
  }
  for (const name of ["config.json", "tokenizer.json", "tokenizer_config.json", "onnx/model.onnx", "onnx/model_quantized.onnx",
    "onnx/token_embeddings.onnx", "onnx/model_from_embeddings.onnx", "onnx/model_from_embeddings_quantized.onnx"]) {
    if (!existsSync(join(folder, name))) throw new Error(`${folder} has no ${name}: write it with eelbert export ... --onnx --quantize`);
  }
  return folder;
}

/** A reader over a local folder for EELBertClassifier.load: name -> ArrayBuffer. */
export function folderReader(folder) {
  return async (name) => {
    const bytes = await readFile(join(folder, name));
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  };
}

export function readJsonFile(path) {
  return JSON.parse(readFileSync(path, "utf8"));
}
