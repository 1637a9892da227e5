// Planning one consumer transaction, without a database or NATS: from the messages gathered off
// a shard stream it decides which batches are applied, which are this node's own echoes, which
// bytes are dead-lettered, how far the stream position may move, and whether the stream stops
// (a hole in the sequences). Schema differences do not stop a stream: the Applier maps columns
// by name and holds the rows it cannot apply yet (replicator/receive/held_rows.hpp). It owns the
// reading state that carries from one transaction to the next: the batch assemblers and the highest
// sequence read. replicator/receive/consumer.cpp gathers the messages and carries the plan out in
// one write transaction.
#pragma once
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "replicator/receive/consumer.hpp"
#include "replicator/wire/message_auth.hpp"
#include "replicator/wire/wire.hpp"
#include "shared/batch.hpp"

namespace harmony {

// Dead-lettered payloads are kept for inspection, truncated so poison cannot fill the disk.
inline constexpr size_t kMaxDeadLetterPayload = 64 * 1024;

// Bytes that cannot be applied: bad headers or an undecodable batch.
struct RefusedMessage {
  uint64_t seq = 0;  // the message's sequence (a batch's: its last part's)
  uint64_t origin = 0;
  uint64_t batch = 0;
  std::string reason;
  std::string payload;
};

struct ReadyBatch {
  uint64_t seq = 0;        // last part's sequence
  uint64_t first_seq = 0;  // first part's sequence
  Batch batch;
};

// Sequences missing from the stream (removed by retention before this node applied them).
struct SequenceGap {
  uint64_t first = 0;
  uint64_t last = 0;
};

// What planning needs to know about this node, read by the caller before planning.
struct PlanInputs {
  std::string stream;  // for log lines only
  uint64_t node = 0;
  uint64_t apply_own_until = 0;  // ConsumerOptions::apply_own_until
  // This node's next batch id (__harmony_meta next_batch_id): only ids below it were issued here.
  uint64_t next_batch_id = 1;
  size_t max_rows_per_txn = 20000;
  // Set: every part must carry a valid Harmony-Auth tag under this key (when it verifies).
  const ClusterKey* cluster_key = nullptr;
  // Anti-entropy rounds are on: a hole is skipped (ConsumePlan::skipped_gaps) and its rows come
  // from the peers, instead of stopping the stream.
  bool skip_gaps = false;
};

struct ConsumePlan {
  std::vector<ReadyBatch> apply;  // in stream order
  std::vector<RefusedMessage> dead_letters;
  int64_t skipped_own = 0;  // own batches recognised as echoes
  // Not planned because the transaction reached max_rows_per_txn: read first next time, in order.
  std::deque<IncomingMessage> deferred;
  std::optional<SequenceGap> gap;  // the stream stops after this plan
  // Holes read past (PlanInputs::skip_gaps): to be added to the anti-entropy gap before the
  // position moves beyond them.
  std::vector<SequenceGap> skipped_gaps;
  uint64_t position = 0;              // safe position once the plan is carried out
  uint64_t last_seen = 0;             // highest sequence read so far
  std::vector<std::string> warnings;  // complete log lines (dropped parts, forged own ids)

  bool writes() const { return !apply.empty() || !dead_letters.empty(); }
};

class ConsumePlanner {
 public:
  // Reading continues after `position` (everything up to it is applied or skippable).
  explicit ConsumePlanner(uint64_t position) : last_seen_(position) {}
  // Plans `messages` (in delivery order); see ConsumePlan. Moves the reading state forward.
  ConsumePlan plan(std::deque<IncomingMessage> messages, const PlanInputs& in);
  // Reading starts again after `position` (a resubscribe after a pause): parts of batches
  // gathered so far are forgotten, they are delivered again.
  void restart(uint64_t position);
  uint64_t last_seen() const { return last_seen_; }

 private:
  std::optional<AssembledBatch> assemble(IncomingMessage m, const PlanInputs& in,
                                         ConsumePlan& plan);
  bool is_own_echo(const AssembledBatch& done, const PlanInputs& in, ConsumePlan& plan) const;
  // Decodes and checks a complete batch.
  void decode_into(AssembledBatch& done, ConsumePlan& plan, size_t& rows);
  void settle_position(ConsumePlan& plan) const;

  BatchAssembler in_order_;
  // Replays are reassembled apart: they must neither supersede nor complete a batch that is
  // being read in order, nor move the safe position.
  BatchAssembler replays_;
  uint64_t last_seen_ = 0;  // highest sequence handed to an assembler
};

}  // namespace harmony
