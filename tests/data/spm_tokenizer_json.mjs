// SentencePiece's unigram ModelProto (protobuf) -> the tokenizer.json transformers'
// SpmConverter writes for it, for the tokenizer parity test and bench_data's reference script.
// Fields read: pieces 1, trainer_spec 2 (model_type 3, unk_id 40), normalizer_spec 3
// (precompiled_charsmap 2).
export function spmModelToTokenizerJson(buf) {
  const fields = function* (b) {
    let i = 0;
    const varint = () => {
      let r = 0n, s = 0n;
      for (;;) { const x = b[i++]; r |= BigInt(x & 0x7f) << s; s += 7n; if (x < 0x80) return r; }
    };
    while (i < b.length) {
      const key = Number(varint()), f = key >> 3, t = key & 7;
      if (t === 0) yield [f, Number(varint())];
      else if (t === 2) { const n = Number(varint()); yield [f, b.subarray(i, i + n)]; i += n; }
      else if (t === 5) { yield [f, b.subarray(i, i + 4)]; i += 4; }
      else if (t === 1) { yield [f, b.subarray(i, i + 8)]; i += 8; }
      else throw new Error(`protobuf wire type ${t}`);
    }
  };
  const pieces = [], trainer = {}, norm = {};
  for (const [f, v] of fields(buf)) {
    if (f === 1) {
      const p = { piece: "", score: 0, type: 1 };
      for (const [g, w] of fields(v)) {
        if (g === 1) p.piece = Buffer.from(w).toString("utf8");
        else if (g === 2) p.score = Buffer.from(w).readFloatLE(0);
        else if (g === 3) p.type = w;
      }
      pieces.push(p);
    } else if (f === 2) for (const [g, w] of fields(v)) trainer[g] = w;
    else if (f === 3) for (const [g, w] of fields(v)) norm[g] = w;
  }
  if ((trainer[3] ?? 1) !== 1) throw new Error("not a unigram SentencePiece model");
  const metaspace = { type: "Metaspace", replacement: "\u2581", add_prefix_space: true, prepend_scheme: "first", split: true };
  return {
    version: "1.0", truncation: null, padding: null,
    added_tokens: pieces.flatMap((p, id) => (p.type === 2 || p.type === 3 ? [{ id, content: p.piece, single_word: false,
      lstrip: false, rstrip: false, normalized: false, special: true }] : [])),
    normalizer: { type: "Sequence", normalizers: [
      { type: "Precompiled", precompiled_charsmap: Buffer.from(norm[2] ?? []).toString("base64") },
      { type: "Strip", strip_left: false, strip_right: true },
      { type: "Replace", pattern: { Regex: " {2,}" }, content: "\u2581" }] },
    pre_tokenizer: metaspace, post_processor: null, decoder: metaspace,
    model: { type: "Unigram", unk_id: trainer[40] ?? 0, vocab: pieces.map((p) => [p.piece, p.score]), byte_fallback: false },
  };
}
