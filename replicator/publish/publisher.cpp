// Publisher loop (see publisher.hpp): each round brings capture up to date after DDL, then
// either folds (publishing off) or collects the next batch in one write transaction, publishes
// the batch in flight (retrying with backoff), and otherwise waits for the database to change.
// The steps are members of PublisherRun, which holds what one run keeps between rounds.
#include "replicator/publish/publisher.hpp"

#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/common/database.hpp"
#include "replicator/common/schema_guard.hpp"
#include "replicator/publish/watcher.hpp"
#include "replicator/wire/codec.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"
#include "shared/outbox.hpp"

namespace harmony {

namespace {
// Publish retries back off from the first delay, doubling up to the maximum.
constexpr auto kFirstRetryDelay = std::chrono::milliseconds(100);
constexpr auto kMaxRetryDelay = std::chrono::seconds(5);
constexpr auto kFailureLogEvery = std::chrono::seconds(10);
constexpr auto kFoldIntervalWhenNotPublishing = std::chrono::seconds(5);
// A file event can arrive before the commit that caused it is visible to other connections:
// SQLite writes the WAL frames (inotify IN_MODIFY) and, under synchronous=FULL, fsyncs them
// before it publishes the commit in the shared-memory WAL index (an mmap store: no event at
// all). A connection that stays open produces no later event (a short-lived one does, when it
// closes the file), so a wake-up that finds nothing new must look again shortly: after 1, 2,
// 4 ... 256 ms (about half a second in all, a few cheap `PRAGMA data_version` reads), long
// enough for a slow fsync, before falling back to the idle timer.
constexpr auto kFirstRecheckAfterEvent = std::chrono::milliseconds(1);
constexpr auto kLastRecheckAfterEvent = std::chrono::milliseconds(256);

// Wall-clock microseconds (the clock of the delay trace below and of the benchmark's rows).
int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// One batch's way through this loop, logged at debug level when it is acknowledged ("delay
// trace:", read by harmony_bench --trace-delay): the last file event before the collect, the
// collect's commit, the publish and its acknowledgement, and how many rechecks found nothing.
struct DelayTrace {
  int64_t woke_us = 0, collected_us = 0, sent_us = 0, acked_us = 0;
  int rechecks = 0;
};

struct InFlight {
  Batch batch;
  std::vector<OutgoingPart> parts;
  int attempts = 0;
  DelayTrace trace;
};

// Cheap read-only check so the write lock is only taken when something is pending.
bool anything_pending(Db& db, const std::vector<CapturedTable>& tables) {
  for (const auto& t : tables) {
    if (db.query_int(fmt::format("SELECT EXISTS (SELECT 1 FROM {}) OR EXISTS (SELECT 1 FROM {} "
                                 "WHERE dirty)",
                                 t.log, t.rows)) != 0)
      return true;
  }
  return false;
}

// The outcome of collect_next_batch().
enum class Collected {
  Nothing,      // nothing new, or only an acknowledgement to record
  Batch,        // a batch is in flight now
  SchemaMoved,  // DDL happened meanwhile: capture first, then collect again
  Stopped,      // `stop` became true
};

// What one Publisher::run keeps between rounds, and its steps.
class PublisherRun {
 public:
  PublisherRun(const PublisherOptions& options, BatchTransport& transport, ReplicatorStats& stats,
               ChangeWatcher& watcher, std::atomic<uint64_t>& schema_generation);
  bool has_in_flight() const { return in_flight_.has_value(); }
  void sync_schema_if_changed(const std::atomic<bool>& stop);
  void fold_when_not_publishing(const std::atomic<bool>& stop);
  Collected collect_next_batch(const std::atomic<bool>& stop);
  void publish_in_flight(const std::atomic<bool>& stop);
  void wait_for_change();
  void finish();

 private:
  void start_in_flight(Batch batch);
  void back_off_after_failure(const std::string& error, const std::atomic<bool>& stop);

  const PublisherOptions& options_;
  BatchTransport& transport_;
  ReplicatorStats& stats_;
  ChangeWatcher& watcher_;
  std::atomic<uint64_t>& schema_generation_;

  Db db_;
  std::vector<CapturedTable> tables_;
  int64_t schema_version_ = 0;
  int64_t data_version_ = -1;
  std::optional<InFlight> in_flight_;
  std::optional<Batch> acked_;  // acknowledged, dirty flags not yet cleared
  std::chrono::steady_clock::time_point next_fold_ = std::chrono::steady_clock::now();
  std::chrono::milliseconds retry_delay_{kFirstRetryDelay};
  std::chrono::steady_clock::time_point last_failure_log_{};
  bool check_now_ = true;
  bool splitting_backlog_ = false;  // the last batch was full: a backlog is being split
  // > 0 while a file event may still stand for a commit we cannot see yet: look again after
  // this delay (doubling) instead of sleeping until the idle timer. See kFirstRecheckAfterEvent.
  std::chrono::milliseconds recheck_{0};
  DelayTrace next_trace_;  // the wake-ups of the batch not collected yet
};

PublisherRun::PublisherRun(const PublisherOptions& options, BatchTransport& transport,
                           ReplicatorStats& stats, ChangeWatcher& watcher,
                           std::atomic<uint64_t>& schema_generation)
    : options_(options),
      transport_(transport),
      stats_(stats),
      watcher_(watcher),
      schema_generation_(schema_generation),
      db_(open_database(options.db_path)),
      tables_(captured_tables(db_)),
      schema_version_(db_.query_int("PRAGMA schema_version")) {
  if (!watcher_.using_inotify() && options_.poll_interval.count() <= 0)
    spdlog::warn("no file notifications and polling_interval = 0: checking every second");
}

// DDL since last time: bring capture (triggers, hashes) up to date before reading anything.
void PublisherRun::sync_schema_if_changed(const std::atomic<bool>& stop) {
  if (db_.query_int("PRAGMA schema_version") == schema_version_) return;
  SyncReport report;
  std::vector<std::string> changed;  // tables whose schema hash changed
  write_transaction(
      db_, stop,
      [&] {
        report = sync_capture(db_, options_.selection, SyncMoment::AfterDdl);
        changed = record_schema_hashes(db_, captured_tables(db_));
      },
      "capture update after schema change", &stats_.write_lock);
  log_sync_report(report);
  tables_ = captured_tables(db_);
  LocalSchema local =
      LocalSchema::from(tables_, recorded_schema_hashes(db_), recorded_previous_hashes(db_));
  for (const auto& name : changed)
    if (const auto* st = local.find(name))
      spdlog::info(
          "schema of table {} changed: hash {} (previous {}); rows from nodes on other versions "
          "are applied by column name, or held until this node has their columns",
          name, st->hash, st->previous.empty() ? "none" : st->previous.front());
  stats_.set_schema(local.by_name());
  stats_.tables_tracked = static_cast<int64_t>(tables_.size());
  schema_version_ = db_.query_int("PRAGMA schema_version");
  ++schema_generation_;
  check_now_ = true;
}

// Not publishing: still fold now and then, so the change log coalesces into one entry per row
// instead of growing with every write.
void PublisherRun::fold_when_not_publishing(const std::atomic<bool>& stop) {
  const auto now = std::chrono::steady_clock::now();
  if (now < next_fold_ || !anything_pending(db_, tables_)) return;
  write_transaction(
      db_, stop, [&] { fold_all(db_, tables_, options_.node, options_.max_clock_drift_ms); },
      "folding changes", &stats_.write_lock);
  next_fold_ = now + kFoldIntervalWhenNotPublishing;
}

// When the database changed (or an acknowledgement waits to be recorded): one write transaction
// clears what the last ack confirmed (ack-before-clear: only rows whose version is still the
// one sent) and collects what is pending now. Fewer write transactions mean fewer "database is
// locked" errors for applications that run without a busy timeout.
Collected PublisherRun::collect_next_batch(const std::atomic<bool>& stop) {
  const int64_t dv = db_.query_int("PRAGMA data_version");
  if (!acked_ && !check_now_ && dv == data_version_) return Collected::Nothing;
  data_version_ = dv;
  check_now_ = false;
  const bool pending = anything_pending(db_, tables_);
  if (!pending && !acked_) return Collected::Nothing;
  Batch batch;
  bool schema_moved = false;
  bool done = write_transaction(
      db_, stop,
      [&] {
        if (acked_) mark_published(db_, *acked_);
        // DDL between the check above and this transaction: collect with the new columns and
        // hashes instead (next round), never with stale ones.
        schema_moved = db_.query_int("PRAGMA schema_version") != schema_version_;
        batch = pending && !schema_moved
                    ? collect_pending(db_, tables_, options_.node, options_.batch_rows,
                                      options_.max_clock_drift_ms)
                    : Batch{};
      },
      "collecting changes", &stats_.write_lock);
  if (!done) return Collected::Stopped;
  acked_.reset();
  // data_version_ stays the value read before the transaction: our own commit does not change
  // it, and reading it again here would absorb a commit another connection made right after
  // ours, which this transaction did not see; that commit would then wait for the idle timer.
  if (schema_moved) {
    check_now_ = true;
    return Collected::SchemaMoved;
  }
  if (batch.rows.empty()) return Collected::Nothing;
  next_trace_.collected_us = wall_us();
  start_in_flight(std::move(batch));
  return Collected::Batch;
}

void PublisherRun::start_in_flight(Batch batch) {
  // Said once per backlog, not once per batch: with a small scan_max_changes a backlog is
  // thousands of batches.
  const bool full = batch.rows.size() >= options_.batch_rows;
  if (full && !splitting_backlog_)
    spdlog::warn(
        "at least {} rows pending: publishing them in batches of {} (scan_max_changes); a "
        "replica may briefly show part of a larger transaction",
        options_.batch_rows, options_.batch_rows);
  else if (!full && splitting_backlog_)
    spdlog::info("backlog published");
  splitting_backlog_ = full;
  InFlight f;
  f.parts = split_frame(encode_batch(batch, options_.compress), batch.origin_node, batch.batch_id,
                        options_.max_part_bytes);
  if (options_.cluster_key)  // tagged once: a retry re-sends the same parts with the same tags
    for (auto& p : f.parts)
      p.auth = part_auth_tag(*options_.cluster_key, batch.origin_node, batch.batch_id, p.index,
                             p.count, p.payload);
  f.batch = std::move(batch);
  f.trace = next_trace_;
  next_trace_ = {};
  in_flight_ = std::move(f);
}

// One attempt at the batch in flight. Acknowledged: it is cleared with the next collect.
// Otherwise it stays in flight and the same parts are retried after a backoff.
void PublisherRun::publish_in_flight(const std::atomic<bool>& stop) {
  std::string error;
  ++in_flight_->attempts;
  const auto started = std::chrono::steady_clock::now();
  in_flight_->trace.sent_us = wall_us();
  if (!transport_.publish(in_flight_->parts, in_flight_->batch.origin_node,
                          in_flight_->batch.batch_id, error)) {
    back_off_after_failure(error, stop);
    return;
  }
  stats_.publish_latency.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  const DelayTrace& t = in_flight_->trace;
  spdlog::debug(
      "delay trace: published batch {} ({} rows, {} rechecks): woke {} collected {} sent {} "
      "acked {}",
      in_flight_->batch.batch_id, in_flight_->batch.rows.size(), t.rechecks, t.woke_us,
      t.collected_us, t.sent_us, wall_us());
  if (in_flight_->attempts > 1)
    spdlog::info("batch {} ({} rows) published after {} attempts", in_flight_->batch.batch_id,
                 in_flight_->batch.rows.size(), in_flight_->attempts);
  stats_.rows_published += static_cast<int64_t>(in_flight_->batch.rows.size());
  ++stats_.batches_published;
  stats_.last_published_ms = wall_clock_ms();
  acked_ = std::move(in_flight_->batch);  // cleared in the next write transaction
  in_flight_.reset();
  retry_delay_ = kFirstRetryDelay;
  check_now_ = true;  // more may have been written meanwhile
  data_version_ = db_.query_int("PRAGMA data_version");
}

void PublisherRun::back_off_after_failure(const std::string& error, const std::atomic<bool>& stop) {
  ++stats_.publish_failures;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_failure_log_ > kFailureLogEvery) {
    last_failure_log_ = now;
    spdlog::warn("publish of batch {} ({} rows) failed: {}; changes stay queued, retrying",
                 in_flight_->batch.batch_id, in_flight_->batch.rows.size(), error);
  }
  // Back off for the full delay: new writes must not turn the backoff into a busy retry.
  for (auto until = std::chrono::steady_clock::now() + retry_delay_;
       !stop && std::chrono::steady_clock::now() < until;)
    watcher_.wait(std::chrono::duration_cast<std::chrono::milliseconds>(
        until - std::chrono::steady_clock::now()));
  retry_delay_ = std::min<std::chrono::milliseconds>(retry_delay_ * 2, kMaxRetryDelay);
}

// Sleeps until a file event, a wake() or the idle timer.
void PublisherRun::wait_for_change() {
  const auto idle_wait =
      options_.poll_interval.count() > 0 ? options_.poll_interval : std::chrono::milliseconds(1000);
  if (watcher_.wait(recheck_.count() > 0 ? recheck_ : idle_wait)) {
    recheck_ = kFirstRecheckAfterEvent;
    next_trace_.woke_us = wall_us();
    next_trace_.rechecks = 0;
  } else if (recheck_.count() > 0) {
    recheck_ = recheck_ * 2 > kLastRecheckAfterEvent ? std::chrono::milliseconds(0) : recheck_ * 2;
    ++next_trace_.rechecks;
  } else {
    check_now_ = true;  // timer tick: look again anyway
  }
}

// Leaving: record the last acknowledgement if possible; what is unacknowledged stays queued.
void PublisherRun::finish() {
  if (acked_) {
    try {  // best effort: if the database is locked now, the rows are re-sent at next start
      Transaction tx(db_);
      mark_published(db_, *acked_);
      tx.commit();
    } catch (const SqliteError& e) {
      spdlog::info("could not clear the last published batch ({}); it is re-sent at next start",
                   e.what());
    }
  }
  if (in_flight_)
    spdlog::info("stopping with batch {} unacknowledged; its {} rows stay queued for next start",
                 in_flight_->batch.batch_id, in_flight_->batch.rows.size());
}
}  // namespace

struct Publisher::State {
  ChangeWatcher watcher;
  explicit State(const std::string& path) : watcher(path) {}
};

Publisher::Publisher(PublisherOptions options, BatchTransport& transport, ReplicatorStats& stats)
    : options_(std::move(options)),
      transport_(transport),
      stats_(stats),
      state_(std::make_unique<State>(options_.db_path)) {}

Publisher::~Publisher() = default;

void Publisher::wake() {
  state_->watcher.wake();
}

void Publisher::run(const std::atomic<bool>& stop) {
  PublisherRun run(options_, transport_, stats_, state_->watcher, schema_generation_);
  while (!stop) {
    run.sync_schema_if_changed(stop);
    if (!options_.publish_enabled) {
      run.fold_when_not_publishing(stop);
    } else if (!run.has_in_flight()) {
      const Collected collected = run.collect_next_batch(stop);
      if (collected == Collected::Stopped) break;
      if (collected == Collected::SchemaMoved) continue;  // capture and hashes first
    }
    if (run.has_in_flight()) {
      run.publish_in_flight(stop);  // acknowledged or backed off: look again at once
      continue;
    }
    run.wait_for_change();
  }
  run.finish();
}

}  // namespace harmony
