// Decoders of HF tokenizer.json: token strings -> text, each step rewriting the list as HF's
// decode_chain does (ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace, WordPiece,
// BPEDecoder, CTC, Sequence); then the pieces are joined. With no decoder the tokens are
// joined with spaces.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <memory>
#include <string>
#include <vector>

namespace hftrain {

class Decoder {
 public:
  Decoder(const nlohmann::json& spec, const std::string& where);  // spec null: join with spaces
  Decoder();
  ~Decoder();
  Decoder(Decoder&&) noexcept;
  Decoder& operator=(Decoder&&) noexcept;

  std::string decode(std::vector<std::string> tokens) const;
  bool empty() const { return steps_.empty(); }

  struct Step;

 private:
  std::vector<std::shared_ptr<const Step>> steps_;
};

// Bytes as text the way Rust's String::from_utf8_lossy reads them: each maximal ill-formed
// subsequence becomes one U+FFFD.
std::string utf8_lossy(std::string_view bytes);

}  // namespace hftrain
