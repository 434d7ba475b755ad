// Same-machine anchor: npm tiktoken (WebAssembly) GPT-2 encode MB/s on Moby-Dick, one thread.
// Usage: npm install tiktoken@1.0.22 && node bench/TokenizerBench/tiktoken_anchor.js tests/fixtures/tokenization/moby.txt.gz
const fs = require("fs"), zlib = require("zlib");
const { get_encoding } = require("tiktoken");
const path = process.argv[2];
const text = (path.endsWith(".gz") ? zlib.gunzipSync(fs.readFileSync(path)) : fs.readFileSync(path)).toString("utf8");
const mb = Buffer.byteLength(text, "utf8") / 1e6;
const enc = get_encoding("gpt2");
let best = Infinity, n = 0;
for (let i = 0; i < 4; i++) {
  const t = process.hrtime.bigint();
  n = enc.encode(text, "all").length;
  best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e9);
}
console.log(`tiktoken npm (WASM) gpt2, 1 thread, whole text: ${n} tokens, best ${(mb / best).toFixed(2)} MB/s`);
