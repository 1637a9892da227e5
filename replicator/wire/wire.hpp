// How a batch travels as NATS messages: the encoded batch (replicator/wire/codec.hpp) is cut into
// parts of at most `max_part_bytes`, each one message with headers naming origin, batch and part,
// and a Nats-Msg-Id so JetStream drops duplicates of a retried publish. The receiver reassembles
// parts per (origin, batch) and decodes once the batch is whole, so it can be applied whole.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace harmony {

inline constexpr const char* kHeaderOrigin = "Harmony-Origin";
inline constexpr const char* kHeaderBatch = "Harmony-Batch";
inline constexpr const char* kHeaderPart = "Harmony-Part";  // "<index>/<count>", 1-based
inline constexpr const char* kHeaderMsgId = "Nats-Msg-Id";
// 512 KiB keeps every part under nats-server's default 1 MiB max_payload even for external
// servers we do not configure.
inline constexpr size_t kDefaultMaxPartBytes = 512 * 1024;
// A batch above this many parts is rejected by the receiver (a 64 GiB batch cannot be real).
inline constexpr uint32_t kMaxParts = 131072;

// Bounds of the receiver's reassembly state, whatever the part headers claim. Parts are kept
// as received (sparse), never in slots sized by the claimed part count.
// - kMaxPendingBatches: incomplete batches held at once per assembler (one per origin at most).
//   A real stream has one in flight per publishing node; 64 is far above any cluster we run and
//   keeps made-up origins from growing the table.
// - kMaxPendingBytes: payload bytes of incomplete batches, 64 MiB = twice the largest body the
//   decoder accepts (DecodeLimits::max_decoded_bytes, 32 MiB), so two nodes may each be sending
//   a largest batch at the same time.
// - kPendingExpirySeqs: an incomplete batch whose first part lies this many stream sequences
//   behind the newest part is dropped. A publisher sends a batch's parts one after another, so
//   they are at most kMaxParts messages apart plus what other nodes publish meanwhile; twice
//   kMaxParts leaves that room, and a batch that never completes stops pinning the position.
// When a bound would be exceeded the oldest incomplete batch is dropped, not the new part: parts
// arrive in stream order, so the oldest is the one most likely dead (its publisher restarted,
// or it was forged), and refusing new parts instead would let stuck batches block all later
// multi-part batches for good. A dropped batch is reported in Result::dropped.
inline constexpr size_t kMaxPendingBatches = 64;
inline constexpr size_t kMaxPendingBytes = size_t{64} << 20;
inline constexpr uint64_t kPendingExpirySeqs = 2 * uint64_t{kMaxParts};

struct OutgoingPart {
  std::string msg_id;  // "<origin>-<batch>-<index>"
  uint32_t index = 1;
  uint32_t count = 1;
  std::string payload;
  std::string auth;  // Harmony-Auth header value; empty = no cluster key (message_auth.hpp)
};

std::vector<OutgoingPart> split_frame(const std::string& frame, uint64_t origin, uint64_t batch,
                                      size_t max_part_bytes = kDefaultMaxPartBytes);

// What the receiver knows about one message before decoding it.
struct IncomingPart {
  uint64_t stream_seq = 0;
  uint64_t origin = 0;
  uint64_t batch = 0;
  uint32_t index = 1;
  uint32_t count = 1;
  std::string payload;
};

// Parses the Harmony-* headers; returns an error text when they are missing or malformed, or
// when the origin is no node id any node can have (node_id_valid, shared/hlc.hpp).
std::optional<std::string> parse_part_headers(const std::optional<std::string>& origin,
                                              const std::optional<std::string>& batch,
                                              const std::optional<std::string>& part,
                                              IncomingPart& out);

struct AssembledBatch {
  uint64_t origin = 0;
  uint64_t batch = 0;
  uint64_t first_seq = 0;  // stream sequence of its first part
  uint64_t last_seq = 0;   // stream sequence of its last part
  std::string frame;
};

// The bounds above, for one BatchAssembler; tests and the fuzzer pass small ones to reach them
// quickly. (At namespace scope: GCC cannot use a nested struct's member initialisers in a
// default argument of its enclosing class.)
struct AssemblerLimits {
  size_t max_pending_batches = kMaxPendingBatches;
  size_t max_pending_bytes = kMaxPendingBytes;
  uint64_t expiry_seqs = kPendingExpirySeqs;
};

// Reassembles parts in stream order. Parts of one origin are published in order, so when a
// newer batch of an origin starts while an older one is incomplete, the older one can never
// complete (its publisher restarted and re-sent those rows in a new batch): it is dropped.
class BatchAssembler {
 public:
  using Limits = AssemblerLimits;
  explicit BatchAssembler(Limits limits = {}) : limits_(limits) {}
  struct Result {
    std::optional<AssembledBatch> complete;
    std::vector<std::string> dropped;  // reasons, for logs and dead letters
  };
  Result add(IncomingPart part);
  // The stream sequence below which nothing is still needed: every message <= the returned
  // value is either applied or can be skipped on restart. `applied_up_to` is the last sequence
  // handed to add() whose batch (if complete) has been applied.
  uint64_t safe_position(uint64_t applied_up_to) const;
  size_t incomplete() const { return pending_.size(); }
  // Payload bytes held for incomplete batches (at most Limits::max_pending_bytes).
  size_t pending_bytes() const { return pending_bytes_; }

 private:
  struct Pending {
    uint64_t batch = 0;
    uint32_t count = 0;
    uint64_t first_seq = 0;
    std::map<uint32_t, std::string> parts;  // by index, only those received
    size_t bytes = 0;
  };
  using PendingMap = std::map<uint64_t, Pending>;  // by origin
  void drop(PendingMap::iterator it, const std::string& why, Result& result);
  void expire(uint64_t seq, Result& result);
  // Drops the incomplete batch whose first part is oldest, other than `keep`'s; false if none.
  bool drop_oldest(uint64_t keep_origin, const std::string& why, Result& result);

  Limits limits_;
  PendingMap pending_;
  size_t pending_bytes_ = 0;
  // The last multi-part batch completed per origin, (batch, count): a part of it redelivered
  // later (a publish retried after JetStream's duplicate window) is ignored instead of opening
  // a batch that can never complete and would pin safe_position() until the origin's next one.
  std::map<uint64_t, std::pair<uint64_t, uint32_t>> completed_;
};

}  // namespace harmony
