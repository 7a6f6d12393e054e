#include "hftrain/data/hf_tokenizer.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/data/text/unicode.h"
#include "hftrain/io/atomic_file.h"
#include "hftrain/io/json_file.h"

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <sstream>

namespace hftrain {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::atomic<uint64_t> next_serial{1};

// Pieces -> ids, per thread: a corpus repeats its words, and BPE is the expensive step.
struct WordCache {
  uint64_t owner = 0;
  std::unordered_map<std::string, std::vector<int32_t>> words;
  std::string key;
  std::vector<std::string_view> pieces;
  PieceStore store;
};
thread_local WordCache cache;
constexpr size_t kWordCacheLimit = 1 << 20;

std::vector<std::pair<std::string, std::string>> read_merges(const json& merges, const std::string& where) {
  std::vector<std::pair<std::string, std::string>> out;
  out.reserve(merges.size());
  for (const auto& m : merges) {
    if (m.is_array() && m.size() == 2) {
      out.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      const std::string s = m.get<std::string>();
      size_t sp = s.find(' ', 1);
      HFT_CHECK(sp != std::string::npos, "{}: merge \"{}\" is not two tokens separated by a space", where, s);
      out.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    }
  }
  return out;
}

std::string opt_string(const json& j, const char* key) {
  return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string();
}

std::unique_ptr<SubwordModel> make_model(const json& m, bool byte_level, const std::string& where) {
  const std::string type = m.value("type", "");
  if (type == "Unigram") {
    HFT_CHECK(m.contains("vocab") && m["vocab"].is_array(), "{}: Unigram model has no \"vocab\" array", where);
    std::vector<std::pair<std::string, double>> pieces;
    pieces.reserve(m["vocab"].size());
    for (const auto& e : m["vocab"]) {
      HFT_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_number(),
                "{}: Unigram vocab entry {} is not [piece, score]", where, e.dump());
      pieces.emplace_back(e[0].get<std::string>(), e[1].get<double>());
    }
    std::optional<int32_t> unk;
    if (m.contains("unk_id") && !m["unk_id"].is_null()) unk = m["unk_id"].get<int32_t>();
    return std::make_unique<Unigram>(pieces, unk, m.value("byte_fallback", false), where);
  }
  Vocab vocab;
  HFT_CHECK(m.contains("vocab") && m["vocab"].is_object(), "{}: model has no \"vocab\" object", where);
  for (const auto& [tok, id] : m["vocab"].items()) vocab.emplace(tok, id.get<int32_t>());
  if (type == "BPE") {
    BpeOptions o;
    o.byte_level = byte_level;
    o.ignore_merges = m.value("ignore_merges", false);
    o.continuing_subword_prefix = opt_string(m, "continuing_subword_prefix");
    o.end_of_word_suffix = opt_string(m, "end_of_word_suffix");
    if (m.contains("unk_token") && m["unk_token"].is_string()) o.unk_token = m["unk_token"].get<std::string>();
    o.fuse_unk = m.value("fuse_unk", false);
    o.byte_fallback = m.value("byte_fallback", false);
    HFT_CHECK(!m.contains("dropout") || m["dropout"].is_null(), "{}: BPE dropout is not supported", where);
    return std::make_unique<Bpe>(vocab, read_merges(m.value("merges", json::array()), where), o, where);
  }
  if (type == "WordPiece") {
    return std::make_unique<WordPiece>(vocab, m.value("unk_token", "[UNK]"), m.value("continuing_subword_prefix", "##"),
                                       m.value("max_input_chars_per_word", 100), where);
  }
  if (type == "WordLevel") return std::make_unique<WordLevel>(vocab, m.value("unk_token", "<unk>"), where);
  fail("{}: model type \"{}\" is not supported; supported: BPE, Unigram, WordPiece, WordLevel", where, type);
}

}  // namespace

HfTokenizer::HfTokenizer(json tokenizer, json config, std::string where)
    : json_(std::move(tokenizer)), config_(std::move(config)), where_(std::move(where)), serial_(next_serial++) {
  HFT_CHECK(json_.is_object() && json_.contains("model"), "{}: not a tokenizer.json (no \"model\")", where_);
  if (config_.is_null()) config_ = json::object();
  normalizer_ = Normalizer(json_.value("normalizer", json()), where_);
  pre_ = PreTokenizer(json_.value("pre_tokenizer", json()), where_);
  model_ = make_model(json_["model"], pre_.byte_level(), where_);
  id_to_token_ = model_->tokens();

  for (const auto& t : json_.value("added_tokens", json::array())) {
    AddedToken a{t.at("content").get<std::string>(), t.at("id").get<int32_t>(), t.value("lstrip", false),
                 t.value("rstrip", false), t.value("single_word", false), t.value("normalized", false),
                 t.value("special", false)};
    HFT_CHECK(!a.content.empty() && a.id >= 0, "{}: added token {} has no content or a negative id", where_, t.dump());
    if (static_cast<size_t>(a.id) >= id_to_token_.size()) id_to_token_.resize(a.id + 1);
    id_to_token_[a.id] = a.content;
    // A normalized token is looked for in normalized text, as its normalized form.
    if (a.normalized) {
      normalized_added_.add(normalizer_.identity() ? a.content : normalizer_.apply(a.content), added_.size());
    } else {
      raw_added_.add(a.content, added_.size());
    }
    added_.push_back(std::move(a));
  }

  // The post-processor: tokens before and after a single text.
  std::function<void(const json&)> post = [&](const json& p) {
    if (p.is_null()) return;
    const std::string type = p.value("type", "");
    auto token_ids = [&](const json& pair) { return pair.at(1).get<int32_t>(); };
    if (type == "ByteLevel") {
      return;
    } else if (type == "Sequence") {
      for (const auto& q : p.at("processors")) post(q);
    } else if (type == "BertProcessing" || type == "RobertaProcessing") {
      prefix_.push_back(token_ids(p.at("cls")));
      suffix_.insert(suffix_.begin(), token_ids(p.at("sep")));
    } else if (type == "TemplateProcessing") {
      bool after = false;
      for (const auto& item : p.at("single")) {
        if (item.contains("Sequence")) {
          after = true;
          continue;
        }
        const std::string name = item.at("SpecialToken").at("id").get<std::string>();
        const auto& ids = p.at("special_tokens").at(name).at("ids");
        auto& dst = after ? suffix_ : prefix_;
        for (const auto& id : ids) dst.push_back(id.get<int32_t>());
      }
    } else {
      fail("{}: post_processor type \"{}\" is not supported; supported: TemplateProcessing, BertProcessing, "
           "RobertaProcessing, ByteLevel, Sequence",
           where_, type);
    }
  };
  post(json_.value("post_processor", json()));

  decoder_ = Decoder(json_.value("decoder", json()), where_);
  clean_up_spaces_ = config_.value("clean_up_tokenization_spaces", false);
}

void AddedTokenSet::add(std::string_view pattern, size_t index) {
  if (pattern.empty()) return;
  int32_t node = 0;
  for (unsigned char b : pattern) {
    auto [it, fresh] = edges_.emplace((static_cast<uint64_t>(node) << 8) | b, static_cast<int32_t>(values_.size()));
    if (fresh) values_.push_back(0);
    node = it->second;
  }
  if (!values_[node]) values_[node] = index + 1;  // the first of equal contents wins
  first_[static_cast<unsigned char>(pattern[0])] = true;
}

std::pair<size_t, size_t> AddedTokenSet::longest_at(std::string_view s, size_t i) const {
  std::pair<size_t, size_t> best{0, 0};
  int32_t node = 0;
  for (size_t k = i; k < s.size(); ++k) {
    auto it = edges_.find((static_cast<uint64_t>(node) << 8) | static_cast<unsigned char>(s[k]));
    if (it == edges_.end()) break;
    node = it->second;
    if (values_[node]) best = {values_[node], k + 1 - i};
  }
  return best;
}

namespace {

// The code point that ends at byte `end` of s.
unicode::Decoded decode_before(std::string_view s, size_t end) {
  size_t b = end - 1;
  while (b > 0 && end - b < 4 && (static_cast<unsigned char>(s[b]) & 0xC0) == 0x80) --b;
  auto d = unicode::decode(s, b);
  if (b + d.len != end) return {0xFFFD, 1};
  return d;
}

}  // namespace

template <typename Segment, typename Token>
void HfTokenizer::split_added(const AddedTokenSet& set, std::string_view text, Segment segment, Token token) const {
  size_t done = 0;  // the end of the last token taken
  for (size_t i = 0; i < text.size();) {
    if (!set.may_start(static_cast<unsigned char>(text[i]))) {
      ++i;
      continue;
    }
    const auto [k, len] = set.longest_at(text, i);
    if (!k) {
      ++i;
      continue;
    }
    const AddedToken& a = added_[k - 1];
    size_t start = i, stop = i + len;
    i = stop;  // the next match is looked for after this one, whether it is taken or not
    if (a.single_word) {
      const bool word_before = start > 0 && unicode::is_word(decode_before(text, start).cp);
      const bool word_after = stop < text.size() && unicode::is_word(unicode::decode(text, stop).cp);
      if (word_before || word_after) continue;
    }
    if (a.lstrip) {
      size_t b = start;
      while (b > 0) {
        auto d = decode_before(text, b);
        if (!unicode::is_whitespace(d.cp)) break;
        b -= d.len;
      }
      start = std::max(b, done);
    }
    if (a.rstrip) {
      while (stop < text.size()) {
        auto d = unicode::decode(text, stop);
        if (!unicode::is_whitespace(d.cp)) break;
        stop += d.len;
      }
    }
    if (done < start) segment(done, start);
    token(a.id);
    done = stop;
  }
  if (done < text.size()) segment(done, text.size());
}

void HfTokenizer::encode_to(std::string_view text, std::vector<int32_t>& out, bool add_special_tokens) const {
  if (add_special_tokens) out.insert(out.end(), prefix_.begin(), prefix_.end());
  auto push = [&](int32_t id) { out.push_back(id); };
  split_added(raw_added_, text, [&](size_t begin, size_t end) {
    std::string_view raw = text.substr(begin, end - begin);
    std::string normalized;
    if (!normalizer_.identity()) {
      normalized = normalizer_.apply(raw);
      raw = normalized;
    }
    if (normalized_added_.empty()) {
      encode_segment(raw, begin == 0, out);
      return;
    }
    split_added(normalized_added_, raw, [&](size_t b, size_t e) {
      encode_segment(raw.substr(b, e - b), begin == 0 && b == 0, out);
    }, push);
  }, push);
  if (add_special_tokens) out.insert(out.end(), suffix_.begin(), suffix_.end());
}

void HfTokenizer::encode_segment(std::string_view text, bool at_start, std::vector<int32_t>& out) const {
  if (text.empty()) return;
  WordCache& c = cache;
  if (c.owner != serial_ || c.words.size() > kWordCacheLimit) {
    c.words.clear();
    c.owner = serial_;
  }
  c.pieces.clear();
  c.store.clear();
  pre_.split(text, at_start, c.pieces, c.store);
  for (std::string_view piece : c.pieces) {
    c.key.assign(piece);
    auto it = c.words.find(c.key);
    if (it == c.words.end()) {
      std::vector<int32_t> ids;
      model_->encode_word(piece, ids);
      it = c.words.emplace(c.key, std::move(ids)).first;
    }
    out.insert(out.end(), it->second.begin(), it->second.end());
  }
}

std::string HfTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids)
    if (id >= 0 && id < static_cast<int64_t>(id_to_token_.size())) tokens.push_back(id_to_token_[id]);
  std::string out = decoder_.decode(std::move(tokens));
  if (clean_up_spaces_) {
    // transformers' clean_up_tokenization
    for (const auto& [from, to] : std::vector<std::pair<const char*, const char*>>{
             {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"}, {" 'm", "'m"},
             {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}})
      out = replace_all(out, from, to);
  }
  return out;
}

std::optional<int64_t> HfTokenizer::special_token_id(std::string_view role) const {
  auto it = config_.find(std::string(role));
  if (it == config_.end() || it->is_null()) return std::nullopt;
  const std::string content = it->is_object() ? it->value("content", "") : it->is_string() ? it->get<std::string>() : "";
  for (const AddedToken& a : added_)
    if (a.content == content) return a.id;
  if (auto id = model_->token_id(content)) return *id;
  return std::nullopt;
}

json hf_tokenizer_json_from_bpe_files(const std::string& vocab_json, const std::string& merges_txt) {
  json vocab = io::read_json_file(vocab_json);
  HFT_CHECK(vocab.is_object(), "{}: expected a JSON object of token -> id", vocab_json);
  std::istringstream in(io::read_file(merges_txt));
  json merges = json::array();
  std::string line;
  for (int line_no = 1; std::getline(in, line); ++line_no) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    HFT_CHECK(line.find(' ', 1) != std::string::npos, "{}:{}: expected two tokens separated by a space", merges_txt,
              line_no);
    merges.push_back(line);
  }
  json byte_level = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  json added = json::array();
  if (vocab.contains("<|endoftext|>"))
    added.push_back({{"id", vocab["<|endoftext|>"]}, {"content", "<|endoftext|>"}, {"single_word", false},
                     {"lstrip", false}, {"rstrip", false}, {"normalized", true}, {"special", true}});
  return {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
          {"normalizer", nullptr}, {"pre_tokenizer", byte_level}, {"post_processor", byte_level},
          {"decoder", byte_level},
          {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                     {"continuing_subword_prefix", ""}, {"end_of_word_suffix", ""}, {"fuse_unk", false},
                     {"byte_fallback", false}, {"vocab", vocab}, {"merges", merges}}}};
}

json hf_tokenizer_json_from_wordpiece_vocab(const std::string& vocab_txt, bool lowercase) {
  std::istringstream in(io::read_file(vocab_txt));
  json vocab = json::object();
  std::string line;
  for (int id = 0; std::getline(in, line); ++id) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (!vocab.contains(line)) vocab[line] = id;
  }
  json added = json::array();
  json special;
  for (const char* t : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    HFT_CHECK(vocab.contains(t), "{}: a BERT vocab needs the token {}", vocab_txt, t);
    added.push_back({{"id", vocab[t]}, {"content", t}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                     {"normalized", false}, {"special", true}});
    special[t] = {{"id", t}, {"ids", {vocab[t]}}, {"tokens", {t}}};
  }
  json cls = {{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}}, sep = {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}};
  json seq = {{"Sequence", {{"id", "A"}, {"type_id", 0}}}};
  return {{"version", "1.0"}, {"truncation", nullptr}, {"padding", nullptr}, {"added_tokens", added},
          {"normalizer", {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
                          {"strip_accents", nullptr}, {"lowercase", lowercase}}},
          {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
          {"post_processor", {{"type", "TemplateProcessing"}, {"single", {cls, seq, sep}},
                              {"pair", {cls, seq, sep, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}},
                                        {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 1}}}}}},
                              {"special_tokens", {{"[CLS]", special["[CLS]"]}, {"[SEP]", special["[SEP]"]}}}}},
          {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
          {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                     {"max_input_chars_per_word", 100}, {"vocab", vocab}}}};
}

namespace {
std::shared_ptr<const Tokenizer> tokenizer_load_path(const std::string& name_or_path, const std::string& key);
}  // namespace

std::shared_ptr<const Tokenizer> tokenizer_load(const std::string& name_or_path, const std::string& key) {
  if (tokenizer_registry().has(name_or_path)) return tokenizer_registry().create(name_or_path);
  try {
    return tokenizer_load_path(name_or_path, key);
  } catch (const json::exception& e) {
    fail("{} {}: malformed tokenizer files: {}", key, name_or_path, e.what());
  }
}

namespace {

std::shared_ptr<const Tokenizer> tokenizer_load_path(const std::string& name_or_path, const std::string& key) {
  const fs::path p(name_or_path);
  std::error_code ec;
  if (!fs::exists(p, ec)) {
    fail("{} \"{}\" is neither a built-in tokenizer ({}) nor an existing path", key, name_or_path,
         join(tokenizer_registry().names(), ", "));
  }
  const fs::path dir = fs::is_directory(p) ? p : p.parent_path();
  json config;
  if (fs::exists(dir / "tokenizer_config.json")) config = io::read_json_file((dir / "tokenizer_config.json").string());
  auto file = [&](const char* name) { return (dir / name).string(); };
  if (fs::is_directory(p)) {
    if (fs::exists(p / "tokenizer.json"))
      return std::make_shared<HfTokenizer>(io::read_json_file(file("tokenizer.json")), config, file("tokenizer.json"));
    if (fs::exists(p / "vocab.json") && fs::exists(p / "merges.txt")) {
      if (config.is_null()) config = {{"bos_token", "<|endoftext|>"}, {"eos_token", "<|endoftext|>"}, {"unk_token", "<|endoftext|>"}};
      return std::make_shared<HfTokenizer>(hf_tokenizer_json_from_bpe_files(file("vocab.json"), file("merges.txt")),
                                           config, file("vocab.json"));
    }
    if (!fs::exists(p / "vocab.txt"))
      fail("{} {}: the directory has no tokenizer.json, vocab.json + merges.txt or vocab.txt", key, name_or_path);
  }
  const std::string path = fs::is_directory(p) ? file("vocab.txt") : p.string();
  if (p.extension() == ".txt" || fs::is_directory(p)) {
    const bool lower = config.is_object() ? config.value("do_lower_case", true) : true;
    if (config.is_null())
      config = {{"do_lower_case", lower}, {"unk_token", "[UNK]"}, {"sep_token", "[SEP]"}, {"pad_token", "[PAD]"},
                {"cls_token", "[CLS]"}, {"mask_token", "[MASK]"}};
    return std::make_shared<HfTokenizer>(hf_tokenizer_json_from_wordpiece_vocab(path, lower), config, path);
  }
  return std::make_shared<HfTokenizer>(io::read_json_file(path), config, path);
}

}  // namespace

}  // namespace hftrain
