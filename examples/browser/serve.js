// A static file server for the demo page: examples/browser/ at /, the js/ package (its sources and the
// node_modules that the page's import map names) at /js/, and an exported model folder at /model/.
//
//   node examples/browser/serve.js EXPORTED_FOLDER [PORT]     (then open http://localhost:PORT/)
import { createReadStream, existsSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { extname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = resolve(fileURLToPath(new URL(".", import.meta.url)));
const JS = resolve(HERE, "..", "..", "js");
const TYPES = {
  ".html": "text/html; charset=utf-8", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css",
  ".json": "application/json", ".wasm": "application/wasm", ".onnx": "application/octet-stream", ".png": "image/png",
};

/** Serves the page, js/ and `modelDir` (and each folder of `mounts`, { name: folder }, at /name/); resolves to
 * { server, url } once listening (port 0: any free port). */
export function startServer({ modelDir, port = 0, host = "127.0.0.1", mounts = {} }) {
  if (!modelDir || !existsSync(join(modelDir, "config.json"))) {
    throw new Error(`${modelDir} is not an exported model folder (no config.json): write one with eelbert export ... --onnx --quantize`);
  }
  const extra = Object.entries(mounts).map(([name, dir]) => [`/${name}/`, resolve(dir)]);
  const roots = [["/model/", resolve(modelDir)], ...extra, ["/js/", JS], ["/", HERE]];
  const server = createServer((request, response) => {
    const path = decodeURIComponent(new URL(request.url, "http://localhost").pathname);
    const [prefix, root] = roots.find(([p]) => path.startsWith(p));
    const file = resolve(root, "." + sep + path.slice(prefix.length)) + (path.endsWith("/") ? sep + "index.html" : "");
    const inside = file === root || file.startsWith(root + sep);
    if (!inside || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404, { "content-type": "text/plain" }).end(`not found: ${path}\n`);
      return;
    }
    response.writeHead(200, { "content-type": TYPES[extname(file)] ?? "application/octet-stream", "cache-control": "no-cache" });
    createReadStream(file).pipe(response);
  });
  return new Promise((done, fail) => {
    server.once("error", fail);
    server.listen(port, host, () => done({ server, url: `http://${host}:${server.address().port}/` }));
  });
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const [modelDir, port = "8000"] = process.argv.slice(2);
  if (!modelDir) {
    console.error("usage: node examples/browser/serve.js EXPORTED_FOLDER [PORT]");
    process.exit(2);
  }
  const { url } = await startServer({ modelDir, port: Number(port) });
  console.log(`serving the demo at ${url} (model: ${modelDir}); Ctrl-C stops`);
}
