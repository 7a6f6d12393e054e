#include "hftrain/data/examples.h"

#include "hftrain/core/error.h"
#include "hftrain/core/strings.h"
#include "hftrain/io/atomic_file.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <glob.h>

namespace hftrain {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::vector<std::string> dataset_files(const std::string& path, const std::string& key) {
  std::vector<std::string> files;
  std::error_code ec;
  if (fs::is_directory(path, ec)) {
    for (const auto& e : fs::directory_iterator(path))
      if (e.is_regular_file() && e.path().filename().string()[0] != '.') files.push_back(e.path().string());
  } else if (path.find_first_of("*?[") != std::string::npos) {
    glob_t g{};
    if (::glob(path.c_str(), 0, nullptr, &g) == 0)
      for (size_t i = 0; i < g.gl_pathc; ++i)
        if (fs::is_regular_file(g.gl_pathv[i], ec)) files.emplace_back(g.gl_pathv[i]);
    globfree(&g);
  } else if (fs::is_regular_file(path, ec)) {
    files.push_back(path);
  } else {
    fail("data file not found: {} (key \"{}\")", path, key);
  }
  std::sort(files.begin(), files.end());
  HFT_CHECK(!files.empty(), "{} names no files (key \"{}\")", path, key);
  return files;
}

std::vector<std::string> csv_record(const std::string& text, size_t& pos, char sep) {
  std::vector<std::string> fields(1);
  bool quoted = false;
  for (; pos < text.size(); ++pos) {
    char c = text[pos];
    if (quoted) {
      if (c != '"') {
        fields.back().push_back(c);
      } else if (pos + 1 < text.size() && text[pos + 1] == '"') {
        fields.back().push_back('"');
        ++pos;
      } else {
        quoted = false;
      }
    } else if (c == '"') {
      quoted = true;
    } else if (c == sep) {
      fields.emplace_back();
    } else if (c == '\n' || c == '\r') {
      if (c == '\r' && pos + 1 < text.size() && text[pos + 1] == '\n') ++pos;
      ++pos;
      return fields;
    } else {
      fields.back().push_back(c);
    }
  }
  return fields;
}

namespace {

std::vector<std::string> object_keys(const json& row) {
  std::vector<std::string> keys;
  for (const auto& [k, _] : row.items()) keys.push_back(k);
  return keys;
}

void read_jsonl(const std::string& file, const std::string& field, const std::string& prompt_field,
                const std::string* label_field, std::vector<Example>& out) {
  const std::string text = io::read_file(file);
  size_t pos = 0;
  for (int line_no = 1; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    json row;
    try {
      row = json::parse(line);
    } catch (const json::exception& e) {
      fail("{}:{}: invalid JSON: {}", file, line_no, e.what());
    }
    HFT_CHECK(row.is_object(), "{}:{}: expected a JSON object per line", file, line_no);
    Example ex;
    if (row.contains(field)) {
      HFT_CHECK(row[field].is_string(), "{}:{}: field \"{}\" must be a string", file, line_no, field);
      ex.text = row[field].get<std::string>();
      if (!prompt_field.empty()) {
        HFT_CHECK(row.contains(prompt_field), "{}:{}: no prompt field \"{}\"; the row has: {}", file, line_no,
                  prompt_field, join(object_keys(row), ", "));
        HFT_CHECK(row[prompt_field].is_string(), "{}:{}: field \"{}\" must be a string", file, line_no, prompt_field);
        ex.prompt = row[prompt_field].get<std::string>();
      }
    } else if (row.contains("input_ids")) {
      auto ints = [&](const char* name) {
        try {
          return row[name].get<std::vector<int32_t>>();
        } catch (const json::exception&) {
          fail("{}:{}: field \"{}\" must be a list of integers", file, line_no, name);
        }
      };
      ex.input_ids = ints("input_ids");
      ex.tokenized = true;
      const size_t n = ex.input_ids.size();
      if (row.contains("labels")) {
        ex.labels = ints("labels");
        HFT_CHECK(ex.labels->size() == n, "{}:{}: \"labels\" has {} entries, \"input_ids\" {}", file, line_no,
                  ex.labels->size(), n);
      }
      if (row.contains("attention_mask")) {  // a padded row: its padding goes, batches are padded anew
        const std::vector<int32_t> mask = ints("attention_mask");
        HFT_CHECK(mask.size() == n, "{}:{}: \"attention_mask\" has {} entries, \"input_ids\" {}", file, line_no,
                  mask.size(), n);
        size_t kept = 0;
        for (size_t i = 0; i < n; ++i)
          if (mask[i] != 0) {
            ex.input_ids[kept] = ex.input_ids[i];
            if (ex.labels) (*ex.labels)[kept] = (*ex.labels)[i];
            ++kept;
          }
        ex.input_ids.resize(kept);
        if (ex.labels) ex.labels->resize(kept);
      }
    } else {
      fail("{}:{}: no field \"{}\" (nor \"input_ids\"); the row has: {}", file, line_no, field,
           join(object_keys(row), ", "));
    }
    if (label_field) {
      HFT_CHECK(row.contains(*label_field), "{}:{}: no label field \"{}\"; the row has: {}", file, line_no,
                *label_field, join(object_keys(row), ", "));
      const json& l = row[*label_field];
      HFT_CHECK(l.is_string() || l.is_number_integer(), "{}:{}: label \"{}\" must be a string or an integer, got {}",
                file, line_no, *label_field, l.dump());
      ex.label = l.is_string() ? l.get<std::string>() : l.dump();
    }
    out.push_back(std::move(ex));
  }
}

void read_csv(const std::string& file, const std::string& field, const std::string& prompt_field,
              const std::string* label_field, char sep, std::vector<Example>& out) {
  const std::string text = io::read_file(file);
  size_t pos = 0;
  const std::vector<std::string> header = csv_record(text, pos, sep);
  auto column = [&](const std::string& name, const char* what) {
    auto c = std::find(header.begin(), header.end(), name);
    HFT_CHECK(c != header.end(), "{}: no {}column \"{}\"; the header has: {}", file, what, name, join(header, ", "));
    return static_cast<size_t>(c - header.begin());
  };
  const size_t k = column(field, "");
  const size_t kl = label_field ? column(*label_field, "label ") : 0;
  const size_t kp = prompt_field.empty() ? 0 : column(prompt_field, "prompt ");
  for (int line_no = 2; pos < text.size(); ++line_no) {
    std::vector<std::string> rec = csv_record(text, pos, sep);
    if (rec.size() == 1 && rec[0].empty()) continue;  // a blank line
    HFT_CHECK(rec.size() == header.size(), "{}: record {} has {} fields, the header {}", file, line_no, rec.size(),
              header.size());
    Example& ex = out.emplace_back();
    if (label_field) ex.label = rec[kl];  // before the text leaves the record: they may be one column
    if (!prompt_field.empty()) ex.prompt = rec[kp];
    ex.text = std::move(rec[k]);
  }
}

void read_text(const std::string& file, SampleBy by, bool keep_linebreaks, std::vector<Example>& out) {
  std::string text = io::read_file(file);
  if (by == SampleBy::kDocument) {
    out.emplace_back().text = std::move(text);
    return;
  }
  const std::string sep = by == SampleBy::kLine ? "\n" : "\n\n";
  const bool keep = by == SampleBy::kLine && keep_linebreaks;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(sep, pos);
    if (end == std::string::npos) end = text.size();
    std::string piece = text.substr(pos, end - pos + (keep && end < text.size() ? 1 : 0));
    if (by == SampleBy::kLine && !keep && !piece.empty() && piece.back() == '\r') piece.pop_back();
    pos = end + sep.size();
    if (by == SampleBy::kParagraph && piece.find_first_not_of("\r\n") == std::string::npos) continue;
    out.emplace_back().text = std::move(piece);
  }
}

}  // namespace

std::vector<Example> examples_read(const DatasetOptions& d, const std::string& key, bool with_labels) {
  HFT_CHECK(!with_labels || d.format == DatasetFormat::kJsonl || d.format == DatasetFormat::kCsv ||
                d.format == DatasetFormat::kTsv,
            "sequence classification needs labelled rows: a jsonl, csv or tsv dataset (key \"{}\")", key);
  const std::string* label = with_labels ? &d.label_field : nullptr;
  std::vector<Example> out;
  for (const std::string& file : dataset_files(d.path, key)) {
    switch (d.format) {
      case DatasetFormat::kText: read_text(file, d.sample_by, d.keep_linebreaks, out); break;
      case DatasetFormat::kJsonl: read_jsonl(file, d.text_field, d.prompt_field, label, out); break;
      case DatasetFormat::kCsv: read_csv(file, d.text_field, d.prompt_field, label, ',', out); break;
      case DatasetFormat::kTsv: read_csv(file, d.text_field, d.prompt_field, label, '\t', out); break;
      default: fail_runtime("examples_read: not a text dataset format");
    }
  }
  HFT_CHECK(!out.empty(), "the dataset {} (key \"{}\") has no examples", d.path, key);
  return out;
}

}  // namespace hftrain
