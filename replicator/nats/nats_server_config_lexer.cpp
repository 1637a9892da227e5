// The scanner of a user's nats-server config file: one pass that finds keys where keys may
// start, blanks out store_dir settings and rebases includes (see nats_server_config_lexer.hpp).
#include "replicator/nats/nats_server_config_lexer.hpp"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "shared/error.hpp"
#include "shared/files.hpp"

namespace harmony {
namespace fs = std::filesystem;

namespace {

// nats-server resolves includes this many levels deep at most before we stop looking for keys
// (it would report an include cycle itself).
constexpr int kMaxIncludeDepth = 8;

bool is_quote(char c) {
  return c == '"' || c == '\'';
}

// Characters after which a key may start.
bool starts_new_item(char c) {
  return c == '\n' || c == '{' || c == ';' || c == ',' || c == '[';
}

bool may_start_key(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || is_quote(c);
}

bool is_bare_key_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
}

std::string lower_case(std::string s) {
  for (auto& ch : s) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return s;
}

// Position arithmetic over a config text: every function takes a position and returns one.
class ConfigText {
 public:
  explicit ConfigText(const std::string& text) : text_(text), n_(text.size()) {}

  size_t size() const { return n_; }
  char operator[](size_t p) const { return text_[p]; }
  bool has(size_t p, char c) const { return p < n_ && text_[p] == c; }
  std::string slice(size_t begin, size_t end) const { return text_.substr(begin, end - begin); }

  bool comment_at(size_t p) const { return has(p, '#') || (has(p, '/') && has(p + 1, '/')); }
  size_t line_end(size_t p) const {
    while (p < n_ && text_[p] != '\n') ++p;
    return p;
  }
  size_t skip_blanks(size_t p) const {
    while (p < n_ && (text_[p] == ' ' || text_[p] == '\t')) ++p;
    return p;
  }
  // `p` at the opening quote; returns one past the closing one.
  size_t skip_quoted(size_t p) const {
    char q = text_[p++];
    while (p < n_ && text_[p] != q) p += (q == '"' && text_[p] == '\\') ? 2 : 1;
    return std::min(p + 1, n_);
  }
  size_t value_end(size_t p) const {
    if (p < n_ && is_quote(text_[p])) return skip_quoted(p);
    while (p < n_ && !std::isspace(static_cast<unsigned char>(text_[p])) && text_[p] != ';' &&
           text_[p] != ',' && text_[p] != '}' && text_[p] != '#')
      ++p;
    return p;
  }
  std::string unquoted(size_t begin, size_t end) const {
    std::string v = slice(begin, end);
    if (v.size() >= 2 && is_quote(v[0])) v = v.substr(1, v.size() - 2);
    return v;
  }

 private:
  const std::string& text_;
  const size_t n_;
};

// A key where one may start: its name and where its value starts.
struct KeyToken {
  size_t begin = 0, end = 0;  // the key itself
  std::string name;           // lower case, unquoted
  bool quoted = false;
  bool has_separator = false;  // followed by '=' or ':'
  size_t value = 0;            // first character of the value
};

KeyToken read_key(const ConfigText& t, size_t begin) {
  KeyToken key;
  key.begin = begin;
  key.quoted = is_quote(t[begin]);
  if (key.quoted) {
    key.end = t.skip_quoted(begin);
    key.name = t.unquoted(begin, key.end);
  } else {
    key.end = begin;
    while (key.end < t.size() && is_bare_key_char(t[key.end])) ++key.end;
    key.name = t.slice(begin, key.end);
  }
  key.name = lower_case(key.name);
  key.value = t.skip_blanks(key.end);
  key.has_separator = t.has(key.value, '=') || t.has(key.value, ':');
  if (key.has_separator) key.value = t.skip_blanks(key.value + 1);
  return key;
}

// One pass over a user's config: tracks nesting and whether a key may start, and records the
// edits (store_dir removed, includes rebased) applied at the end.
class UserConfigScanner {
 public:
  UserConfigScanner(const std::string& text, const fs::path& user_dir, const fs::path& run_dir)
      : source_(text), text_(text), user_dir_(user_dir), run_dir_(run_dir) {}

  UserConfigRewrite run() {
    while (pos_ < text_.size()) step();
    result_.text = edited_text();
    return std::move(result_);
  }

 private:
  struct Edit {
    size_t begin, end;
    std::string replacement;
  };

  void step() {
    const char c = text_[pos_];
    if (text_.comment_at(pos_)) {
      pos_ = text_.line_end(pos_);
      return;
    }
    if (c == '{' || c == '[') ++depth_;
    if (c == '}' || c == ']') --depth_;
    if (starts_new_item(c)) {
      expect_key_ = true;
      ++pos_;
      return;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      ++pos_;
      return;
    }
    if (expect_key_ && may_start_key(c))
      pos_ = scan_key();
    else
      pos_ = is_quote(c) ? text_.skip_quoted(pos_) : pos_ + 1;
    expect_key_ = false;
  }

  // At a key start; returns where scanning resumes.
  size_t scan_key() {
    const KeyToken key = read_key(text_, pos_);
    if (key.quoted && !key.has_separator) return key.end;  // a string value, not a key
    if (depth_ == 0 && key.name != "include") result_.top_level_keys.push_back(key.name);
    if (key.name == "store_dir" || key.name == "storedir") return remove_store_dir(key);
    if (key.name == "include" && !key.has_separator) return rebase_include(key);
    return key.end;
  }

  // Blanks the setting out (with its ';' or ','), keeping every other position where it was.
  size_t remove_store_dir(const KeyToken& key) {
    size_t end = text_.value_end(key.value);
    result_.removed_store_dirs.push_back(text_.unquoted(key.value, end));
    const size_t after = text_.skip_blanks(end);
    if (text_.has(after, ';') || text_.has(after, ',')) end = after + 1;
    edits_.push_back({key.begin, end, std::string(end - key.begin, ' ')});
    return end;
  }

  size_t rebase_include(const KeyToken& key) {
    const size_t end = text_.value_end(key.value);
    const std::string path = text_.unquoted(key.value, end);
    if (path.empty()) return end;
    // nats-server joins include paths to the including file's directory, even absolute ones.
    fs::path target = (user_dir_ / fs::path(path).relative_path()).lexically_normal();
    edits_.push_back({key.value, end, conf_quote(target.lexically_relative(run_dir_).string())});
    if (depth_ == 0) result_.top_level_includes.push_back(target);
    return end;
  }

  std::string edited_text() const {
    std::string out;
    size_t pos = 0;
    for (const auto& e : edits_) {
      out += source_.substr(pos, e.begin - pos);
      out += e.replacement;
      pos = e.end;
    }
    return out + source_.substr(pos);
  }

  const std::string& source_;
  const ConfigText text_;
  const fs::path user_dir_, run_dir_;
  size_t pos_ = 0;
  int depth_ = 0;
  bool expect_key_ = true;
  std::vector<Edit> edits_;
  UserConfigRewrite result_;
};

void collect_top_level_keys(const fs::path& file, std::vector<std::string>& keys, int depth) {
  if (depth > kMaxIncludeDepth) return;
  auto scan = rewrite_user_config(config_file_text(file), file.parent_path(), file.parent_path());
  keys.insert(keys.end(), scan.top_level_keys.begin(), scan.top_level_keys.end());
  for (const auto& inc : scan.top_level_includes) collect_top_level_keys(inc, keys, depth + 1);
}

}  // namespace

std::string conf_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          throw Error("embedded nats-server: control character in a configuration value");
        out += c;
    }
  }
  return out + "\"";
}

UserConfigRewrite rewrite_user_config(const std::string& text, const fs::path& user_dir,
                                      const fs::path& run_dir) {
  return UserConfigScanner(text, user_dir, run_dir).run();
}

std::string config_file_text(const fs::path& file) {
  return read_whole_file(file.string()).value_or("");
}

std::vector<std::string> top_level_keys_of(const fs::path& file) {
  std::vector<std::string> keys;
  collect_top_level_keys(file, keys, 0);
  return keys;
}

}  // namespace harmony
