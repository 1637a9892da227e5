// Reading and replacing whole files (see files.hpp).
#include "shared/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "shared/error.hpp"

namespace harmony {

std::optional<std::string> read_whole_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream content;
  content << in.rdbuf();
  return content.str();
}

void write_file_atomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".XXXXXX";
  int fd = mkostemp(tmp.data(), O_CLOEXEC);  // O_CREAT | O_EXCL, mode 0600
  if (fd < 0) throw Error("cannot write " + path + ": " + std::strerror(errno));
  auto fail = [&](int err) {
    if (fd >= 0) close(fd);
    unlink(tmp.c_str());
    throw Error("cannot write " + path + ": " + std::strerror(err));
  };
  for (size_t off = 0; off < content.size();) {
    ssize_t w = ::write(fd, content.data() + off, content.size() - off);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail(errno);
    off += static_cast<size_t>(w);
  }
  if (::fsync(fd) != 0) fail(errno);
  const int closed = close(fd);
  fd = -1;
  if (closed != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) fail(errno);
}

}  // namespace harmony
