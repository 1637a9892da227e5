// Counters shared by the publisher, the consumers, the health endpoint and the metrics
// exporter (replicator/ops/health.cpp, replicator/ops/metrics.cpp). Plain atomics: writers never
// block on readers. Structured state (per stream, schema, embedded server) sits behind one mutex
// and is copied out by readers.
#pragma once
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "replicator/common/log_throttle.hpp"
#include "shared/clock.hpp"
#include "shared/hlc.hpp"

namespace harmony {

// A Prometheus-style histogram with fixed upper bounds (seconds). Observations are lock-free.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds)
      : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1) {}
  void observe(double seconds) {
    size_t i = 0;
    while (i < bounds_.size() && seconds > bounds_[i]) ++i;
    buckets_[i].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(seconds, std::memory_order_relaxed);
  }
  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // one per bound, then +Inf (== count)
    uint64_t count = 0;
    double sum = 0;
  };
  Snapshot snapshot() const {
    Snapshot s;
    s.bounds = bounds_;
    uint64_t running = 0;
    for (const auto& b : buckets_) {
      running += b.load(std::memory_order_relaxed);
      s.cumulative.push_back(running);
    }
    s.count = running;
    s.sum = sum_.load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::vector<double> bounds_;
  std::vector<std::atomic<uint64_t>> buckets_;  // per bucket (not cumulative), last = overflow
  std::atomic<double> sum_{0};
};

struct StreamProgress {
  uint64_t position = 0;        // last sequence applied (stored in the database)
  uint64_t last_seq = 0;        // last sequence known in the stream
  int64_t last_applied_ms = 0;  // wall clock of the last apply on this node
  int64_t delay_ms = 0;         // origin write -> local apply, last batch
  int64_t caught_up_ms = 0;     // last time position >= last_seq (for lag in seconds)
  bool paused = false;          // the stream reads nothing after position (gap, held rows full)
  int64_t paused_since_ms = 0;
  std::string pause_reason;
  int64_t held_rows = 0;      // rows of this stream waiting in __harmony_held
  int64_t held_bytes = 0;     // their payload bytes (the bound max_held_bytes counts these)
  int64_t held_since_ms = 0;  // wall clock when the oldest of them was held (0: none)
  std::string held_reason;    // why the oldest waits
};

// Schema of one replicated table as this node sees it (replicator/common/schema_guard.hpp).
struct TableSchemaState {
  std::string hash;
  std::vector<std::string> previous;  // most recent first
  bool operator==(const TableSchemaState&) const = default;
};

// The embedded nats-server child, when there is one.
struct NatsServerState {
  bool embedded = false;
  int64_t pid = -1;
  int64_t restarts = 0;
  std::string client_url;
};

// How far one origin's clock seems ahead of ours: the largest (row version's physical ms - our
// wall clock at receive) over the current window and the one before. Each sample is the origin's
// skew minus that row's delivery delay (plus any lead its clock took from peers, which the bound
// caps), so the largest of many is the closest to the skew: delays that come and go drop out.
// A long-delayed catch-up reads as a clock behind; only "ahead" is certain.
struct ClockSkew {
  // One window: long enough to hold several batches of a busy origin, short enough that a fixed
  // clock shows within a minute.
  static constexpr int64_t kWindowMs = 30'000;
  int64_t ahead_ms = 0;  // the estimate: max of this window and the previous one
  int64_t window_max_ms = 0;
  int64_t previous_max_ms = 0;
  bool has_previous = false;
  int64_t window_start_ms = 0;
  int64_t updated_ms = 0;  // wall clock of the last sample
  void observe(int64_t sample_ms, int64_t now_ms) {
    if (updated_ms == 0 || now_ms - window_start_ms >= 2 * kWindowMs) {
      has_previous = false;  // first sample, or the last window is too old to count
      window_max_ms = sample_ms;
      window_start_ms = now_ms;
    } else if (now_ms - window_start_ms >= kWindowMs) {
      previous_max_ms = window_max_ms;
      has_previous = true;
      window_max_ms = sample_ms;
      window_start_ms = now_ms;
    } else {
      window_max_ms = std::max(window_max_ms, sample_ms);
    }
    ahead_ms = has_previous ? std::max(window_max_ms, previous_max_ms) : window_max_ms;
    updated_ms = now_ms;
  }
};

// How long this process holds a write transaction on its database (fold and apply; issue 18):
// while it does, every other writer waits, and one without a busy timeout (the stock sqlite3
// shell) fails with "database is locked". A total, and the share of the last complete interval
// of kIntervalMs (intervals aligned to the wall clock, so the gauge needs no scrape state).
class WriteLockMeter {
 public:
  // One interval: as long as a typical Prometheus scrape interval, long enough that one
  // transaction does not swing the share much.
  static constexpr int64_t kIntervalMs = 10'000;
  // A transaction that held the lock for `held`, ending at wall clock `now_ms`.
  void add(std::chrono::nanoseconds held, int64_t now_ms) {
    const int64_t us = std::chrono::duration_cast<std::chrono::microseconds>(held).count();
    const int64_t i = now_ms / kIntervalMs;
    std::lock_guard lock(mutex_);
    total_us_ += us;
    if (i != current_) {
      previous_ = current_;
      previous_us_ = current_us_;
      current_ = i;
      current_us_ = 0;
    }
    current_us_ += us;
  }
  double total_seconds() const {
    std::lock_guard lock(mutex_);
    return static_cast<double>(total_us_) / 1e6;
  }
  // Share (0..1) of the interval before the one `now_ms` is in.
  double share(int64_t now_ms) const {
    const int64_t last = now_ms / kIntervalMs - 1;
    std::lock_guard lock(mutex_);
    const int64_t us = current_ == last ? current_us_ : previous_ == last ? previous_us_ : 0;
    return std::min(1.0, static_cast<double>(us) / (1000.0 * kIntervalMs));
  }

 private:
  mutable std::mutex mutex_;
  int64_t total_us_ = 0;
  int64_t current_ = -1, current_us_ = 0;    // the newest interval written to
  int64_t previous_ = -1, previous_us_ = 0;  // the one before it
};

struct ReplicatorStats {
  const int64_t started_ms = wall_clock_ms();
  std::atomic<int64_t> rows_published{0}, batches_published{0}, publish_failures{0};
  std::atomic<int64_t> rows_applied{0}, rows_skipped_older{0}, rows_dead_lettered{0};
  std::atomic<int64_t> batches_applied{0}, batches_dead_lettered{0}, batches_skipped_own{0};
  std::atomic<int64_t> pending_rows{0};
  // Messages compared with the stream leader's copy, and those found different and re-applied
  // (replicator/receive/stream_audit.hpp).
  std::atomic<int64_t> stream_messages_checked{0}, stream_messages_repaired{0};
  // The audit's cost: requests to the stream leader and the payload bytes they returned.
  std::atomic<int64_t> stream_audit_leader_reads{0}, stream_audit_leader_bytes{0};
  // Anti-entropy (replicator/sync/anti_entropy.hpp): rounds run, {rows} entries compared with a
  // peer's, rows repaired from peers, wall clock of the last round that found a difference.
  std::atomic<int64_t> anti_entropy_rounds{0}, anti_entropy_rows_compared{0};
  std::atomic<int64_t> anti_entropy_rows_repaired{0}, anti_entropy_last_difference_ms{0};
  // Stream sequences skipped at start-up (trimmed, no usable snapshot) that anti-entropy has not
  // yet confirmed filled; > 0 makes /health "degraded".
  std::atomic<int64_t> anti_entropy_gap{0};
  // Tombstone GC (replicator/sync/tombstone_gc.hpp): tombstones in {rows} after the last pass,
  // and tombstones pruned since start.
  std::atomic<int64_t> tombstones{0}, tombstones_pruned{0};
  // __harmony_dead_letters: rows and bytes stored (as of the last housekeeping or prune), and
  // rows removed by its bound ([dead_letters] max_rows, max_bytes, max_age) since start.
  std::atomic<int64_t> dead_letters_stored{0}, dead_letters_bytes{0}, dead_letters_pruned{0};
  std::atomic<int64_t> last_published_ms{0}, last_applied_ms{0};
  std::atomic<bool> nats_connected{false}, db_ok{false}, capture_installed{false};
  std::atomic<int64_t> tables_tracked{0};
  std::atomic<int64_t> rows_held{0};        // rows that could not be applied when received
  std::atomic<int64_t> values_left_out{0};  // values of columns this node has dropped
  std::atomic<int64_t> conflicts{0};        // rows recorded in __harmony_conflicts since start
  // The drift bound (config max_clock_drift), and what folding did about it in this process
  // (shared/fold.hpp ClockBoundEvents, copied by the consumers): how often the stored clock was
  // found beyond wall clock + bound and lowered, by how much the last time, and versions issued
  // beyond the bound (rows whose previous version already was).
  std::atomic<int64_t> max_clock_drift_ms{kDefaultMaxClockDriftMs};
  std::atomic<int64_t> clock_lowered{0}, clock_lowered_ms{0}, versions_beyond_bound{0};
  // The log line about versions_beyond_bound: a node whose clock runs ahead hits the bound on
  // almost every fold, so one line per 30 s says how many since the previous line.
  static constexpr int64_t kClockLogIntervalMs = 30'000;
  LogThrottle versions_beyond_log{kClockLogIntervalMs};

  // Snapshots: set by the snapshot code after each save (0 = none yet).
  std::atomic<int64_t> last_snapshot_ms{0};           // wall clock when the last save finished
  std::atomic<int64_t> last_snapshot_bytes{0};        // size of the uploaded file
  std::atomic<int64_t> last_snapshot_duration_ms{0};  // how long the save took
  std::atomic<int64_t> snapshots_saved{0}, snapshot_failures{0};

  // Latencies in seconds: one publish (send until every part is acknowledged), one apply
  // transaction, and replication delay (origin write, from the HLC's physical part, until the
  // local commit; one observation per applied batch, for its newest row).
  Histogram publish_latency{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  Histogram apply_latency{{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}};
  Histogram replication_delay{
      {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}};
  WriteLockMeter write_lock;  // fold (publisher) and apply (consumers) write transactions

  // Replaces one stream's entry; the last sequence (also fed by the stream monitor) only grows.
  void set_stream(const std::string& stream, const StreamProgress& p) {
    update_stream(stream, [&](StreamProgress& s) {
      const uint64_t last_seq = std::max(s.last_seq, p.last_seq);
      const int64_t caught_up = s.caught_up_ms;
      s = p;
      s.last_seq = last_seq;
      s.caught_up_ms = caught_up;
    });
  }
  // Changes one stream's entry in place (creating it), keeping fields others maintain.
  void update_stream(const std::string& stream, const std::function<void(StreamProgress&)>& f) {
    std::lock_guard<std::mutex> lock(mu_);
    auto& s = streams_[stream];
    f(s);
    if (s.position >= s.last_seq || s.caught_up_ms == 0) s.caught_up_ms = wall_clock_ms();
  }
  std::map<std::string, StreamProgress> streams() const {
    std::lock_guard<std::mutex> lock(mu_);
    return streams_;
  }

  void set_schema(std::map<std::string, TableSchemaState> tables) {
    std::lock_guard<std::mutex> lock(mu_);
    if (tables != schema_) {
      schema_ = std::move(tables);
      ++schema_epoch_;
    }
  }
  std::map<std::string, TableSchemaState> schema() const {
    std::lock_guard<std::mutex> lock(mu_);
    return schema_;
  }
  uint64_t schema_epoch() const {
    std::lock_guard<std::mutex> lock(mu_);
    return schema_epoch_;
  }

  // One received row's (physical ms - wall ms) from `origin`.
  void observe_clock_skew(uint64_t origin, int64_t sample_ms, int64_t now_ms) {
    // Origins are cluster members, a handful; the cap only bounds what forged origins could add.
    constexpr size_t kMaxOrigins = 1024;
    std::lock_guard<std::mutex> lock(mu_);
    if (skews_.size() >= kMaxOrigins && !skews_.count(origin)) return;
    skews_[origin].observe(sample_ms, now_ms);
  }
  std::map<uint64_t, ClockSkew> clock_skews() const {
    std::lock_guard<std::mutex> lock(mu_);
    return skews_;
  }

  void set_nats_server(NatsServerState s) {
    std::lock_guard<std::mutex> lock(mu_);
    nats_server_ = std::move(s);
  }
  NatsServerState nats_server() const {
    std::lock_guard<std::mutex> lock(mu_);
    return nats_server_;
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, StreamProgress> streams_;
  std::map<std::string, TableSchemaState> schema_;
  uint64_t schema_epoch_ = 0;
  NatsServerState nats_server_;
  std::map<uint64_t, ClockSkew> skews_;  // by origin node; bounded by the nodes of the cluster
};

}  // namespace harmony
