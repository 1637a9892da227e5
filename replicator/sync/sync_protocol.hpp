// The anti-entropy messages (docs/anti-entropy.md): what a node asks a peer over NATS
// request/reply, what the peer answers, their CBOR encoding and their bounded decoding. Every
// message from the wire is untrusted: sizes are bounded by the constants below (never by what a
// message claims), decoding is the batch codec's bounded CBOR parser, and every field is checked
// (type, range, count) before use. Rows travel as ordinary batch frames (replicator/wire/codec),
// so the receiver decodes and applies them exactly as stream batches.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "replicator/sync/membership.hpp"
#include "replicator/wire/codec.hpp"
#include "replicator/wire/message_auth.hpp"
#include "shared/content_digest.hpp"

namespace harmony {

inline constexpr int64_t kSyncProtocolVersion = 1;
// A message's encoded size: NATS's default max_payload (1 MiB) is what replies are built to fit;
// 8 MiB admits a server configured higher while bounding what one decode may allocate (a CBOR
// item costs a document node of ~16-80 bytes, so 1M items keep a decode under ~100 MB).
inline constexpr size_t kMaxSyncMessageBytes = size_t{8} << 20;
inline constexpr size_t kMaxSyncItems = 1'000'000;
// Bucket digests per page: 1024 x 9 bytes of CBOR = ~9 KiB; four pages per differing table.
inline constexpr uint32_t kBucketPage = 1024;
// Buckets asked for in one entries request; a peer answers whole buckets up to kMaxSyncEntries.
inline constexpr size_t kMaxBucketsPerRequest = 256;
// Entries (key, version, node, tombstone) per reply: ~30-60 bytes each keeps a reply of ordinary
// keys well under 1 MiB.
inline constexpr size_t kMaxSyncEntries = 16'384;
// Keys per rows request: rows are answered as batch frames, cut to fit the peer's max_payload.
inline constexpr size_t kMaxKeysPerRequest = 500;
// Tables in a roots reply (SQLite has no limit; a database with more captured tables is not
// compared beyond these).
inline constexpr size_t kMaxSyncTables = 10'000;
// Key columns of one key (SQLite's default SQLITE_MAX_COLUMN).
inline constexpr size_t kMaxSyncKeyColumns = 2'000;

// Content scrub digests per request, as many as a bucket page: 1024 x 9 bytes of CBOR.
inline constexpr uint32_t kScrubPage = kBucketPage;

// Status: `harmonylite -status` asks every node on .all for its NodeStatus (status_protocol.hpp).
// Scrub: content hashes of a window of buckets (docs/anti-entropy.md "Content scrub").
enum class SyncKind : uint32_t {
  Roots = 1,
  Buckets = 2,
  Entries = 3,
  Rows = 4,
  Status = 5,
  Scrub = 6
};

struct SyncRequest {
  SyncKind kind = SyncKind::Roots;
  uint64_t from_node = 0;
  std::string table;                     // Buckets, Entries, Rows
  uint32_t first = 0, count = 0;         // Buckets, Scrub: a page
  std::vector<uint32_t> buckets;         // Entries
  std::vector<std::vector<Value>> keys;  // Rows
};

struct TableRoot {
  std::string name;
  uint64_t root = 0;
  int64_t rows = 0;
};

// Tombstone GC's part of a roots reply (docs/anti-entropy.md "Tombstones"). Peers older than
// tombstone GC send none: "no report", which keeps the horizon where it is.
struct GcReport {
  std::optional<SafeMark> mark;  // the node's latest safe mark (none while never caught up)
  int64_t horizon = 0;           // its active horizon (0: none)
  bool incomplete = false;       // it has a trimmed-stream gap not yet filled
  bool operator==(const GcReport&) const = default;
};
// Streams in a safe mark: one per shard; shards are a handful, 1024 bounds a forged report.
inline constexpr size_t kMaxGcStreams = 1024;
// A stream name in a safe mark (JetStream names are at most 255 bytes).
inline constexpr size_t kMaxGcStreamNameBytes = 255;

struct SyncReply {
  uint64_t node = 0;                 // the answering node
  std::string error;                 // non-empty: the request was refused (why)
  std::vector<TableRoot> tables;     // Roots
  std::optional<GcReport> gc;        // Roots: tombstone GC progress (nullopt: an older peer)
  uint32_t first = 0;                // Buckets, Scrub
  std::vector<uint64_t> hashes;      // Buckets, Scrub (content scrub digests)
  std::vector<uint32_t> complete;    // Entries: buckets answered in full
  std::vector<DigestEntry> entries;  // Entries
  std::vector<std::string> frames;   // Rows: batch frames (one per origin node)
  std::string status;                // Status: an encoded NodeStatus (status_protocol.hpp)
};

std::string encode_request(const SyncRequest& r);
std::string encode_reply(SyncKind kind, const SyncReply& r);
// Throw DecodeError naming what is wrong.
SyncRequest decode_request(std::string_view bytes);
SyncReply decode_reply(SyncKind kind, std::string_view bytes);

// The cluster key's tag over a sync message (message_auth.hpp, reused): origin = the sender's
// node, batch = kSyncAuthDomain, index = the kind (+ 0x100 for replies), count = 0, which no
// replication part has (count >= 1), so a tag of one kind never verifies as the other.
inline constexpr uint64_t kSyncAuthDomain = 0x616e74692d656e74ULL;  // "anti-ent"
std::string sync_auth_tag(const ClusterKey& key, uint64_t sender, SyncKind kind, bool reply,
                          std::string_view body);
std::optional<std::string> check_sync_auth(const ClusterKey& key,
                                           const std::optional<std::string>& tag, uint64_t sender,
                                           SyncKind kind, bool reply, std::string_view body);

}  // namespace harmony
