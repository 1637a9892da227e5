// Reading whole files. One reader, so every caller gets the same behaviour: binary mode (no
// newline translation), and "cannot open" told apart from "empty".
#pragma once
#include <optional>
#include <string>

namespace harmony {

// The whole content of `path`, or nullopt when it cannot be opened.
std::optional<std::string> read_whole_file(const std::string& path);

}  // namespace harmony
