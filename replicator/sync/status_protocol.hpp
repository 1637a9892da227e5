// The cluster status message (`harmonylite -status`): what one node says about itself when asked
// with a Status request on the anti-entropy subjects (<prefix>-sync.all), built from the
// counters it already keeps (ReplicatorStats), and its bounded decoding. Like every sync message
// it is untrusted input on the asking side: sizes and counts are bounded by the constants below,
// strings are cut, and every field is type-checked. Carried as a byte string inside a sync reply
// (sync_protocol.hpp), tagged with the cluster key like the other sync messages.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "replicator/common/stats.hpp"

namespace harmony {

// One status is a few hundred bytes per stream; 64 KiB fits far more streams and origins than a
// cluster has while bounding what one decode may allocate.
inline constexpr size_t kMaxStatusBytes = 64 * 1024;
// Streams (shards) and origins one status may list (shards are configured in the tens; origins
// are the cluster's nodes; the stats keep at most 1024 origins).
inline constexpr size_t kMaxStatusStreams = 256;
inline constexpr size_t kMaxStatusOrigins = 1024;
// Any text field (address, stream name, reason) is cut to this many bytes.
inline constexpr size_t kMaxStatusText = 256;

struct StreamStatus {
  std::string name;
  uint64_t position = 0, last_seq = 0;
  int64_t lag_ms = 0;  // how long behind the stream's end (0 = caught up)
  bool paused = false;
  int64_t held_rows = 0;
};

struct OriginSkew {
  uint64_t node = 0;
  int64_t ahead_ms = 0;  // how far that origin's clock seems ahead of this node's
};

struct NodeStatus {
  uint64_t node = 0;
  std::string address;  // the NATS server the node is on (its embedded server's client URL)
  int64_t now_ms = 0;   // the node's wall clock when it answered
  bool healthy = false;
  std::string problem;  // why not healthy ("" when healthy)
  int64_t pending_rows = 0, held_rows = 0, conflicts = 0, dead_letters = 0;
  int64_t last_published_ms = 0, last_applied_ms = 0;
  std::vector<StreamStatus> streams;
  std::vector<OriginSkew> skews;
};

// This node's status from its counters; `address` as the caller knows it.
NodeStatus node_status(const ReplicatorStats& stats, uint64_t node, const std::string& address,
                       int64_t now_ms);
std::string encode_status(const NodeStatus& s);
// Throws DecodeError naming what is wrong.
NodeStatus decode_status(std::string_view bytes);

}  // namespace harmony
