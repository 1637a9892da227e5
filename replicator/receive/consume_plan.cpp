// Planning one consumer transaction (see consume_plan.hpp). Pure: no database, no NATS, no
// logging; everything the consumer must do or say is in the returned plan.
#include "replicator/receive/consume_plan.hpp"

#include <algorithm>
#include <new>

#include <fmt/format.h>

#include "replicator/wire/codec.hpp"

namespace harmony {

ConsumePlan ConsumePlanner::plan(std::deque<IncomingMessage> messages, const PlanInputs& in) {
  ConsumePlan plan;
  size_t rows = 0;
  while (!messages.empty()) {
    if (rows >= in.max_rows_per_txn) {
      // Bound reached: the rest waits for the next transaction, in order.
      plan.deferred = std::move(messages);
      break;
    }
    IncomingMessage m = std::move(messages.front());
    messages.pop_front();
    if (m.stream_seq <= last_seen_ && !m.replay) continue;  // redelivery after a reset
    if (!m.replay && m.stream_seq != last_seen_ + 1 && m.stream_seq != 0) {
      // A hole: retention removed messages before this node applied them. With anti-entropy
      // rounds on, reading goes on and the peers supply the rows the hole carried (with their
      // versions, so applying what follows first is safe). Without them, applying what follows
      // would leave this node diverged for good: the stream stops here (what came before is
      // still applied) and a restart restores the newest snapshot.
      const SequenceGap hole{last_seen_ + 1, m.stream_seq - 1};
      if (!in.skip_gaps) {
        plan.gap = hole;
        break;
      }
      plan.skipped_gaps.push_back(hole);
      // A batch with parts on both sides of the hole can never complete: forget its parts (its
      // rows come by anti-entropy like the rest), or it would pin the position below the hole.
      in_order_ = BatchAssembler{};
      last_seen_ = m.stream_seq - 1;
    }
    // A replay lies at or below what was read already: the position does not move for it.
    last_seen_ = std::max(last_seen_, m.stream_seq);
    auto done = assemble(std::move(m), in, plan);
    if (!done || is_own_echo(*done, in, plan)) continue;
    decode_into(*done, plan, rows);
  }
  settle_position(plan);
  return plan;
}

void ConsumePlanner::restart(uint64_t position) {
  in_order_ = BatchAssembler{};
  replays_ = BatchAssembler{};
  last_seen_ = position;
}

// The batch `m` completes, if any. Bad headers are dead-lettered here.
std::optional<AssembledBatch> ConsumePlanner::assemble(IncomingMessage m, const PlanInputs& in,
                                                       ConsumePlan& plan) {
  IncomingPart part;
  part.stream_seq = m.stream_seq;
  if (auto err = parse_part_headers(m.origin, m.batch, m.part, part)) {
    plan.dead_letters.push_back(
        {m.stream_seq, 0, 0, *err, m.payload.substr(0, kMaxDeadLetterPayload)});
    return std::nullopt;
  }
  // Checked per part, before reassembly: a forged part must neither complete, supersede nor
  // pin a real batch of the origin it claims. Its bytes are dead-lettered (that is what cannot
  // be authenticated) and the position moves past it.
  if (in.cluster_key && in.cluster_key->verify)
    if (auto err = check_part_auth(*in.cluster_key, m.auth, part.origin, part.batch, part.index,
                                   part.count, m.payload)) {
      plan.dead_letters.push_back({m.stream_seq, part.origin, part.batch,
                                   fmt::format("part {}/{} {}", part.index, part.count, *err),
                                   m.payload.substr(0, kMaxDeadLetterPayload)});
      return std::nullopt;
    }
  part.payload = std::move(m.payload);
  auto result = (m.replay ? replays_ : in_order_).add(std::move(part));
  for (auto& dropped : result.dropped)
    plan.warnings.push_back(fmt::format("{}: {}", in.stream, dropped));
  return std::move(result.complete);
}

bool ConsumePlanner::is_own_echo(const AssembledBatch& done, const PlanInputs& in,
                                 ConsumePlan& plan) const {
  if (done.origin != in.node || done.last_seq <= in.apply_own_until) return false;
  // Our own change, already in this database - when this node did issue that batch id. An id
  // it never issued is no echo but a message forged with this node's id: it is checked and
  // applied (last writer wins) like any other, so this node reaches the same result as every
  // other node, none of which can tell it from a real one.
  if (done.batch < in.next_batch_id) {
    ++plan.skipped_own;
    return true;
  }
  plan.warnings.push_back(
      fmt::format("{} seq {}: batch {} carries this node's id ({}) but this node never issued "
                  "that batch id; treating it as a foreign batch",
                  in.stream, done.last_seq, done.batch, done.origin));
  return false;
}

void ConsumePlanner::decode_into(AssembledBatch& done, ConsumePlan& plan, size_t& rows) {
  auto reject = [&](std::string reason) {
    plan.dead_letters.push_back({done.last_seq, done.origin, done.batch, std::move(reason),
                                 done.frame.substr(0, kMaxDeadLetterPayload)});
  };
  try {
    Batch b = decode_batch(done.frame);
    if (b.origin_node != done.origin)
      throw DecodeError(
          fmt::format("batch body says origin {} but headers say {}", b.origin_node, done.origin));
    // A schema hash that differs from ours does not stop anything: the hash is a claim any
    // publisher can make up, and rows are mapped by column name; what cannot be applied yet is
    // held row by row (shared/apply.hpp).
    rows += b.rows.size();
    plan.apply.push_back({done.last_seq, done.first_seq, std::move(b)});
  } catch (const DecodeError& e) {
    reject(e.what());
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {
    // A decoder bug must not stop the stream for good (the worker would restart, meet the
    // same message and fail again): this message is poison like any undecodable one.
    reject(fmt::format("cannot decode: {}", e.what()));
  }
}

void ConsumePlanner::settle_position(ConsumePlan& plan) const {
  plan.last_seen = last_seen_;
  plan.position = in_order_.safe_position(last_seen_);
}

}  // namespace harmony
