// Anti-entropy between nodes (docs/anti-entropy.md): every node answers digest, entry and row
// requests on NATS (request/reply, no new transport), and every `interval` pulls from every peer
// what it lacks or holds older: roots equal -> done; else bucket digests (paged), then the
// (key, version, node, tombstone) entries of differing buckets, then the rows, applied through
// the Applier with last-writer-wins and their original versions and origins (idempotent and
// commutative, like a stream batch). Pull only: every node runs rounds, so both directions heal.
// Owns the responder (its own read connection, answering on nats.c's delivery threads), the
// round (its own write connection) and the start-up rebuild of the stored digests.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "replicator/common/stats.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/sync/status_protocol.hpp"
#include "replicator/sync/sync_protocol.hpp"
#include "replicator/sync/tombstone_gc.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

struct AntiEntropyOptions {
  std::string db_path;
  uint64_t node = 0;
  std::string subject_prefix;        // "<[nats] subject_prefix>-sync": .all and .<node id>
  int64_t interval_ms = 30'000;      // between rounds; 0 = no rounds (the responder still answers)
  int64_t max_repair_rows = 10'000;  // rows applied per round, all peers and tables together
  // Rounds between checks of the stored digest against {rows} (a scan): heals a digest that
  // an edit of {rows} behind the replicator's back left wrong. 0 = only at start-up.
  int64_t digest_check_rounds = 20;
  // Content scrub: live rows whose values are hashed and compared with the peers' per round and
  // table (a rolling window of buckets, at least one bucket). Bounds a round's extra reads to
  // about this many row lookups here and on each peer; a 1M-row table is scrubbed in full every
  // 1M / 2,000 = 500 rounds, a small one every round. 0 = no scrub. [anti_entropy] scrub_rows.
  int64_t scrub_rows = 2'000;
  int64_t request_timeout_ms = 5'000;  // one request to one peer
  int64_t discover_window_ms = 500;    // how long replies to the roots request are gathered
  int64_t max_drift_ms = kDefaultMaxClockDriftMs;
  std::shared_ptr<const ClusterKey> cluster_key;  // sign and (verify mode) check every message
  // Tombstone GC ([tombstones], docs/anti-entropy.md "Tombstones"): passes at most every
  // gc_interval_ms (0 = no pruning here; marks are still reported), a member not seen for
  // member_retention_ms is dropped. Without stream_tails (the -verify command, a node with
  // replicate = false) this node takes no safe mark and prunes nothing.
  int64_t gc_interval_ms = 0;
  int64_t member_retention_ms = 24 * 3'600'000;
  StreamTails stream_tails;
};

struct TableRoundReport {
  std::string name;
  int64_t rows = 0;   // {rows} entries here (tombstones included)
  uint64_t root = 0;  // this node's root digest
  int64_t peers_compared = 0;
  int64_t peers_differing = 0;
  int64_t compared = 0;          // entries compared in differing buckets
  int64_t differences = 0;       // keys a peer holds newer or this node lacks
  int64_t below_horizon = 0;     // differences left alone below the tombstone horizon
  int64_t removed_stale = 0;     // own live rows a complete peer pruned (we missed the delete)
  int64_t repaired = 0;          // rows applied
  int64_t held = 0;              // rows that could not be applied now (retried next round)
  int64_t scrubbed = 0;          // live rows whose content was compared (content scrub)
  int64_t content_repaired = 0;  // rows rewritten to the content their version stands for
};

struct RoundReport {
  std::vector<uint64_t> peers;  // nodes that answered
  std::vector<TableRoundReport> tables;
  std::vector<std::string> problems;  // peers that failed a request, refused messages
  int64_t bytes_sent = 0, bytes_received = 0;
  bool differences() const;
};

// One node's answer to a Status request (`harmonylite -status`).
struct StatusAnswer {
  uint64_t node = 0;
  int64_t round_trip_ms = 0;  // request sent -> this answer received
  NodeStatus status;
};

// Catch-up and repair (docs/performance.md "Catch-up"): while a stream is this many messages or
// more behind its last sequence, and not paused, this node is catching up: what the peers hold
// beyond its position comes from the stream anyway, and a round (its bucket reads and its write
// transaction) would fight the consumer for the CPU and the write lock. 1000 messages is at least
// a few tenths of a second of applying even for 1-row batches; a steady state lags far less.
inline constexpr uint64_t kCatchUpLagMessages = 1000;
// Rounds wait for a catch-up at most this long, then run anyway (a writer faster than this node
// would otherwise stop repair for good): a 1M-row catch-up took ~50 s at the slowest measured.
inline constexpr std::chrono::minutes kMaxRepairDeferral{5};
// The first stream this node is catching up on (see kCatchUpLagMessages), or empty.
std::string stream_catching_up(const std::map<std::string, StreamProgress>& streams);

class AntiEntropy {
 public:
  // `stats` may be null (the -verify command). `nc` outlives this object.
  AntiEntropy(AntiEntropyOptions options, natsConnection* nc, ReplicatorStats* stats);
  ~AntiEntropy();
  AntiEntropy(const AntiEntropy&) = delete;
  AntiEntropy& operator=(const AntiEntropy&) = delete;

  // Recomputes the stored digests from {rows} (creating __harmony_digest when missing);
  // returns the tables whose stored digest was wrong.
  std::vector<std::string> rebuild();
  // Subscribes to this node's subjects and answers requests until destroyed.
  void start_responder();
  // Rounds every interval until `stop`.
  void run(const std::atomic<bool>& stop);
  // One round against every peer that answers; `repair` false only compares.
  RoundReport round(bool repair);
  // Asks every node on .all for its status (SyncKind::Status) and gathers the answers until
  // `window_ms` has passed, or, as soon as every node in `known` has answered, until `grace_ms`
  // after the request (for nodes not known yet). Answers that fail the cluster key or do not
  // decode are left out and described in `problems`.
  std::vector<StatusAnswer> ask_status(int64_t window_ms, const std::set<uint64_t>& known,
                                       int64_t grace_ms, std::vector<std::string>& problems);

 private:
  struct Responder;
  struct Peer;
  std::string request(const std::string& subject, SyncKind kind, const std::string& body,
                      uint64_t expect_node, RoundReport& report);
  void repair_table(const Peer& peer, const std::string& table, RoundReport& report,
                    TableRoundReport& t, bool repair, int64_t& budget);
  void settle_gap(const RoundReport& report);
  // Publishes a `kind` request on <prefix>.all and hands each node's first reply that carries a
  // node id, passes the cluster key and decodes to `on_reply`, until `deadline(seen)` passes
  // (`seen`: the nodes whose reply `on_reply` accepted, returning true). `skip_self` ignores this
  // node's own reply. A refused or undecodable reply (a DecodeError from decoding or from
  // `on_reply`) is described in `problems` as "<what> of node N ...". Adds the request's body
  // bytes and every reply's body bytes to `bytes_sent` / `bytes_received`.
  void ask_all(
      SyncKind kind, const char* what, bool skip_self,
      const std::function<std::chrono::steady_clock::time_point(const std::set<uint64_t>& seen)>&
          deadline,
      const std::function<bool(uint64_t sender, SyncReply& reply)>& on_reply,
      std::vector<std::string>& problems, int64_t& bytes_sent, int64_t& bytes_received);
  // Tombstone GC: this node's safe mark before discovery, then the membership and horizon from
  // the peers' reports, and a pruning pass every gc_interval_ms.
  void record_own_mark();
  void collect_garbage(const std::vector<Peer>& peers);
  bool gc_enabled() const;
  void scrub_table(const std::vector<const Peer*>& peers, const std::string& table,
                   RoundReport& report, TableRoundReport& t, bool repair);

  AntiEntropyOptions options_;
  natsConnection* nc_;
  ReplicatorStats* stats_;
  Db db_;  // rounds: reads digests, applies repairs
  std::unique_ptr<Responder> responder_;
  int64_t rounds_ = 0;
  // Trimmed stream sequences skipped at start-up not yet confirmed filled (kAntiEntropyGapKey).
  int64_t gap_ = 0;
  std::map<std::string, uint32_t> scrub_cursor_;  // per table: the next bucket to scrub
  Membership membership_;                         // tombstone GC (membership.hpp)
  int64_t last_prune_ms_ = 0;                     // wall clock of the last pruning pass
};

}  // namespace harmony
