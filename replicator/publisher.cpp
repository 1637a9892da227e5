// Publisher loop (see publisher.hpp).
#include "replicator/publisher.hpp"

#include <optional>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/database.hpp"
#include "replicator/schema_guard.hpp"
#include "replicator/watcher.hpp"
#include "shared/codec.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"
#include "shared/outbox.hpp"

namespace harmony {

namespace {
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

struct InFlight {
  Batch batch;
  std::vector<OutgoingPart> parts;
  int attempts = 0;
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
  Db db = open_database(options_.db_path);
  std::vector<CapturedTable> tables = captured_tables(db);
  int64_t schema_version = db.query_int("PRAGMA schema_version");
  int64_t data_version = -1;
  std::optional<InFlight> in_flight;
  std::optional<Batch> acked;  // acknowledged, dirty flags not yet cleared
  auto next_fold = std::chrono::steady_clock::now();
  auto retry_delay = std::chrono::milliseconds(100);
  auto last_failure_log = std::chrono::steady_clock::time_point{};
  bool check_now = true;
  bool splitting_backlog = false;  // the last batch was full: a backlog is being split
  // > 0 while a file event may still stand for a commit we cannot see yet: look again after
  // this delay (doubling) instead of sleeping until the idle timer. See kFirstRecheckAfterEvent.
  std::chrono::milliseconds recheck{0};

  if (!state_->watcher.using_inotify() && options_.poll_interval.count() <= 0)
    spdlog::warn("no file notifications and polling_interval = 0: checking every second");

  while (!stop) {
    // DDL since last time: bring capture up to date before reading anything.
    int64_t sv = db.query_int("PRAGMA schema_version");
    if (sv != schema_version) {
      SyncReport report;
      std::vector<std::string> changed;  // tables whose schema hash changed
      write_transaction(
          db, stop,
          [&] {
            report = sync_capture(db, options_.selection);
            changed = record_schema_hashes(db, captured_tables(db));
          },
          "capture update after schema change");
      log_sync_report(report);
      tables = captured_tables(db);
      {
        LocalSchema local =
            LocalSchema::from(tables, recorded_schema_hashes(db), recorded_previous_hashes(db));
        for (const auto& name : changed)
          if (const auto* st = local.find(name))
            spdlog::info(
                "schema of table {} changed: hash {} (previous {} is still accepted from "
                "nodes not yet upgraded)",
                name, st->hash, st->previous.empty() ? "none" : st->previous.front());
        stats_.set_schema(local.by_name());
      }
      stats_.tables_tracked = static_cast<int64_t>(tables.size());
      schema_version = db.query_int("PRAGMA schema_version");
      ++schema_generation_;
      check_now = true;
    }

    if (!options_.publish_enabled) {
      // Not publishing: still fold now and then, so the change log coalesces into one entry
      // per row instead of growing with every write.
      auto now = std::chrono::steady_clock::now();
      if (now >= next_fold && anything_pending(db, tables)) {
        write_transaction(
            db, stop, [&] { fold_all(db, tables, options_.node); }, "folding changes");
        next_fold = now + kFoldIntervalWhenNotPublishing;
      }
    } else if (!in_flight) {
      int64_t dv = db.query_int("PRAGMA data_version");
      if (acked || check_now || dv != data_version) {
        data_version = dv;
        check_now = false;
        bool pending = anything_pending(db, tables);
        if (pending || acked) {
          // One write transaction does both: clear what the last ack confirmed (ack-before-clear:
          // only rows whose version is still the one sent) and collect what is pending now.
          // Fewer write transactions mean fewer "database is locked" errors for applications
          // that run without a busy timeout.
          Batch batch;
          bool schema_moved = false;
          bool done = write_transaction(
              db, stop,
              [&] {
                if (acked) mark_published(db, *acked);
                // DDL between the check above and this transaction: collect with the new
                // columns and hashes instead (next round), never with stale ones.
                schema_moved = db.query_int("PRAGMA schema_version") != schema_version;
                batch = pending && !schema_moved
                            ? collect_pending(db, tables, options_.node, options_.batch_rows)
                            : Batch{};
              },
              "collecting changes");
          if (!done) break;
          acked.reset();
          data_version = db.query_int("PRAGMA data_version");
          if (schema_moved) {
            check_now = true;
            continue;  // capture and hashes first (top of the loop), then collect
          }
          if (!batch.rows.empty()) {
            // Said once per backlog, not once per batch: with a small scan_max_changes a
            // backlog is thousands of batches.
            const bool full = batch.rows.size() >= options_.batch_rows;
            if (full && !splitting_backlog)
              spdlog::warn(
                  "at least {} rows pending: publishing them in batches of {} "
                  "(scan_max_changes); a replica may briefly show part of a larger transaction",
                  options_.batch_rows, options_.batch_rows);
            else if (!full && splitting_backlog)
              spdlog::info("backlog published");
            splitting_backlog = full;
            InFlight f;
            f.parts = split_frame(encode_batch(batch, options_.compress), batch.origin_node,
                                  batch.batch_id, options_.max_part_bytes);
            f.batch = std::move(batch);
            in_flight = std::move(f);
          }
        }
      }
    }

    if (in_flight) {
      std::string error;
      ++in_flight->attempts;
      const auto publish_started = std::chrono::steady_clock::now();
      if (transport_.publish(in_flight->parts, in_flight->batch.origin_node,
                             in_flight->batch.batch_id, error)) {
        stats_.publish_latency.observe(
            std::chrono::duration<double>(std::chrono::steady_clock::now() - publish_started)
                .count());
        if (in_flight->attempts > 1)
          spdlog::info("batch {} ({} rows) published after {} attempts", in_flight->batch.batch_id,
                       in_flight->batch.rows.size(), in_flight->attempts);
        stats_.rows_published += static_cast<int64_t>(in_flight->batch.rows.size());
        ++stats_.batches_published;
        stats_.last_published_ms = wall_clock_ms();
        acked = std::move(in_flight->batch);  // cleared in the next write transaction
        in_flight.reset();
        retry_delay = std::chrono::milliseconds(100);
        check_now = true;  // more may have been written meanwhile
        data_version = db.query_int("PRAGMA data_version");
        continue;
      }
      ++stats_.publish_failures;
      auto now = std::chrono::steady_clock::now();
      if (now - last_failure_log > kFailureLogEvery) {
        last_failure_log = now;
        spdlog::warn("publish of batch {} ({} rows) failed: {}; changes stay queued, retrying",
                     in_flight->batch.batch_id, in_flight->batch.rows.size(), error);
      }
      // Back off for the full delay: new writes must not turn the backoff into a busy retry.
      for (auto until = std::chrono::steady_clock::now() + retry_delay;
           !stop && std::chrono::steady_clock::now() < until;)
        state_->watcher.wait(std::chrono::duration_cast<std::chrono::milliseconds>(
            until - std::chrono::steady_clock::now()));
      retry_delay = std::min<std::chrono::milliseconds>(retry_delay * 2, kMaxRetryDelay);
      continue;
    }

    const auto idle_wait = options_.poll_interval.count() > 0 ? options_.poll_interval
                                                              : std::chrono::milliseconds(1000);
    if (state_->watcher.wait(recheck.count() > 0 ? recheck : idle_wait))
      recheck = kFirstRecheckAfterEvent;
    else if (recheck.count() > 0)
      recheck = recheck * 2 > kLastRecheckAfterEvent ? std::chrono::milliseconds(0) : recheck * 2;
    else
      check_now = true;  // timer tick: look again anyway
  }
  if (acked) {
    try {  // best effort: if the database is locked now, the rows are re-sent at next start
      Transaction tx(db);
      mark_published(db, *acked);
      tx.commit();
    } catch (const SqliteError& e) {
      spdlog::info("could not clear the last published batch ({}); it is re-sent at next start",
                   e.what());
    }
  }
  if (in_flight)
    spdlog::info("stopping with batch {} unacknowledged; its {} rows stay queued for next start",
                 in_flight->batch.batch_id, in_flight->batch.rows.size());
}

}  // namespace harmony
