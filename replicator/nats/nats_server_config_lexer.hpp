// Reading a user's nats-server config file (HarmonyLite's [nats] server_config) as far as the
// generated config needs: which top-level keys it sets, where its includes point, and a copy
// without store_dir. A small scanner that knows comments, quoted strings, nesting and key
// positions; it is not a full parser (nats-server still parses the real thing). Also the quoting
// of values we write into configs. Pure text functions, except the two that read files.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace harmony {

// A string as a double-quoted nats-server config value (the lexer understands \" \\ \n \t \r;
// '$' inside quotes is literal). Throws harmony::Error on other control characters.
std::string conf_quote(const std::string& s);

// The user's server_config, minus any store_dir setting (nats-server 2.9 rejects -sd next to a
// config store_dir), with relative includes rebased for a copy living in `run_dir`, and the
// names of its top-level keys.
struct UserConfigRewrite {
  std::string text;  // store_dir settings blanked out (same length), includes rebased
  std::vector<std::string> removed_store_dirs;            // their values, unquoted
  std::vector<std::string> top_level_keys;                // lower case, "include" left out
  std::vector<std::filesystem::path> top_level_includes;  // absolute
};

// `user_dir` is the directory of the file `text` came from (includes are relative to it).
UserConfigRewrite rewrite_user_config(const std::string& text,
                                      const std::filesystem::path& user_dir,
                                      const std::filesystem::path& run_dir);

// A config file's text; "" when it cannot be read (nats-server reports that better than we do).
std::string config_file_text(const std::filesystem::path& file);

// Top-level keys (lower case) of a config file and of the files it includes at top level.
std::vector<std::string> top_level_keys_of(const std::filesystem::path& file);

}  // namespace harmony
