// Reading whole files (see files.hpp).
#include "shared/files.hpp"

#include <fstream>
#include <sstream>

namespace harmony {

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

}  // namespace harmony
