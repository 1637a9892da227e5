// Reading and replacing whole files. One reader, so every caller gets the same behaviour: binary
// mode (no newline translation), and "cannot open" told apart from "empty". One writer, so every
// generated file is replaced the same safe way.
#pragma once
#include <optional>
#include <string>

namespace harmony {

// The whole content of `path`, or nullopt when it cannot be opened.
std::optional<std::string> read_whole_file(const std::string& path);

// Replaces `path` with `content`: a new file (O_CREAT | O_EXCL, mode 0600) next to it, written,
// fsynced and renamed over `path`. The rename replaces a symlink or a file someone planted at
// `path` instead of writing through it, and a reader never sees a half-written file. Throws
// Error naming the path.
void write_file_atomically(const std::string& path, const std::string& content);

}  // namespace harmony
