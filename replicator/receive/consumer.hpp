// One consumer per shard stream: reads messages from the stored position + 1, reassembles
// batches, and applies many of them per SQLite transaction (capture muted, last-writer-wins,
// position advanced in the same transaction, so a restart resumes exactly where it stopped).
// Undecodable or unappliable input goes to the dead-letter table and the stream moves on.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "replicator/common/stats.hpp"
#include "replicator/wire/message_auth.hpp"
#include "shared/conflict_log.hpp"
#include "shared/held.hpp"

namespace harmony {

struct TableSelection;  // replicator/common/capture_sync.hpp

struct IncomingMessage {
  uint64_t stream_seq = 0;
  std::optional<std::string> origin, batch, part;  // Harmony-* headers
  std::string payload;
  // The stream leader's message at a sequence this node already read, where it read something
  // else (replicator/receive/stream_audit.hpp): applied although it lies at or below the position.
  bool replay = false;
  // Harmony-Auth (wire/message_auth.hpp). Last, so the positional initialisers used across the
  // tests ({seq, origin, batch, part, payload[, replay]}) keep their meaning.
  std::optional<std::string> auth;
};

// Seam between the consumer and JetStream (an in-memory fake in unit tests).
class MessageSource {
 public:
  virtual ~MessageSource() = default;
  // (Re)starts delivery at `start_seq` (1 = from the beginning).
  virtual void start(uint64_t start_seq) = 0;
  // Next message, or nullopt after `timeout`.
  virtual std::optional<IncomingMessage> next(std::chrono::milliseconds timeout) = 0;
  virtual void stop() = 0;
};

struct ConsumerOptions {
  std::string db_path;
  std::string stream;  // also the key of the position in __harmony_positions
  uint64_t node = 0;
  // Bound on one apply transaction so application writers are not locked out for long.
  size_t max_rows_per_txn = 20000;
  // Extra wait for more messages to group into one transaction. 0: take only what is already
  // buffered, so a lone change is applied at once (latency matters more than grouping here).
  std::chrono::milliseconds max_gather{0};
  std::atomic<uint64_t>* schema_generation = nullptr;  // bumps when capture changed (DDL)
  // After a snapshot restore this node's own batches up to this sequence are applied too
  // (the restored content may predate them); 0 = always skip own batches.
  uint64_t apply_own_until = 0;
  // Rows held (not applicable yet) beyond which this stream stops reading until retries bring
  // them down: holding is never dropping, so it needs a limit of its own. A row is typically a
  // few hundred bytes in __harmony_held, so the default is some hundreds of MB of disk.
  int64_t max_held_rows = 1'000'000;
  // The same bound in bytes (the payloads in __harmony_held): a few rows of very large values
  // (an 800 KB TEXT each) fill a disk long before they reach the row bound.
  int64_t max_held_bytes = kDefaultMaxHeldBytes;
  // [conflicts]: the conflict log's bounds, applied by every apply transaction that adds to it.
  ConflictLimits conflict_limits;
  // The drift bound (config max_clock_drift): rows further ahead of the wall clock are held.
  int64_t max_clock_drift_ms = kDefaultMaxClockDriftMs;
  // [nats] cluster_key_file: parts are checked against it (nullptr: no cluster key).
  std::shared_ptr<const ClusterKey> cluster_key;
  // Anti-entropy rounds are on: sequences the stream trimmed before they were read are skipped
  // and added to the anti-entropy gap (kAntiEntropyGapKey) instead of pausing the stream.
  bool skip_gaps = false;
};

class Consumer {
 public:
  Consumer(ConsumerOptions options, MessageSource& source, ReplicatorStats& stats);
  void run(const std::atomic<bool>& stop);
  uint64_t position() const { return position_; }

 private:
  ConsumerOptions options_;
  MessageSource& source_;
  ReplicatorStats& stats_;
  std::atomic<uint64_t> position_{0};
};

}  // namespace harmony
