#include "hftrain/data/text/subword.h"

#include "hftrain/core/error.h"
#include "hftrain/data/text/unicode.h"

#include <array>
#include <fmt/format.h>

#include <cmath>
#include <limits>
#include <queue>

namespace hftrain {

namespace {

const std::array<char32_t, 256>& byte_code_points() {
  static const std::array<char32_t, 256> table = [] {
    std::array<char32_t, 256> cp{};
    std::array<bool, 256> printable{};
    for (int i = '!'; i <= '~'; ++i) printable[i] = true;
    for (int i = 0xA1; i <= 0xAC; ++i) printable[i] = true;
    for (int i = 0xAE; i <= 0xFF; ++i) printable[i] = true;
    char32_t n = 0;
    for (int i = 0; i < 256; ++i) cp[i] = printable[i] ? static_cast<char32_t>(i) : 256 + n++;
    return cp;
  }();
  return table;
}

uint64_t pair_key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

}  // namespace

const std::string& byte_level_char(uint8_t b) {
  static const std::array<std::string, 256> chars = [] {
    std::array<std::string, 256> c;
    for (int i = 0; i < 256; ++i) unicode::append_utf8(c[i], byte_code_points()[i]);
    return c;
  }();
  return chars[b];
}

bool byte_level_decode(std::string_view token, std::string& bytes) {
  static const std::unordered_map<char32_t, uint8_t> inverse = [] {
    std::unordered_map<char32_t, uint8_t> m;
    for (int i = 0; i < 256; ++i) m[byte_code_points()[i]] = static_cast<uint8_t>(i);
    return m;
  }();
  for (size_t i = 0; i < token.size();) {
    auto [cp, len] = unicode::decode(token, i);
    auto it = inverse.find(cp);
    if (it == inverse.end()) return false;
    bytes.push_back(static_cast<char>(it->second));
    i += len;
  }
  return true;
}

void SubwordModel::set_vocab(const Vocab& vocab) {
  vocab_ = vocab;
  int32_t n = 0;
  for (const auto& [tok, id] : vocab) n = std::max(n, id + 1);
  tokens_.assign(n, {});
  for (const auto& [tok, id] : vocab) tokens_[id] = tok;
}

std::optional<int32_t> SubwordModel::token_id(const std::string& token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

Bpe::Bpe(const Vocab& vocab, const std::vector<std::pair<std::string, std::string>>& merges, BpeOptions opts,
         const std::string& where)
    : opts_(std::move(opts)) {
  set_vocab(vocab);
  pieces_.reserve(vocab.size());
  for (const auto& [tok, id] : vocab) {
    std::string bytes;
    if (opts_.byte_level && byte_level_decode(tok, bytes)) {
      pieces_.emplace(bytes, id);
    } else {
      pieces_.emplace(tok, id);
    }
  }
  std::fill(std::begin(byte_id_), std::end(byte_id_), -1);
  if (opts_.byte_level)
    for (int b = 0; b < 256; ++b) {
      auto it = vocab_.find(byte_level_char(static_cast<uint8_t>(b)));
      if (it != vocab_.end()) byte_id_[b] = it->second;
    }
  if (opts_.unk_token) {
    unk_id_ = token_id(*opts_.unk_token);
    HFT_CHECK(unk_id_.has_value(), "{}: unk_token \"{}\" is not in the vocab", where, *opts_.unk_token);
  }
  merges_.reserve(merges.size());
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const auto& [a, b] = merges[rank];
    auto ia = token_id(a), ib = token_id(b);
    const std::string& prefix = opts_.continuing_subword_prefix;
    std::string merged = a + (b.compare(0, prefix.size(), prefix) == 0 ? b.substr(prefix.size()) : b);
    auto im = token_id(merged);
    HFT_CHECK(ia && ib && im, "{}: merge {} of \"{} {}\" names a token that is not in the vocab", where, rank, a, b);
    merges_.emplace(pair_key(*ia, *ib), std::make_pair(static_cast<int32_t>(rank), *im));
  }
}

void Bpe::unknown(std::string_view unit, std::vector<int32_t>& syms) const {
  if (opts_.byte_fallback) {
    bool all = true;
    std::vector<int32_t> ids;
    for (unsigned char b : unit) {
      auto id = token_id(fmt::format("<0x{:02X}>", b));
      if (!id) all = false;
      else ids.push_back(*id);
    }
    if (all) {
      syms.insert(syms.end(), ids.begin(), ids.end());
      return;
    }
  }
  if (!unk_id_) return;  // as HF: a character with no token and no unk_token is dropped
  if (opts_.fuse_unk && !syms.empty() && syms.back() == *unk_id_) return;
  syms.push_back(*unk_id_);
}

void Bpe::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (opts_.ignore_merges) {
    auto it = pieces_.find(std::string(word));
    if (it != pieces_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  std::vector<int32_t> syms;
  syms.reserve(word.size());
  if (opts_.byte_level) {
    for (size_t i = 0; i < word.size(); ++i) {
      int32_t id = byte_id_[static_cast<unsigned char>(word[i])];
      if (id >= 0) syms.push_back(id);
      else unknown(word.substr(i, 1), syms);
    }
  } else {
    std::string unit;
    for (size_t i = 0; i < word.size();) {
      auto len = unicode::decode(word, i).len;
      unit.assign(i > 0 ? opts_.continuing_subword_prefix : std::string());
      unit.append(word.substr(i, len));
      if (i + len == word.size()) unit += opts_.end_of_word_suffix;
      auto it = pieces_.find(unit);
      if (it != pieces_.end()) syms.push_back(it->second);
      else unknown(word.substr(i, len), syms);
      i += len;
    }
  }
  if (syms.size() > 32) {
    merge_long(syms);
    out.insert(out.end(), syms.begin(), syms.end());
    return;
  }
  // Merge the lowest-ranked adjacent pair (the leftmost among equals) until none applies.
  while (syms.size() > 1) {
    int32_t best_rank = INT32_MAX, best_id = -1;
    size_t best = 0;
    for (size_t i = 0; i + 1 < syms.size(); ++i) {
      auto it = merges_.find(pair_key(syms[i], syms[i + 1]));
      if (it != merges_.end() && it->second.first < best_rank) {
        best_rank = it->second.first;
        best_id = it->second.second;
        best = i;
      }
    }
    if (best_id < 0) break;
    syms[best] = best_id;
    syms.erase(syms.begin() + best + 1);
  }
  out.insert(out.end(), syms.begin(), syms.end());
}

// The same merges in O(n log n): candidate pairs in a heap by (rank, position), symbols in a
// linked list; a candidate whose symbols changed since it was queued is skipped.
void Bpe::merge_long(std::vector<int32_t>& syms) const {
  const int n = static_cast<int>(syms.size());
  std::vector<int> prev(n), next(n);
  std::vector<bool> alive(n, true);
  for (int i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  struct Candidate {
    int32_t rank;
    int pos;
    int32_t left, right;  // the symbols it joins, to detect a stale entry
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Candidate, std::vector<Candidate>, std::greater<>> heap;
  auto consider = [&](int i) {
    if (i < 0 || next[i] < 0) return;
    auto it = merges_.find(pair_key(syms[i], syms[next[i]]));
    if (it != merges_.end()) heap.push({it->second.first, i, syms[i], syms[next[i]]});
  };
  for (int i = 0; i + 1 < n; ++i) consider(i);
  while (!heap.empty()) {
    const Candidate c = heap.top();
    heap.pop();
    const int j = next[c.pos];
    if (!alive[c.pos] || j < 0 || syms[c.pos] != c.left || syms[j] != c.right) continue;
    syms[c.pos] = merges_.find(pair_key(c.left, c.right))->second.second;
    alive[j] = false;
    next[c.pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = c.pos;
    consider(prev[c.pos]);
    consider(c.pos);
  }
  std::vector<int32_t> kept;
  for (int i = 0; i >= 0 && i < n; i = next[i]) kept.push_back(syms[i]);
  syms.swap(kept);
}

Unigram::Unigram(const std::vector<std::pair<std::string, double>>& pieces, std::optional<int32_t> unk_id,
                 bool byte_fallback, const std::string& where)
    : unk_id_(unk_id), byte_fallback_(byte_fallback) {
  Vocab vocab;
  double min_score = std::numeric_limits<double>::infinity();
  node_id_.push_back(-1);
  for (size_t id = 0; id < pieces.size(); ++id) {
    const auto& [piece, score] = pieces[id];
    vocab.emplace(piece, static_cast<int32_t>(id));  // the first of duplicates wins, as HF's map
    scores_.push_back(score);
    min_score = std::min(min_score, score);
    int32_t node = 0;
    for (unsigned char b : piece) {
      int32_t next = child(node, b);
      if (next < 0) {
        next = static_cast<int32_t>(node_id_.size());
        node_id_.push_back(-1);
        edges_.emplace((static_cast<uint64_t>(node) << 8) | b, next);
      }
      node = next;
    }
    if (node > 0 && node_id_[node] < 0) node_id_[node] = vocab.at(piece);
  }
  set_vocab(vocab);
  HFT_CHECK(!unk_id_ || (*unk_id_ >= 0 && *unk_id_ < static_cast<int32_t>(pieces.size())),
            "{}: Unigram unk_id {} is not an id of its vocab ({} pieces)", where, *unk_id_, pieces.size());
  unk_score_ = min_score - 10.0;
}

int32_t Unigram::child(int32_t node, unsigned char byte) const {
  auto it = edges_.find((static_cast<uint64_t>(node) << 8) | byte);
  return it == edges_.end() ? -1 : it->second;
}

void Unigram::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  const size_t n = word.size();
  if (n == 0) return;
  struct Best {
    double score = 0;
    int64_t start = -1;  // -1: no path ends here yet
    int32_t id = -1;
  };
  std::vector<Best> best(n + 1);
  best[0].start = 0;
  for (size_t at = 0; at < n;) {
    const size_t char_len = static_cast<size_t>(unicode::decode(word, at).len);
    const double here = best[at].score;
    bool single_char = false;
    auto offer = [&](size_t end, double score, int32_t id) {
      Best& b = best[end];
      if (b.start < 0 || here + score > b.score) b = {here + score, static_cast<int64_t>(at), id};
    };
    int32_t node = 0;
    for (size_t k = at; k < n; ++k) {
      node = child(node, static_cast<unsigned char>(word[k]));
      if (node < 0) break;
      const int32_t id = node_id_[node];
      if (id < 0) continue;
      offer(k + 1, scores_[id], id);
      if (k + 1 - at == char_len) single_char = true;
    }
    if (!single_char) {
      HFT_CHECK(unk_id_.has_value(), "Unigram: \"{}\" has a character no piece covers, and the model has no unk_id",
                word);
      offer(at + char_len, unk_score_, *unk_id_);
    }
    at += char_len;
  }
  // Back from the end; runs of unknowns fuse into one piece (HF's fuse_unk, always on here).
  std::vector<std::pair<size_t, size_t>> spans;  // reversed
  std::vector<int32_t> ids;
  for (size_t end = n; end > 0;) {
    const Best& b = best[end];
    const size_t start = static_cast<size_t>(b.start);
    const bool unk = unk_id_ && b.id == *unk_id_;
    if (unk && !ids.empty() && ids.back() == *unk_id_ && spans.back().first == end) {
      spans.back().first = start;
    } else {
      spans.push_back({start, end});
      ids.push_back(b.id);
    }
    end = start;
  }
  for (size_t k = spans.size(); k-- > 0;) {
    const std::string_view piece = word.substr(spans[k].first, spans[k].second - spans[k].first);
    if (!(unk_id_ && ids[k] == *unk_id_)) {
      out.push_back(ids[k]);
      continue;
    }
    // An unknown piece: the vocab may still hold it (a fused run that is a piece), else its
    // bytes, else unk.
    if (auto id = token_id(std::string(piece)); id && *id != *unk_id_) {
      out.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      std::vector<int32_t> bytes;
      for (unsigned char c : piece)
        if (auto id = token_id(fmt::format("<0x{:02X}>", c))) bytes.push_back(*id);
      if (bytes.size() == piece.size()) {
        out.insert(out.end(), bytes.begin(), bytes.end());
        continue;
      }
    }
    out.push_back(*unk_id_);
  }
}

WordLevel::WordLevel(const Vocab& vocab, const std::string& unk_token, const std::string& where)
    : unk_token_(unk_token), where_(where) {
  set_vocab(vocab);
  unk_id_ = token_id(unk_token);
}

void WordLevel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (auto id = token_id(std::string(word))) {
    out.push_back(*id);
    return;
  }
  HFT_CHECK(unk_id_.has_value(), "{}: WordLevel has no token for \"{}\" and its unk_token \"{}\" is not in the vocab",
            where_, word, unk_token_);
  out.push_back(*unk_id_);
}

WordPiece::WordPiece(const Vocab& vocab, const std::string& unk_token, std::string prefix, int max_chars,
                     const std::string& where)
    : prefix_(std::move(prefix)), max_chars_(max_chars) {
  set_vocab(vocab);
  auto unk = token_id(unk_token);
  HFT_CHECK(unk.has_value(), "{}: unk_token \"{}\" is not in the WordPiece vocab", where, unk_token);
  unk_id_ = *unk;
}

// Greedy longest-match-first; a word with any unmatched rest is one unk token.
void WordPiece::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  std::vector<size_t> bounds;  // character starts, then the end
  for (size_t i = 0; i < word.size(); i += unicode::decode(word, i).len) bounds.push_back(i);
  bounds.push_back(word.size());
  if (static_cast<int>(bounds.size()) - 1 > max_chars_) {
    out.push_back(unk_id_);
    return;
  }
  size_t first = out.size(), start = 0;  // indices into bounds
  std::string candidate;
  while (start + 1 < bounds.size()) {
    bool found = false;
    for (size_t end = bounds.size() - 1; end > start; --end) {
      candidate.assign(start > 0 ? prefix_ : std::string());
      candidate.append(word.substr(bounds[start], bounds[end] - bounds[start]));
      auto it = vocab_.find(candidate);
      if (it != vocab_.end()) {
        out.push_back(it->second);
        start = end;
        found = true;
        break;
      }
    }
    if (!found) {
      out.resize(first);
      out.push_back(unk_id_);
      return;
    }
  }
}

}  // namespace hftrain
