// Cluster-key tags on replication messages (see message_auth.hpp): key file loading, HMAC-SHA256
// over the canonical part bytes (OpenSSL), constant-time verification.
#include "replicator/wire/message_auth.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include <fmt/format.h>

namespace harmony {

namespace {

constexpr size_t kTagBytes = 32;  // SHA-256
constexpr std::string_view kHexDigits = "0123456789abcdef";

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void put_be(std::string& out, uint64_t v, int bytes) {
  for (int shift = (bytes - 1) * 8; shift >= 0; shift -= 8)
    out.push_back(static_cast<char>((v >> shift) & 0xff));
}

std::array<unsigned char, kTagBytes> hmac(const ClusterKey& key, uint64_t origin, uint64_t batch,
                                          uint32_t index, uint32_t count,
                                          std::string_view payload) {
  const std::string input = part_auth_input(origin, batch, index, count, payload);
  std::array<unsigned char, kTagBytes> out{};
  unsigned int len = 0;
  if (!HMAC(EVP_sha256(), key.secret.data(), static_cast<int>(key.secret.size()),
            reinterpret_cast<const unsigned char*>(input.data()), input.size(), out.data(), &len) ||
      len != kTagBytes)
    throw std::runtime_error("cannot compute HMAC-SHA256 (OpenSSL)");
  return out;
}

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

}  // namespace

ClusterKey load_cluster_key(const std::string& path, bool verify) {
  auto fail = [&](const std::string& why) {
    return std::runtime_error(fmt::format("[nats] cluster_key_file \"{}\": {}", path, why));
  };
  Fd f{open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (f.fd < 0) throw fail(fmt::format("cannot open: {}", std::strerror(errno)));
  struct stat st {};
  if (fstat(f.fd, &st) != 0) throw fail(fmt::format("cannot stat: {}", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw fail("is not a regular file");
  // A key others can read is a key others hold; one others can write is one they can choose.
  if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
    throw fail(fmt::format("is accessible by group or others (mode {:04o}); chmod 600 it",
                           st.st_mode & 07777));
  if (static_cast<uint64_t>(st.st_size) > kMaxClusterKeyFileBytes)
    throw fail(fmt::format("is {} bytes, larger than a key file can be ({} bytes)", st.st_size,
                           kMaxClusterKeyFileBytes));
  std::string text(kMaxClusterKeyFileBytes + 1, '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = read(f.fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw fail(fmt::format("cannot read: {}", std::strerror(errno)));
    if (n == 0) break;
    got += static_cast<size_t>(n);
  }
  if (got > kMaxClusterKeyFileBytes)
    throw fail(fmt::format("is larger than a key file can be ({} bytes)", kMaxClusterKeyFileBytes));
  text.resize(got);
  const auto first = text.find_first_not_of(" \t\r\n");
  const auto last = text.find_last_not_of(" \t\r\n");
  const std::string_view hex = first == std::string::npos
                                   ? std::string_view{}
                                   : std::string_view(text).substr(first, last - first + 1);
  ClusterKey key;
  key.verify = verify;
  if (hex.size() % 2 != 0)
    throw fail("must hold the key as hex digits (an odd number of digits was found)");
  for (size_t i = 0; i < hex.size(); i += 2) {
    const int hi = hex_value(hex[i]), lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0)
      throw fail(fmt::format(
          "must hold the key as hex digits only (found a non-hex character at offset {}); "
          "create one with: openssl rand -hex 32",
          first + i + (hi < 0 ? 0 : 1)));
    key.secret.push_back(static_cast<char>(hi * 16 + lo));
  }
  if (key.secret.size() < kMinClusterKeyBytes)
    throw fail(
        fmt::format("holds {} key bytes, at least {} are needed ({} hex digits); create "
                    "one with: openssl rand -hex 32",
                    key.secret.size(), kMinClusterKeyBytes, 2 * kMinClusterKeyBytes));
  return key;
}

std::string part_auth_input(uint64_t origin, uint64_t batch, uint32_t index, uint32_t count,
                            std::string_view payload) {
  std::string out;
  out.reserve(kAuthScheme.size() + 1 + 32 + payload.size());
  out += kAuthScheme;
  out.push_back('\0');
  put_be(out, origin, 8);
  put_be(out, batch, 8);
  put_be(out, index, 4);
  put_be(out, count, 4);
  put_be(out, payload.size(), 8);
  out += payload;
  return out;
}

std::string part_auth_tag(const ClusterKey& key, uint64_t origin, uint64_t batch, uint32_t index,
                          uint32_t count, std::string_view payload) {
  const auto mac = hmac(key, origin, batch, index, count, payload);
  std::string out(kAuthScheme);
  out.push_back(':');
  for (unsigned char b : mac) {
    out.push_back(kHexDigits[b >> 4]);
    out.push_back(kHexDigits[b & 0xf]);
  }
  return out;
}

std::optional<std::string> check_part_auth(const ClusterKey& key,
                                           const std::optional<std::string>& tag, uint64_t origin,
                                           uint64_t batch, uint32_t index, uint32_t count,
                                           std::string_view payload) {
  if (!tag) return fmt::format("cannot be authenticated: no {} header", kHeaderAuth);
  const std::string_view v(*tag);
  if (v.size() != kAuthScheme.size() + 1 + 2 * kTagBytes ||
      v.substr(0, kAuthScheme.size()) != kAuthScheme || v[kAuthScheme.size()] != ':')
    return fmt::format("cannot be authenticated: {} header is not \"{}:<64 hex digits>\"",
                       kHeaderAuth, kAuthScheme);
  std::array<unsigned char, kTagBytes> claimed{};
  const std::string_view hex = v.substr(kAuthScheme.size() + 1);
  for (size_t i = 0; i < kTagBytes; ++i) {
    const int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
    if (hi < 0 || lo < 0)
      return fmt::format("cannot be authenticated: {} header is not \"{}:<64 hex digits>\"",
                         kHeaderAuth, kAuthScheme);
    claimed[i] = static_cast<unsigned char>(hi * 16 + lo);
  }
  const auto expected = hmac(key, origin, batch, index, count, payload);
  if (CRYPTO_memcmp(claimed.data(), expected.data(), kTagBytes) != 0)
    return std::string(
        "cannot be authenticated: the tag does not match (not published with this cluster's key, "
        "or altered)");
  return std::nullopt;
}

}  // namespace harmony
