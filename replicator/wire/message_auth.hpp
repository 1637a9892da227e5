// The optional cluster key ([nats] cluster_key_file): an HMAC-SHA256 tag in the Harmony-Auth
// header of every part a node publishes, so a receiver holding the key can tell parts published
// by a key holder from parts anybody with publish rights on the change subjects made up. It owns
// loading the key file (and refusing an unsafe one), the canonical bytes a tag covers, and the
// constant-time check. A shared key authenticates "a cluster member", not which member: any
// holder can still claim any origin (docs/security.md).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace harmony {

inline constexpr const char* kHeaderAuth = "Harmony-Auth";
// The tag's scheme and version, first in the header value ("hmac-sha256-v1:<64 hex digits>") and
// first in the bytes it covers, so a later scheme can be told apart and never verifies as this.
inline constexpr std::string_view kAuthScheme = "hmac-sha256-v1";
// 32 bytes = the output size of SHA-256; a shorter HMAC key weakens the tag below 256 bits.
inline constexpr size_t kMinClusterKeyBytes = 32;
// A key file is a line of hex digits; anything above 4 KiB is not a key file (and is not read).
inline constexpr size_t kMaxClusterKeyFileBytes = 4096;

struct ClusterKey {
  std::string secret;  // the raw key bytes (decoded from the file's hex)
  // false for cluster_key_mode = "sign-only": tag what we publish, accept untagged parts. For
  // rolling the key out: every node gets the key in sign-only first, then each is switched to
  // verify (docs/configuration.md).
  bool verify = true;
};

// Reads a key file: at least kMinClusterKeyBytes bytes written as hex digits (e.g. the output of
// `openssl rand -hex 32`), surrounding whitespace ignored. Throws std::runtime_error naming the
// file and what is wrong when it cannot be read, is readable or writable by group or others,
// is not hex or is too short.
ClusterKey load_cluster_key(const std::string& path, bool verify = true);

// What a part's tag covers: the scheme, origin, batch, part index and count as fixed-width
// big-endian integers, the payload's length, then the payload - every field the receiver acts
// on before decoding (the body's own origin and batch must match the headers, consume_plan.cpp).
// Fixed widths keep two different parts from having the same canonical bytes:
//   "hmac-sha256-v1" 0x00 | origin u64 | batch u64 | index u32 | count u32 | size u64 | payload
std::string part_auth_input(uint64_t origin, uint64_t batch, uint32_t index, uint32_t count,
                            std::string_view payload);

// The Harmony-Auth header value for one part.
std::string part_auth_tag(const ClusterKey& key, uint64_t origin, uint64_t batch, uint32_t index,
                          uint32_t count, std::string_view payload);

// nullopt when `tag` is a valid tag of this part under `key`; otherwise why not (for the dead
// letter). The comparison takes the same time wherever the tags differ (CRYPTO_memcmp).
std::optional<std::string> check_part_auth(const ClusterKey& key,
                                           const std::optional<std::string>& tag, uint64_t origin,
                                           uint64_t batch, uint32_t index, uint32_t count,
                                           std::string_view payload);

}  // namespace harmony
