// The consumer's planning step (replicator/receive/consume_plan.hpp) on its own, without a
// database or a stream: own echoes are skipped, redeliveries ignored, a hole stops the stream (or
// is read past for anti-entropy to repair), replays apply below the position, a transaction is
// bounded by rows, a schema mismatch pauses at its batch, undecodable bytes are dead-lettered,
// and the position never passes an incomplete batch.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "replicator/receive/consume_plan.hpp"
#include "replicator/wire/codec.hpp"

using namespace harmony;

namespace {

constexpr uint64_t kThisNode = 2;
constexpr uint64_t kOtherNode = 1;
constexpr uint64_t kNextOwnBatchId = 10;  // this node has issued batch ids below 10
const std::string kLocalHash = "cur";

Batch books(uint64_t origin, uint64_t id, size_t rows = 1, const std::string& hash = kLocalHash) {
  Batch b;
  b.origin_node = origin;
  b.batch_id = id;
  b.tables.push_back({"Books", hash, {"id", "title"}, {"id"}, 0});
  for (size_t i = 0; i < rows; ++i) {
    const auto key = static_cast<int64_t>(id * 1000 + i);
    b.rows.push_back({0, 1000 + key, false, {Value{key}}, {Value{key}, Value{Text{"t"}}}});
  }
  return b;
}

IncomingMessage message(uint64_t seq, const Batch& b) {
  return IncomingMessage{seq, std::to_string(b.origin_node), std::to_string(b.batch_id), "1/1",
                         encode_batch(b, false)};
}

// `b` cut into `count` parts, at sequences first_seq, first_seq + 1, ...
std::vector<IncomingMessage> parts(uint64_t first_seq, const Batch& b, size_t count) {
  const std::string frame = encode_batch(b, false);
  std::vector<IncomingMessage> out;
  for (const auto& p : split_frame(frame, b.origin_node, b.batch_id, frame.size() / count + 1))
    out.push_back({first_seq + out.size(), std::to_string(b.origin_node),
                   std::to_string(b.batch_id), fmt::format("{}/{}", p.index, p.count), p.payload});
  REQUIRE(out.size() == count);
  return out;
}

struct Fixture {
  PlanInputs in;
  Fixture() {
    in.stream = "s-1";
    in.node = kThisNode;
    in.next_batch_id = kNextOwnBatchId;
  }
};

std::deque<IncomingMessage> of(std::initializer_list<IncomingMessage> messages) {
  return std::deque<IncomingMessage>(messages);
}

std::vector<uint64_t> applied_seqs(const ConsumePlan& plan) {
  std::vector<uint64_t> seqs;
  for (const auto& r : plan.apply) seqs.push_back(r.seq);
  return seqs;
}

}  // namespace

TEST_CASE("plan: foreign batches apply in order and the position follows", "[consume_plan]") {
  Fixture f;
  ConsumePlanner planner(0);
  auto plan = planner.plan(of({message(1, books(kOtherNode, 1)), message(2, books(3, 1)),
                               message(3, books(kOtherNode, 2))}),
                           f.in);
  CHECK(applied_seqs(plan) == std::vector<uint64_t>{1, 2, 3});
  CHECK(plan.apply[1].batch.origin_node == 3);
  CHECK(plan.position == 3);
  CHECK(plan.last_seen == 3);
  CHECK(plan.writes());
  CHECK_FALSE(plan.gap);
  CHECK(plan.deferred.empty());
  CHECK(planner.last_seen() == 3);
}

TEST_CASE("plan: this node's own batches are skipped as echoes", "[consume_plan]") {
  Fixture f;
  ConsumePlanner planner(0);
  SECTION("an id this node issued: skipped, the position still moves") {
    auto plan = planner.plan(of({message(1, books(kThisNode, kNextOwnBatchId - 1))}), f.in);
    CHECK(plan.skipped_own == 1);
    CHECK(plan.apply.empty());
    CHECK_FALSE(plan.writes());
    CHECK(plan.position == 1);
    CHECK(plan.warnings.empty());
  }
  SECTION("an id this node never issued: forged, applied like a foreign batch, with a warning") {
    auto plan = planner.plan(of({message(1, books(kThisNode, kNextOwnBatchId))}), f.in);
    CHECK(plan.skipped_own == 0);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{1});
    REQUIRE(plan.warnings.size() == 1);
    CHECK(plan.warnings[0].find("never issued") != std::string::npos);
  }
  SECTION("after a snapshot restore, own batches up to apply_own_until are applied") {
    f.in.apply_own_until = 1;
    auto plan =
        planner.plan(of({message(1, books(kThisNode, 3)), message(2, books(kThisNode, 4))}), f.in);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{1});
    CHECK(plan.skipped_own == 1);
    CHECK(plan.position == 2);
  }
}

TEST_CASE("plan: redeliveries, holes and replays", "[consume_plan]") {
  Fixture f;
  ConsumePlanner planner(5);  // sequences up to 5 were applied
  SECTION("a redelivered sequence is ignored") {
    auto plan = planner.plan(of({message(4, books(kOtherNode, 4)), message(5, books(kOtherNode, 5)),
                                 message(6, books(kOtherNode, 6))}),
                             f.in);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{6});
    CHECK(plan.position == 6);
  }
  SECTION("a hole stops the plan; what came before it is still applied") {
    auto plan = planner.plan(of({message(6, books(kOtherNode, 6)), message(9, books(kOtherNode, 9)),
                                 message(10, books(kOtherNode, 10))}),
                             f.in);
    REQUIRE(plan.gap);
    CHECK(plan.gap->first == 7);
    CHECK(plan.gap->last == 8);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{6});
    CHECK(plan.position == 6);
    CHECK(plan.deferred.empty());  // nothing after a hole is read again
  }
  SECTION("with anti-entropy on, a hole is read past and reported for the gap to repair") {
    f.in.skip_gaps = true;
    auto plan = planner.plan(of({message(6, books(kOtherNode, 6)), message(9, books(kOtherNode, 9)),
                                 message(12, books(kOtherNode, 12))}),
                             f.in);
    CHECK_FALSE(plan.gap);
    REQUIRE(plan.skipped_gaps.size() == 2);
    CHECK(plan.skipped_gaps[0].first == 7);
    CHECK(plan.skipped_gaps[0].last == 8);
    CHECK(plan.skipped_gaps[1].first == 10);
    CHECK(plan.skipped_gaps[1].last == 11);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{6, 9, 12});
    CHECK(plan.position == 12);
  }
  SECTION("with anti-entropy on, a batch cut by a hole does not pin the position") {
    f.in.skip_gaps = true;
    auto cut = parts(6, books(kOtherNode, 6, 20), 3);  // sequences 6, 7, 8; 7 and 8 trimmed
    auto plan = planner.plan(of({cut[0], message(9, books(kOtherNode, 9))}), f.in);
    REQUIRE(plan.skipped_gaps.size() == 1);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{9});
    CHECK(plan.position == 9);
  }
  SECTION("a replay at or below the position is applied without moving the position") {
    IncomingMessage replay = message(3, books(kOtherNode, 3));
    replay.replay = true;
    auto plan = planner.plan(of({replay}), f.in);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{3});
    CHECK(plan.position == 5);
    CHECK(plan.last_seen == 5);
  }
  SECTION("a replayed part neither completes nor supersedes an in-order batch") {
    auto in_order = parts(6, books(kOtherNode, 6), 2);
    auto replayed = parts(4, books(kOtherNode, 6), 2);
    replayed[1].replay = true;
    auto plan = planner.plan(of({in_order[0], replayed[1]}), f.in);
    CHECK(plan.apply.empty());
    CHECK(plan.position == 5);  // the in-order batch is still open at 6
    plan = planner.plan(of({in_order[1]}), f.in);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{7});
    CHECK(plan.position == 7);
  }
  SECTION("after a restart the same sequences are read again") {
    planner.plan(of({message(6, books(kOtherNode, 6))}), f.in);
    planner.restart(5);
    auto plan = planner.plan(of({message(6, books(kOtherNode, 6))}), f.in);
    CHECK(applied_seqs(plan) == std::vector<uint64_t>{6});
  }
}

TEST_CASE("plan: one transaction holds at most max_rows_per_txn rows", "[consume_plan]") {
  Fixture f;
  f.in.max_rows_per_txn = 4;
  ConsumePlanner planner(0);
  // The bound is checked before each batch: the batch that crosses it is still taken whole.
  auto plan =
      planner.plan(of({message(1, books(kOtherNode, 1, 3)), message(2, books(kOtherNode, 2, 3)),
                       message(3, books(kOtherNode, 3, 1)), message(4, books(kOtherNode, 4, 1))}),
                   f.in);
  CHECK(applied_seqs(plan) == std::vector<uint64_t>{1, 2});
  CHECK(plan.position == 2);
  REQUIRE(plan.deferred.size() == 2);
  CHECK(plan.deferred[0].stream_seq == 3);
  CHECK(plan.deferred[1].stream_seq == 4);
  plan = planner.plan(std::move(plan.deferred), f.in);
  CHECK(applied_seqs(plan) == std::vector<uint64_t>{3, 4});
  CHECK(plan.position == 4);
}

TEST_CASE("plan: a schema hash that differs from this node's never stops the stream",
          "[consume_plan]") {
  // Rows are applied by column name; what cannot be applied yet is held by the applier. A hash
  // is a claim anyone who can publish can make up (issue 14, item 6).
  Fixture f;
  ConsumePlanner planner(0);
  Batch unknown = books(kOtherNode, 3, 1, "zzz");
  unknown.tables[0].name = "Unknown";
  auto plan = planner.plan(
      of({message(1, books(kOtherNode, 1)), message(2, books(kOtherNode, 2, 1, "next")),
          message(3, unknown), message(4, books(3, 1))}),
      f.in);
  CHECK(applied_seqs(plan) == std::vector<uint64_t>{1, 2, 3, 4});
  CHECK(plan.position == 4);
  CHECK(plan.dead_letters.empty());
}

TEST_CASE("plan: bytes that cannot be applied are dead-lettered and the stream moves on",
          "[consume_plan]") {
  Fixture f;
  ConsumePlanner planner(0);
  IncomingMessage garbage{1, "1", "1", "1/1", "not a batch"};
  IncomingMessage no_headers{2, std::nullopt, std::nullopt, std::nullopt, "raw bytes"};
  IncomingMessage liar = message(3, books(kOtherNode, 3));
  liar.origin = "7";  // the body says node 1
  IncomingMessage huge{4, "1", "4", "1/1", std::string(kMaxDeadLetterPayload + 10, 'x')};
  auto plan = planner.plan(of({garbage, no_headers, liar, huge, message(5, books(3, 1))}), f.in);
  REQUIRE(plan.dead_letters.size() == 4);
  CHECK(plan.dead_letters[0].seq == 1);
  CHECK(plan.dead_letters[0].origin == 1);
  CHECK(plan.dead_letters[0].payload == "not a batch");
  CHECK(plan.dead_letters[1].seq == 2);
  CHECK(plan.dead_letters[1].origin == 0);
  CHECK(plan.dead_letters[1].reason.find("missing Harmony-Origin") != std::string::npos);
  CHECK(plan.dead_letters[2].reason.find("body says origin 1 but headers say 7") !=
        std::string::npos);
  CHECK(plan.dead_letters[3].payload.size() == kMaxDeadLetterPayload);
  CHECK(applied_seqs(plan) == std::vector<uint64_t>{5});
  CHECK(plan.position == 5);
  CHECK(plan.writes());
}

TEST_CASE("plan: the position never passes an incomplete multi-part batch", "[consume_plan]") {
  Fixture f;
  ConsumePlanner planner(0);
  auto big = parts(1, books(kOtherNode, 1, 20), 3);
  auto plan = planner.plan(of({big[0], big[1], message(3, books(3, 1))}), f.in);
  CHECK(applied_seqs(plan) == std::vector<uint64_t>{3});
  CHECK(plan.position == 0);  // parts 1 and 2 are needed again after a restart
  CHECK(plan.last_seen == 3);
  big[2].stream_seq = 4;
  plan = planner.plan(of({big[2]}), f.in);
  REQUIRE(applied_seqs(plan) == std::vector<uint64_t>{4});
  CHECK(plan.apply[0].first_seq == 1);
  CHECK(plan.apply[0].batch.rows.size() == 20);
  CHECK(plan.position == 4);
}
