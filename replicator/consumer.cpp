// Consumer loop (see consumer.hpp).
#include "replicator/consumer.hpp"

#include <deque>
#include <memory>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/database.hpp"
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
};
}  // namespace

Consumer::Consumer(ConsumerOptions options, MessageSource& source, ReplicatorStats& stats)
    : options_(std::move(options)), source_(source), stats_(stats) {}

void Consumer::run(const std::atomic<bool>& stop) {
  Db db = open_database(options_.db_path);
  uint64_t generation = options_.schema_generation ? options_.schema_generation->load() : 0;
  auto applier = std::make_unique<Applier>(db, options_.node, captured_tables(db));
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

  BatchAssembler assembler;
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
      if (m.stream_seq <= last_seen) continue;  // redelivery after a reset
      if (m.stream_seq != last_seen + 1 && m.stream_seq != 0) {
        // A hole: retention removed messages before this node applied them. Applying what
        // follows would leave this node diverged for good, so the stream stops here (what came
        // before is still applied below); a restart restores the newest snapshot.
        gap = {last_seen + 1, m.stream_seq - 1};
        msgs.clear();
        backlog.clear();
        break;
      }
      last_seen = m.stream_seq;
      IncomingPart part;
      part.stream_seq = m.stream_seq;
      if (auto err = parse_part_headers(m.origin, m.batch, m.part, part)) {
        rejected.push_back({m.stream_seq, 0, 0, *err, m.payload.substr(0, kMaxDeadLetterPayload)});
        continue;
      }
      part.payload = std::move(m.payload);
      auto result = assembler.add(std::move(part));
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
        rows += b.rows.size();
        ready.push_back({done.last_seq, std::move(b)});
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

    if (options_.schema_generation && options_.schema_generation->load() != generation) {
      generation = options_.schema_generation->load();
      applier = std::make_unique<Applier>(db, options_.node, captured_tables(db));
    }
    uint64_t new_position = assembler.safe_position(handled_up_to);
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
      if (gap) {
        pause_for_gap();
        break;
      }
      continue;
    }
    ApplyStats total;
    bool committed = write_transaction(
        db, stop,
        [&] {
          total = ApplyStats{};
          applier->begin();
          for (const auto& r : rejected)
            applier->dead_letter({options_.stream, r.seq}, r.origin, r.batch, "", r.reason,
                                 r.payload);
          for (const auto& r : ready) total += applier->apply(r.batch, {options_.stream, r.seq});
          if (new_position > position) applier->set_position(options_.stream, new_position);
          applier->finish();
        },
        "applying changes");
    if (!committed) break;
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
