// Consumer loop (see consumer.hpp): gather what the source has buffered, plan it without the
// database (replicator/receive/consume_plan.hpp), then commit the plan in one write transaction.
// This file owns the database side: the applier, the stored position, the held rows (stored
// with each transaction, retried when the schema changes and periodically, and a bound on them
// that makes the stream wait), and the stream's progress and stats.
#include "replicator/receive/consumer.hpp"

#include <deque>
#include <memory>
#include <thread>
#include <tuple>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/common/database.hpp"
#include "replicator/receive/consume_plan.hpp"
#include "replicator/receive/held_rows.hpp"
#include "shared/apply.hpp"
#include "shared/capture.hpp"
#include "shared/content_digest.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"

namespace harmony {

namespace {
// A position that advanced only over this node's own batches is stored after this much quiet
// (or with the next real apply, whichever comes first).
constexpr auto kOwnPositionFlushDelay = std::chrono::seconds(2);
// How long one read waits for a first message before looking at the quiet-stream chores.
constexpr auto kIdleReadTimeout = std::chrono::milliseconds(500);
// Bounds on what one gather takes, so a large backlog is read in pieces of bounded memory.
constexpr size_t kMaxGatherMessages = 4096;
constexpr size_t kMaxGatherBytes = size_t{64} << 20;  // 64 MiB of payload
// Held rows are offered again this often (a clock catching up, a constraint freed by another
// row), and at once after every schema change here.
constexpr auto kHeldRetryInterval = std::chrono::seconds(5);
// Held entries one retry transaction looks at: bounded work (and write-lock time) per round; a
// long backlog is gone through over several rounds.
constexpr size_t kHeldEntriesPerRetry = 256;

// What one Consumer::run keeps between transactions, and its steps.
class ConsumerRun {
 public:
  ConsumerRun(const ConsumerOptions& options, MessageSource& source, ReplicatorStats& stats,
              std::atomic<uint64_t>& position);
  bool retry_held_when_due(const std::atomic<bool>& stop);
  bool over_held_bound() const {
    return held_.rows >= options_.max_held_rows || held_.bytes >= options_.max_held_bytes;
  }
  bool wait_while_held_full(const std::atomic<bool>& stop);
  std::deque<IncomingMessage> gather();
  bool flush_own_position_when_quiet(const std::atomic<bool>& stop);
  ConsumePlan plan(std::deque<IncomingMessage> messages);
  bool commit(const ConsumePlan& plan, const std::atomic<bool>& stop);
  void pause_for_gap(const SequenceGap& gap);
  bool record_skipped_gaps(const ConsumePlan& plan, const std::atomic<bool>& stop);
  void store_unsaved_position();

 private:
  std::optional<IncomingMessage> next_message(std::chrono::milliseconds timeout);
  void refresh_schema(bool force);
  void recount_held();
  void note_held(const HeldUsage& change, bool oldest_may_have_changed);
  std::string held_bound_text() const;
  void observe_skew(const ConsumePlan& plan, int64_t now_ms);
  void report_clock();
  void note_progress_without_writing(const ConsumePlan& plan);
  bool apply(const ConsumePlan& plan, const std::atomic<bool>& stop);
  void count_conflicts();
  void report_applied(const ConsumePlan& plan, const ApplyStats& total,
                      const std::vector<int64_t>& newest,
                      std::chrono::steady_clock::time_point started);

  const ConsumerOptions& options_;
  MessageSource& source_;
  ReplicatorStats& stats_;
  std::atomic<uint64_t>& position_;  // Consumer::position(): what is applied or skippable

  Db db_;
  std::unique_ptr<Applier> applier_;
  // After DDL (seen through the publisher's counter or PRAGMA schema_version), statements and
  // hashes are rebuilt before the next batch is checked or applied.
  uint64_t generation_ = 0;
  int64_t schema_version_ = 0;
  bool schema_changed_ = false;  // since the last retry of held rows
  // This stream's entries, rows and bytes in __harmony_held, kept from what store, retry and
  // forget return (a COUNT over the table per transaction is a full scan: 1M held rows made
  // every batch read them all). Counted from the table at start-up (after a restore, too) and
  // when the held epoch moved (-drop-held ran meanwhile).
  HeldUsage held_;
  int64_t held_epoch_ = 0;
  int64_t held_cursor_ = 0;  // the next retry round starts after this entry id
  std::chrono::steady_clock::time_point last_retry_ = std::chrono::steady_clock::now();
  int64_t conflicts_unreported_ = 0;  // recorded since the last log line about them
  std::chrono::steady_clock::time_point conflicts_logged_{};
  uint64_t stored_position_ = 0;  // as written in __harmony_positions
  StreamProgress progress_;
  std::map<uint64_t, bool> skew_logged_;  // origins whose skew beyond the bound was logged
  ConsumePlanner planner_;
  std::deque<IncomingMessage> backlog_;  // received but left for the next transaction
  uint64_t unsaved_position_ = 0;        // advanced over own batches, not yet stored
  std::chrono::steady_clock::time_point unsaved_since_ = std::chrono::steady_clock::now();
  int64_t gathered_us_ = 0;  // wall-clock µs the last gather's first message arrived (trace)
};

// Wall-clock microseconds, for the debug-level delay trace (harmony_bench --trace-delay).
int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

uint64_t stored_position(Db& db, const std::string& stream) {
  auto positions = load_positions(db);
  auto it = positions.find(stream);
  return it != positions.end() ? it->second : 0;
}

ConsumerRun::ConsumerRun(const ConsumerOptions& options, MessageSource& source,
                         ReplicatorStats& stats, std::atomic<uint64_t>& position)
    : options_(options),
      source_(source),
      stats_(stats),
      position_(position),
      db_(open_database(options.db_path)),
      generation_(options.schema_generation ? options.schema_generation->load() : 0),
      stored_position_(stored_position(db_, options.stream)),
      planner_(stored_position_) {
  applier_ = std::make_unique<Applier>(db_, options_.node, captured_tables(db_),
                                       options_.max_clock_drift_ms);
  applier_->set_conflict_limits(options_.conflict_limits);
  stats_.max_clock_drift_ms = options_.max_clock_drift_ms;
  schema_version_ = db_.query_int("PRAGMA schema_version");
  recount_held();
  schema_changed_ = held_.rows > 0;  // the schema may have changed while we were stopped
  position_ = stored_position_;
  progress_.position = stored_position_;
  stats_.set_stream(options_.stream, progress_);
  source_.start(stored_position_ + 1);
  spdlog::info("consuming {} from sequence {}", options_.stream, stored_position_ + 1);
}

void ConsumerRun::refresh_schema(bool force) {
  const uint64_t g = options_.schema_generation ? options_.schema_generation->load() : 0;
  const int64_t v = db_.query_int("PRAGMA schema_version");
  if (!force && g == generation_ && v == schema_version_) return;
  generation_ = g;
  schema_version_ = v;
  applier_ = std::make_unique<Applier>(db_, options_.node, captured_tables(db_),
                                       options_.max_clock_drift_ms);
  applier_->set_conflict_limits(options_.conflict_limits);
  schema_changed_ = true;
}

// A full count of the stream's held rows: at start-up and after someone else changed them.
void ConsumerRun::recount_held() {
  held_epoch_ = held_epoch(db_);
  const HeldSummary h = held_summary(db_, options_.stream);
  held_ = {h.entries, h.rows, h.bytes};
  progress_.held_rows = h.rows;
  progress_.held_bytes = h.bytes;
  progress_.held_since_ms = h.oldest_at_ms;
  progress_.held_reason = h.oldest_reason;
}

// What a committed transaction changed. The oldest entry is looked up again (one row by id)
// only when it may be another one now: the first entry stored, or a retry round that touched
// entries.
void ConsumerRun::note_held(const HeldUsage& change, bool oldest_may_have_changed) {
  const bool was_empty = held_.entries == 0;
  held_ += change;
  if (held_.entries < 0 || held_.rows < 0 || held_.bytes < 0) {
    recount_held();  // cannot happen unless the table was changed behind our back: count it
    return;
  }
  progress_.held_rows = held_.rows;
  progress_.held_bytes = held_.bytes;
  if (held_.entries == 0) {
    progress_.held_since_ms = 0;
    progress_.held_reason.clear();
  } else if (was_empty || oldest_may_have_changed) {
    std::tie(progress_.held_since_ms, progress_.held_reason) = held_oldest(db_, options_.stream);
  }
}

// Which bound is reached, naming the config key to raise.
std::string ConsumerRun::held_bound_text() const {
  if (held_.bytes >= options_.max_held_bytes)
    return fmt::format("{} rows, {} bytes held (max_held_bytes = {})", held_.rows, held_.bytes,
                       options_.max_held_bytes);
  return fmt::format("{} rows held (max_held_rows = {})", held_.rows, options_.max_held_rows);
}

// Offers the held rows again after a schema change here, and every kHeldRetryInterval anyway.
// False: stopping.
bool ConsumerRun::retry_held_when_due(const std::atomic<bool>& stop) {
  report_clock();  // the publisher folds too: what it did shows here, once per loop
  if (held_.entries == 0) return true;
  refresh_schema(false);
  const auto now = std::chrono::steady_clock::now();
  if (!schema_changed_ && now - last_retry_ < kHeldRetryInterval) return true;
  last_retry_ = now;
  schema_changed_ = false;
  RetryResult r;
  bool recount = false;
  if (!write_transaction(
          db_, stop,
          [&] {
            recount = held_epoch(db_) != held_epoch_;  // -drop-held ran: counts are stale
            applier_->begin();
            r = retry_held_rows(db_, *applier_, options_.stream, held_cursor_,
                                kHeldEntriesPerRetry);
            applier_->finish();
          },
          "applying held rows", &stats_.write_lock))
    return false;
  held_cursor_ = r.last_id;
  count_conflicts();
  stats_.rows_applied += r.applied;
  stats_.rows_dead_lettered += r.dead_lettered;
  if (r.applied > 0 || r.released > 0) {
    stats_.last_applied_ms = wall_clock_ms();
    spdlog::info("{}: {} held row(s) applied; {} still held", options_.stream, r.applied,
                 r.still_held);
  }
  if (recount)
    recount_held();
  else
    note_held(r.change, r.entries > 0);
  stats_.set_stream(options_.stream, progress_);
  return true;
}

// Too many rows held: read nothing more (the server keeps every message) until retries bring
// the held rows under the bound, so holding never grows without limit. False: stopping.
bool ConsumerRun::wait_while_held_full(const std::atomic<bool>& stop) {
  source_.stop();
  backlog_.clear();
  const std::string bound = held_bound_text();
  spdlog::error(
      "{}: {}; reading stops at sequence {} until they can be applied (or the bound is "
      "raised). Oldest: {}",
      options_.stream, bound, position_ + 1, progress_.held_reason);
  progress_.paused = true;
  progress_.pause_reason = fmt::format("{}: {}", bound, progress_.held_reason);
  progress_.paused_since_ms = wall_clock_ms();
  stats_.set_stream(options_.stream, progress_);
  while (!stop && over_held_bound()) {
    for (int i = 0; i < 10 && !stop; ++i) std::this_thread::sleep_for(kIdleReadTimeout / 5);
    last_retry_ = {};  // due now
    if (!retry_held_when_due(stop)) return false;
  }
  if (stop) return false;
  spdlog::info("{}: held rows are under the bound again; reading from sequence {}", options_.stream,
               position_ + 1);
  progress_.paused = false;
  progress_.pause_reason.clear();
  progress_.paused_since_ms = 0;
  stats_.set_stream(options_.stream, progress_);
  planner_.restart(position_);
  source_.start(position_ + 1);
  return true;
}

std::optional<IncomingMessage> ConsumerRun::next_message(std::chrono::milliseconds timeout) {
  if (backlog_.empty()) return source_.next(timeout);
  IncomingMessage m = std::move(backlog_.front());
  backlog_.pop_front();
  return m;
}

// The next messages to plan as one transaction: the first one (waiting up to
// kIdleReadTimeout), then what is already buffered, or arrives within max_gather (bounded).
// Empty when the stream is quiet.
std::deque<IncomingMessage> ConsumerRun::gather() {
  std::deque<IncomingMessage> messages;
  auto first = next_message(kIdleReadTimeout);
  if (!first) return messages;
  gathered_us_ = wall_us();
  size_t bytes = first->payload.size();
  messages.push_back(std::move(*first));
  const auto gather_until = std::chrono::steady_clock::now() + options_.max_gather;
  while (messages.size() < kMaxGatherMessages && bytes < kMaxGatherBytes) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        gather_until - std::chrono::steady_clock::now());
    auto more = next_message(std::max(left, std::chrono::milliseconds(0)));
    if (!more) break;
    bytes += more->payload.size();
    messages.push_back(std::move(*more));
  }
  return messages;
}

// Quiet stream: store a position that only moved over our own batches (deferred so that every
// own publish does not cost a write transaction of its own). False: stopping.
bool ConsumerRun::flush_own_position_when_quiet(const std::atomic<bool>& stop) {
  if (unsaved_position_ <= stored_position_ ||
      std::chrono::steady_clock::now() - unsaved_since_ <= kOwnPositionFlushDelay)
    return true;
  if (!write_transaction(
          db_, stop, [&] { applier_->set_position(options_.stream, unsaved_position_); },
          "storing stream position", &stats_.write_lock))
    return false;
  stored_position_ = unsaved_position_;
  return true;
}

ConsumePlan ConsumerRun::plan(std::deque<IncomingMessage> messages) {
  refresh_schema(false);
  PlanInputs in;
  in.stream = options_.stream;
  in.node = options_.node;
  in.apply_own_until = options_.apply_own_until;
  in.next_batch_id = static_cast<uint64_t>(meta_get_int(db_, "next_batch_id", 1));
  in.max_rows_per_txn = options_.max_rows_per_txn;
  in.cluster_key = options_.cluster_key.get();
  in.skip_gaps = options_.skip_gaps;
  ConsumePlan plan = planner_.plan(std::move(messages), in);
  for (const auto& line : plan.warnings) spdlog::warn("{}", line);
  stats_.batches_skipped_own += plan.skipped_own;
  if (plan.gap) {
    backlog_.clear();  // never read on after a gap
  } else {
    backlog_.insert(backlog_.begin(), std::make_move_iterator(plan.deferred.begin()),
                    std::make_move_iterator(plan.deferred.end()));
  }
  return plan;
}

// Carries the plan out. False: the transaction did not commit (stopping).
bool ConsumerRun::commit(const ConsumePlan& plan, const std::atomic<bool>& stop) {
  if (plan.writes()) return apply(plan, stop);
  note_progress_without_writing(plan);
  return true;
}

// Only our own batches (or parts still incomplete): nothing to write now.
void ConsumerRun::note_progress_without_writing(const ConsumePlan& plan) {
  if (plan.position > unsaved_position_) {
    unsaved_position_ = plan.position;
    unsaved_since_ = std::chrono::steady_clock::now();
  }
  position_ = std::max(stored_position_, plan.position);
  progress_.position = position_;
  progress_.last_seq = std::max(progress_.last_seq, plan.last_seen);
  stats_.set_stream(options_.stream, progress_);
}

bool ConsumerRun::apply(const ConsumePlan& plan, const std::atomic<bool>& stop) {
  ApplyStats total;
  std::vector<int64_t> newest;  // per applied batch: its highest version (replication delay)
  std::vector<std::string> held_lines;
  HeldUsage held_stored;
  const auto started = std::chrono::steady_clock::now();
  bool committed = write_transaction(
      db_, stop,
      [&] {
        total = ApplyStats{};
        newest.clear();
        held_lines.clear();
        held_stored = {};
        applier_->begin();
        for (const auto& r : plan.dead_letters)
          applier_->dead_letter({options_.stream, r.seq}, r.origin, r.batch, "", r.reason,
                                r.payload);
        std::vector<HeldRows> held;
        for (const auto& r : plan.apply) {
          held.clear();
          const MessageRef where{options_.stream, r.seq};
          ApplyStats one = applier_->apply(r.batch, where, held);
          if (!held.empty()) {
            held_stored += store_held_rows(db_, r.batch, held, where);
            for (const auto& h : held)
              held_lines.push_back(fmt::format("{} seq {}: {} row(s) held: {}", options_.stream,
                                               r.seq, h.rows.size(), h.reason));
          }
          newest.push_back(one.max_hlc);
          total += one;
        }
        if (plan.position > stored_position_)
          applier_->set_position(options_.stream, plan.position);
        applier_->finish();
      },
      "applying changes", &stats_.write_lock);
  if (!committed) return false;
  if (spdlog::should_log(spdlog::level::debug))
    for (const auto& r : plan.apply)
      spdlog::debug("delay trace: applied batch {}/{}: received {} committed {}",
                    r.batch.origin_node, r.batch.batch_id, gathered_us_, wall_us());
  count_conflicts();
  observe_skew(plan, wall_clock_ms());
  report_clock();
  for (const auto& line : held_lines) spdlog::warn("{}", line);
  report_applied(plan, total, newest, started);
  if (total.held > 0) {
    stats_.rows_held += total.held;
    note_held(held_stored, false);
    stats_.set_stream(options_.stream, progress_);
  }
  return true;
}

// After a committed apply: the conflict log's new rows into the metric, and a log line at most
// every 10 s (a hot conflict loop would otherwise write one per batch; the table has each row).
void ConsumerRun::count_conflicts() {
  const int64_t n = applier_->take_conflicts();
  stats_.conflicts += n;
  conflicts_unreported_ += n;
  constexpr auto kConflictLogInterval = std::chrono::seconds(10);
  const auto now = std::chrono::steady_clock::now();
  if (conflicts_unreported_ == 0 || now - conflicts_logged_ < kConflictLogInterval) return;
  spdlog::warn(
      "{}: {} concurrent change(s) lost to last-writer-wins or a UNIQUE race since the last note; "
      "their values are in __harmony_conflicts",
      options_.stream, conflicts_unreported_);
  conflicts_unreported_ = 0;
  conflicts_logged_ = now;
}

void ConsumerRun::report_applied(const ConsumePlan& plan, const ApplyStats& total,
                                 const std::vector<int64_t>& newest,
                                 std::chrono::steady_clock::time_point started) {
  stats_.apply_latency.observe(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  for (int64_t hlc : newest)
    if (hlc > 0)
      stats_.replication_delay.observe(
          static_cast<double>(std::max<int64_t>(0, wall_clock_ms() - hlc_physical_ms(hlc))) /
          1000.0);
  stored_position_ = std::max(stored_position_, plan.position);
  position_ = stored_position_;
  for (const auto& r : plan.dead_letters)
    spdlog::warn("{} seq {}: dead-lettered: {}", options_.stream, r.seq, r.reason);
  stats_.rows_applied += total.applied;
  stats_.rows_skipped_older += total.skipped_older;
  stats_.rows_dead_lettered += total.dead_lettered;
  stats_.values_left_out += total.values_left_out;
  stats_.batches_applied += static_cast<int64_t>(plan.apply.size());
  stats_.batches_dead_lettered += static_cast<int64_t>(plan.dead_letters.size());
  if (!plan.apply.empty()) stats_.last_applied_ms = wall_clock_ms();
  progress_.position = stored_position_;
  progress_.last_seq = std::max(progress_.last_seq, plan.last_seen);
  progress_.last_applied_ms = stats_.last_applied_ms;
  if (total.max_hlc > 0) progress_.delay_ms = wall_clock_ms() - hlc_physical_ms(total.max_hlc);
  stats_.set_stream(options_.stream, progress_);
  if (total.dead_lettered > 0)
    spdlog::warn("{}: {} row(s) dead-lettered (see __harmony_dead_letters)", options_.stream,
                 total.dead_lettered);
}

// Per origin, its newest row's (physical ms - our wall clock): one skew sample per batch (the
// newest row is the one least delayed). Held rows count too: they are the skew that matters.
void ConsumerRun::observe_skew(const ConsumePlan& plan, int64_t now_ms) {
  // Only messages near the end of the stream are live: history read while catching up is late
  // by however long this node was away, which says nothing about clocks. 64 messages leave room
  // for several origins publishing at once.
  constexpr uint64_t kLiveMessages = 64;
  const uint64_t newest_known = std::max(progress_.last_seq, plan.last_seen);
  const double bound_s = static_cast<double>(options_.max_clock_drift_ms) / 1000.0;
  for (const auto& r : plan.apply) {
    if (r.batch.origin_node == options_.node) continue;  // own batches replayed after a restore
    if (r.seq + kLiveMessages < newest_known) continue;
    int64_t newest = -1;
    for (const auto& row : r.batch.rows)
      if (hlc_well_formed(row.hlc)) newest = std::max(newest, row.hlc);
    if (newest < 0) continue;
    const uint64_t origin = r.batch.origin_node;
    stats_.observe_clock_skew(origin, hlc_physical_ms(newest) - now_ms, now_ms);
    const int64_t ahead = stats_.clock_skews()[origin].ahead_ms;
    const bool beyond = ahead > options_.max_clock_drift_ms || -ahead > options_.max_clock_drift_ms;
    bool& logged = skew_logged_[origin];
    if (beyond && !logged) {
      if (ahead > 0)
        spdlog::error(
            "clock skew: node {}'s clock is {:.1f} s ahead of this node's, beyond the drift bound "
            "(max_clock_drift, {:.1f} s): its rows are held here until this node's clock reaches "
            "them. Fix the clock of the node that is wrong (NTP)",
            origin, static_cast<double>(ahead) / 1000.0, bound_s);
      else
        spdlog::error(
            "clock skew: rows from node {} arrive {:.1f} s behind this node's clock, beyond the "
            "drift bound (max_clock_drift, {:.1f} s): this node's clock may be ahead (its rows "
            "are then held by the others), node {}'s behind, or delivery late. Check the clocks "
            "(NTP)",
            origin, static_cast<double>(-ahead) / 1000.0, bound_s, origin);
    } else if (!beyond && logged) {
      spdlog::info("clock skew: node {} is within the drift bound again ({:.1f} s)", origin,
                   static_cast<double>(ahead) / 1000.0);
    }
    logged = beyond;
  }
}

// What folds (publisher, consumers) did about the drift bound since the last look: into the
// stats and, once per occurrence, the log. Consumers share the stats, so exchange() lets exactly
// one of them log each change.
void ConsumerRun::report_clock() {
  const ClockBoundEvents& e = clock_bound_events();
  const double bound_s = static_cast<double>(options_.max_clock_drift_ms) / 1000.0;
  const int64_t lowered = e.clock_lowered.load();
  if (stats_.clock_lowered.exchange(lowered) < lowered) {
    stats_.clock_lowered_ms = e.last_lowered_ms.load();
    spdlog::error(
        "clock: the stored clock (__harmony_meta 'hlc') was {:.1f} s ahead of this host's clock, "
        "beyond the drift bound (max_clock_drift, {:.1f} s): this host's clock ran ahead and was "
        "set back, or a peer's far-future versions were accepted. Lowered to the bound: new "
        "versions are issued within it",
        static_cast<double>(stats_.clock_lowered_ms.load()) / 1000.0, bound_s);
  }
  const int64_t beyond = e.versions_beyond.load();
  stats_.versions_beyond_bound = beyond;
  const auto due = stats_.versions_beyond_log.due(
      beyond, std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now().time_since_epoch())
                  .count());
  if (due.count == 0) return;
  spdlog::error(
      "clock: {} local change(s) got versions beyond this host's clock + drift bound ({:.1f} "
      "s){}: their rows already carried versions that far ahead (written while a clock ran "
      "ahead), and a new version must exceed the old one. Peers hold these rows until their "
      "clocks reach them",
      due.count, bound_s,
      due.since_ms > 0 ? fmt::format(" in the last {} s", due.since_ms / 1000) : "");
}

void ConsumerRun::pause_for_gap(const SequenceGap& gap) {
  spdlog::error(
      "{}: sequences {}..{} are missing from the stream (removed by retention before this "
      "node applied them). This stream is paused after sequence {} so the node does not run "
      "with a hole in its data; restart harmonylite to restore the newest snapshot and "
      "catch up. (With anti-entropy rounds on, [anti_entropy] interval > 0, it would read on "
      "and repair the gap from its peers.)",
      options_.stream, gap.first, gap.last, position_.load());
  progress_.position = stored_position_;
  progress_.paused = true;
  progress_.pause_reason = fmt::format(
      "sequences {}..{} are missing: restart to restore a snapshot", gap.first, gap.last);
  stats_.set_stream(options_.stream, progress_);
}

// Holes the plan reads past are added to the anti-entropy gap in a transaction of their own,
// before the plan's position is stored: a crash in between leaves a gap counted for nothing
// (the next clean round clears it), never a hole nobody looks for. False: stopping.
bool ConsumerRun::record_skipped_gaps(const ConsumePlan& plan, const std::atomic<bool>& stop) {
  if (plan.skipped_gaps.empty()) return true;
  int64_t skipped = 0;
  for (const auto& g : plan.skipped_gaps) skipped += static_cast<int64_t>(g.last - g.first + 1);
  int64_t gap = 0;
  if (!write_transaction(
          db_, stop, [&] { gap = add_to_anti_entropy_gap(db_, skipped); },
          "recording skipped sequences", &stats_.write_lock))
    return false;
  stats_.anti_entropy_gap = gap;
  for (const auto& g : plan.skipped_gaps)
    spdlog::warn(
        "{}: sequences {}..{} are missing from the stream (removed by retention before this "
        "node read them); reading on, and anti-entropy brings the rows they carried from the "
        "peers with their versions (a gap of {} sequence(s) to repair now)",
        options_.stream, g.first, g.last, gap);
  return true;
}

// A position that only moved over own batches is stored before leaving too (best effort): a
// snapshot taken from this database later carries the stored positions.
void ConsumerRun::store_unsaved_position() {
  if (unsaved_position_ <= stored_position_) return;
  try {
    Transaction tx(db_);
    applier_->set_position(options_.stream, unsaved_position_);
    tx.commit();
  } catch (const SqliteError&) {
  }
}
}  // namespace

Consumer::Consumer(ConsumerOptions options, MessageSource& source, ReplicatorStats& stats)
    : options_(std::move(options)), source_(source), stats_(stats) {}

void Consumer::run(const std::atomic<bool>& stop) {
  ConsumerRun run(options_, source_, stats_, position_);
  while (!stop) {
    if (!run.retry_held_when_due(stop)) break;
    if (run.over_held_bound() && !run.wait_while_held_full(stop)) break;
    std::deque<IncomingMessage> messages = run.gather();
    if (messages.empty()) {
      if (!run.flush_own_position_when_quiet(stop)) break;
      continue;
    }
    ConsumePlan plan = run.plan(std::move(messages));
    if (!run.record_skipped_gaps(plan, stop)) break;
    if (!run.commit(plan, stop)) break;
    if (plan.gap) {
      run.pause_for_gap(*plan.gap);
      break;
    }
  }
  run.store_unsaved_position();
  source_.stop();
}

}  // namespace harmony
