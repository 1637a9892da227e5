// Consumer loop (see consumer.hpp).
#include "replicator/consumer.hpp"

#include <deque>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/database.hpp"
#include "replicator/schema_guard.hpp"
#include "replicator/wire.hpp"
#include "shared/apply.hpp"
#include "shared/codec.hpp"
#include "shared/hlc.hpp"

namespace harmony {

namespace {
// A position that advanced only over this node's own batches is stored after this much quiet
// (or with the next real apply, whichever comes first).
constexpr auto kOwnPositionFlushDelay = std::chrono::seconds(2);
// Dead-lettered payloads are kept for inspection, truncated so poison cannot fill the disk.
constexpr size_t kMaxDeadLetterPayload = 64 * 1024;

struct Rejected {
  uint64_t seq = 0;
  uint64_t origin = 0;
  uint64_t batch = 0;
  std::string reason;
  std::string payload;
};

struct Ready {
  uint64_t seq = 0;  // last part's sequence
  Batch batch;
  uint64_t first_seq = 0;  // first part's sequence
};

// A batch whose schema does not match this node's: the stream waits at it (schema_guard.hpp).
struct Held {
  uint64_t first_seq = 0;
  Batch batch;
};
}  // namespace

Consumer::Consumer(ConsumerOptions options, MessageSource& source, ReplicatorStats& stats)
    : options_(std::move(options)), source_(source), stats_(stats) {}

void Consumer::run(const std::atomic<bool>& stop) {
  Db db = open_database(options_.db_path);
  uint64_t generation = options_.schema_generation ? options_.schema_generation->load() : 0;
  auto applier = std::make_unique<Applier>(db, options_.node, captured_tables(db));
  LocalSchema schema = LocalSchema::load(db, options_.selection);
  int64_t schema_version = db.query_int("PRAGMA schema_version");
  // After DDL (seen through the publisher's counter or PRAGMA schema_version), statements and
  // hashes are rebuilt before the next batch is checked or applied.
  auto refresh_schema = [&](bool force) {
    const uint64_t g = options_.schema_generation ? options_.schema_generation->load() : 0;
    const int64_t v = db.query_int("PRAGMA schema_version");
    if (!force && g == generation && v == schema_version) return;
    generation = g;
    schema_version = v;
    applier = std::make_unique<Applier>(db, options_.node, captured_tables(db));
    schema = LocalSchema::load(db, options_.selection);
  };
  std::optional<Held> held;
  uint64_t position = 0;
  {
    auto positions = load_positions(db);
    if (auto it = positions.find(options_.stream); it != positions.end()) position = it->second;
  }
  position_ = position;
  StreamProgress progress;
  progress.position = position;
  stats_.set_stream(options_.stream, progress);
  source_.start(position + 1);
  spdlog::info("consuming {} from sequence {}", options_.stream, position + 1);

  BatchAssembler assembler, replay_assembler;
  uint64_t last_seen = position;        // highest sequence handed to the assembler
  std::deque<IncomingMessage> backlog;  // received but left for the next transaction
  uint64_t unsaved_position = 0;        // advanced over own batches, not yet stored
  auto unsaved_since = std::chrono::steady_clock::now();
  auto next_message = [&](std::chrono::milliseconds timeout) -> std::optional<IncomingMessage> {
    if (!backlog.empty()) {
      IncomingMessage m = std::move(backlog.front());
      backlog.pop_front();
      return m;
    }
    return source_.next(timeout);
  };
  while (!stop) {
    if (held) {
      // Paused on a schema mismatch: read nothing (the server keeps every message) until this
      // node's schema accepts the held batch, then read again from just before it.
      source_.stop();
      backlog.clear();
      assembler = BatchAssembler{};
      replay_assembler = BatchAssembler{};
      if (!wait_for_schema(db, held->batch, options_.stream, schema, stop,
                           options_.schema_generation, options_.selection))
        break;
      spdlog::info("{}: the schema now matches; resuming from sequence {}", options_.stream,
                   position_ + 1);
      progress.paused = false;
      progress.pause_reason.clear();
      progress.paused_since_ms = 0;
      stats_.set_stream(options_.stream, progress);
      held.reset();
      refresh_schema(true);
      last_seen = position_;
      source_.start(position_ + 1);
    }
    auto first = next_message(std::chrono::milliseconds(500));
    if (!first) {
      // Quiet stream: store a position that only moved over our own batches (deferred so that
      // every own publish does not cost a write transaction of its own).
      if (unsaved_position > position &&
          std::chrono::steady_clock::now() - unsaved_since > kOwnPositionFlushDelay) {
        if (!write_transaction(
                db, stop, [&] { applier->set_position(options_.stream, unsaved_position); },
                "storing stream position"))
          break;
        position = unsaved_position;
      }
      continue;
    }
    std::deque<IncomingMessage> msgs;
    msgs.push_back(std::move(*first));
    size_t bytes = msgs.back().payload.size();
    auto gather_until = std::chrono::steady_clock::now() + options_.max_gather;
    // Group what is already buffered (bounded) into one transaction.
    while (msgs.size() < 4096 && bytes < (64u << 20)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          gather_until - std::chrono::steady_clock::now());
      auto more = next_message(std::max(left, std::chrono::milliseconds(0)));
      if (!more) break;
      bytes += more->payload.size();
      msgs.push_back(std::move(*more));
    }
    refresh_schema(false);

    std::vector<Rejected> rejected;
    std::vector<Ready> ready;
    std::optional<std::pair<uint64_t, uint64_t>> gap;  // missing sequences, first..last
    size_t rows = 0;
    uint64_t handled_up_to = last_seen;
    while (!msgs.empty()) {
      if (rows >= options_.max_rows_per_txn) {
        // Bound reached: the rest waits for the next transaction, in order.
        while (!msgs.empty()) {
          backlog.push_front(std::move(msgs.back()));
          msgs.pop_back();
        }
        break;
      }
      IncomingMessage m = std::move(msgs.front());
      msgs.pop_front();
      if (m.stream_seq <= last_seen && !m.replay) continue;  // redelivery after a reset
      if (!m.replay && m.stream_seq != last_seen + 1 && m.stream_seq != 0) {
        // A hole: retention removed messages before this node applied them. Applying what
        // follows would leave this node diverged for good, so the stream stops here (what came
        // before is still applied below); a restart restores the newest snapshot.
        gap = {last_seen + 1, m.stream_seq - 1};
        msgs.clear();
        backlog.clear();
        break;
      }
      // A replay lies at or below what was read already: the position does not move for it.
      last_seen = std::max(last_seen, m.stream_seq);
      IncomingPart part;
      part.stream_seq = m.stream_seq;
      if (auto err = parse_part_headers(m.origin, m.batch, m.part, part)) {
        rejected.push_back({m.stream_seq, 0, 0, *err, m.payload.substr(0, kMaxDeadLetterPayload)});
        continue;
      }
      part.payload = std::move(m.payload);
      // Replays are reassembled apart: they must neither supersede nor complete a batch that
      // is being read in order, nor move the safe position.
      auto result = (m.replay ? replay_assembler : assembler).add(std::move(part));
      for (auto& d : result.dropped) spdlog::warn("{}: {}", options_.stream, d);
      if (!result.complete) continue;
      auto& done = *result.complete;
      if (done.origin == options_.node && done.last_seq > options_.apply_own_until) {
        // Our own change, already in this database - when this node did issue that batch id.
        // An id it never issued is no echo but a message forged with this node's id: it is
        // checked and applied (last writer wins) like any other, so this node reaches the same
        // result as every other node, none of which can tell it from a real one.
        if (done.batch < static_cast<uint64_t>(meta_get_int(db, "next_batch_id", 1))) {
          ++stats_.batches_skipped_own;
          continue;
        }
        spdlog::warn(
            "{} seq {}: batch {} carries this node's id ({}) but this node never issued that "
            "batch id; treating it as a foreign batch",
            options_.stream, done.last_seq, done.batch, done.origin);
      }
      try {
        Batch b = decode_batch(done.frame);
        if (b.origin_node != done.origin)
          throw DecodeError(fmt::format("batch body says origin {} but headers say {}",
                                        b.origin_node, done.origin));
        if (auto mismatch = check_batch_schema(b, schema)) {
          // Pause: neither this batch nor anything after it is applied or acknowledged; the
          // position stays before it (below), so a restart also waits here.
          const std::string why = mismatch->describe(b.origin_node, b.batch_id);
          spdlog::error("{} paused at sequence {}: {}", options_.stream, done.first_seq, why);
          ++stats_.schema_pauses;
          progress.paused = true;
          progress.pause_reason = "schema mismatch: " + why;
          progress.paused_since_ms = wall_clock_ms();
          stats_.set_stream(options_.stream, progress);
          held = Held{done.first_seq, std::move(b)};
          msgs.clear();
          backlog.clear();
          break;
        }
        rows += b.rows.size();
        ready.push_back({done.last_seq, std::move(b), done.first_seq});
      } catch (const DecodeError& e) {
        rejected.push_back({done.last_seq, done.origin, done.batch, e.what(),
                            done.frame.substr(0, kMaxDeadLetterPayload)});
      } catch (const std::bad_alloc&) {
        throw;
      } catch (const std::exception& e) {
        // A decoder bug must not stop the stream for good (the worker would restart, meet the
        // same message and fail again): this message is poison like any undecodable one.
        rejected.push_back({done.last_seq, done.origin, done.batch,
                            fmt::format("cannot decode: {}", e.what()),
                            done.frame.substr(0, kMaxDeadLetterPayload)});
      }
    }
    handled_up_to = last_seen;

    uint64_t new_position = assembler.safe_position(handled_up_to);
    if (held) {
      // Only what lies wholly before the held batch is applied now; the rest is read again.
      new_position = std::min(new_position, held->first_seq - 1);
      std::erase_if(ready, [&](const Ready& r) {
        if (r.seq < held->first_seq) return false;
        new_position = std::min(new_position, r.first_seq - 1);
        return true;
      });
      std::erase_if(rejected, [&](const Rejected& r) { return r.seq >= held->first_seq; });
    }
    auto pause_for_gap = [&] {
      spdlog::error(
          "{}: sequences {}..{} are missing from the stream (removed by retention before this "
          "node applied them). This stream is paused after sequence {} so the node does not run "
          "with a hole in its data; restart harmonylite to restore the newest snapshot and "
          "catch up",
          options_.stream, gap->first, gap->second, position_.load());
      progress.position = position;
      progress.paused = true;
      progress.pause_reason = fmt::format(
          "sequences {}..{} are missing: restart to restore a snapshot", gap->first, gap->second);
      stats_.set_stream(options_.stream, progress);
    };
    if (ready.empty() && rejected.empty()) {
      // Only our own batches (or parts still incomplete): nothing to write now.
      if (new_position > unsaved_position) {
        unsaved_position = new_position;
        unsaved_since = std::chrono::steady_clock::now();
      }
      position_ = std::max(position, new_position);
      progress.position = position_;
      progress.last_seq = std::max(progress.last_seq, last_seen);
      stats_.set_stream(options_.stream, progress);
      if (gap) {
        pause_for_gap();
        break;
      }
      continue;
    }
    ApplyStats total;
    std::vector<int64_t> newest;  // per applied batch: its highest version (replication delay)
    const auto apply_started = std::chrono::steady_clock::now();
    bool committed = write_transaction(
        db, stop,
        [&] {
          total = ApplyStats{};
          newest.clear();
          applier->begin();
          for (const auto& r : rejected)
            applier->dead_letter({options_.stream, r.seq}, r.origin, r.batch, "", r.reason,
                                 r.payload);
          for (const auto& r : ready) {
            ApplyStats one = applier->apply(r.batch, {options_.stream, r.seq});
            newest.push_back(one.max_hlc);
            total += one;
          }
          if (new_position > position) applier->set_position(options_.stream, new_position);
          applier->finish();
        },
        "applying changes");
    if (!committed) break;
    stats_.apply_latency.observe(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - apply_started).count());
    for (int64_t hlc : newest)
      if (hlc > 0)
        stats_.replication_delay.observe(
            static_cast<double>(std::max<int64_t>(0, wall_clock_ms() - hlc_physical_ms(hlc))) /
            1000.0);
    position = std::max(position, new_position);
    position_ = position;
    for (const auto& r : rejected)
      spdlog::warn("{} seq {}: dead-lettered: {}", options_.stream, r.seq, r.reason);
    stats_.rows_applied += total.applied;
    stats_.rows_skipped_older += total.skipped_older;
    stats_.rows_dead_lettered += total.dead_lettered;
    stats_.batches_applied += static_cast<int64_t>(ready.size());
    stats_.batches_dead_lettered += static_cast<int64_t>(rejected.size());
    if (!ready.empty()) stats_.last_applied_ms = wall_clock_ms();
    progress.position = position;
    progress.last_seq = std::max(progress.last_seq, last_seen);
    progress.last_applied_ms = stats_.last_applied_ms;
    if (total.max_hlc > 0) progress.delay_ms = wall_clock_ms() - hlc_physical_ms(total.max_hlc);
    stats_.set_stream(options_.stream, progress);
    if (total.dead_lettered > 0)
      spdlog::warn("{}: {} row(s) dead-lettered (see __harmony_dead_letters)", options_.stream,
                   total.dead_lettered);
    if (gap) {
      pause_for_gap();
      break;
    }
  }
  // A position that only moved over own batches is stored before leaving too (best effort):
  // a snapshot taken from this database later carries the stored positions.
  if (unsaved_position > position) {
    try {
      Transaction tx(db);
      applier->set_position(options_.stream, unsaved_position);
      tx.commit();
    } catch (const SqliteError&) {
    }
  }
  source_.stop();
}

}  // namespace harmony
