// The initial JavaScript a browser loads for the console (the entry script of dist/index.html and every
// chunk it preloads), gzipped, against the budget. Prints JSON; exits 1 over the budget.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const BUDGET = 300 * 1024;
const dist = join(dirname(fileURLToPath(import.meta.url)), "..", "dist");
const html = readFileSync(join(dist, "index.html"), "utf8");
const files = new Set();
for (const match of html.matchAll(/<script[^>]+src="([^"]+\.js)"/g)) files.add(match[1]);
for (const match of html.matchAll(/<link[^>]+rel="modulepreload"[^>]+href="([^"]+\.js)"/g)) files.add(match[1]);
let total = 0;
const sizes = {};
for (const file of files) {
  const size = gzipSync(readFileSync(join(dist, file.replace(/^\//, "")))).length;
  sizes[file] = size;
  total += size;
}
console.log(JSON.stringify({ initial_js_gzip_bytes: total, budget_bytes: BUDGET, files: sizes }));
process.exit(total <= BUDGET ? 0 : 1);
