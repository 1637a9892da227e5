// Comparing what a node read with the stream leader's copy (replicator/receive/stream_audit.hpp),
// and the consumer applying the leader's message at a sequence it had already passed.
#include <catch2/catch.hpp>

#include <map>
#include <thread>

#include "replicator/receive/stream_audit.hpp"
#include "shared/capture.hpp"
#include "shared/status.hpp"
#include "tests/support/fake_stream.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;
using namespace std::chrono_literals;

namespace {

// The leader's copy of a stream: sequence -> identity ("" = gone); unavailable when told.
struct FakeLeader {
  std::map<uint64_t, std::string> ids;
  bool available = true;
  int requests = 0;
  LeaderMessage operator()(uint64_t seq) {
    ++requests;
    LeaderMessage out;
    if (!available) return out;
    auto it = ids.find(seq);
    if (it == ids.end() || it->second.empty()) {
      out.status = LeaderMessage::Status::Gone;
      return out;
    }
    out.status = LeaderMessage::Status::Found;
    out.identity = it->second;
    out.message.payload = "leader's " + it->second;
    return out;
  }
};

std::string id(uint64_t seq) {
  return "1-" + std::to_string(seq) + "-1";
}

}  // namespace

TEST_CASE("stream audit: what was read is checked against the leader", "[audit]") {
  const auto t0 = StreamAudit::Clock::now();
  StreamAudit audit;
  FakeLeader leader;
  for (uint64_t seq = 1; seq <= 10; ++seq) {
    audit.record(seq, id(seq), 100);
    leader.ids[seq] = id(seq);
  }
  AuditCounters counters;

  SECTION("the same history: nothing to re-apply, each message checked once") {
    auto fetch = std::ref(leader);
    CHECK(audit.run(t0, fetch, counters).empty());
    CHECK(counters.checked == 10);
    CHECK(counters.mismatched == 0);
    CHECK_FALSE(audit.due(t0 + 1s));
    CHECK(audit.run(t0 + 6s, fetch, counters).empty());
    CHECK(leader.requests == 10);  // nothing new was read: nothing asked again
  }

  SECTION("a different message at a sequence: the leader's comes back as a replay") {
    leader.ids[7] = "2-44-1";
    auto out = audit.run(t0, std::ref(leader), counters);
    REQUIRE(out.size() == 1);
    CHECK(out[0].stream_seq == 7);
    CHECK(out[0].replay);
    CHECK(out[0].payload == "leader's 2-44-1");
    CHECK(counters.mismatched == 1);
    // Checked again in full later (the replica may still be settling), with the leader's
    // message now recorded as the one applied.
    const int before = leader.requests;
    CHECK(audit.run(t0 + 21s, std::ref(leader), counters).empty());
    CHECK(leader.requests - before == 10);
  }

  SECTION("several differences come back in sequence order") {
    leader.ids[3] = "3-1-1";
    leader.ids[9] = "3-2-1";
    auto out = audit.run(t0, std::ref(leader), counters);
    REQUIRE(out.size() == 2);
    CHECK(out[0].stream_seq == 3);
    CHECK(out[1].stream_seq == 9);
  }

  SECTION("messages gone from the leader (retention) are not re-applied") {
    leader.ids[4] = "";
    CHECK(audit.run(t0, std::ref(leader), counters).empty());
    CHECK(counters.checked == 9);
  }

  SECTION("no leader: the check stops and is retried at the next tick") {
    leader.available = false;
    CHECK(audit.run(t0, std::ref(leader), counters).empty());
    CHECK(leader.requests == 1);
    CHECK(audit.unverified() == 10);
    leader.available = true;
    CHECK_FALSE(audit.due(t0 + 1s));
    CHECK(audit.run(t0 + 6s, std::ref(leader), counters).empty());
    CHECK(audit.unverified() == 0);
  }

  SECTION("the routine check has a budget per tick, newest first") {
    StreamAudit::Limits limits;
    limits.tick_budget = 4;
    StreamAudit small(limits);
    for (uint64_t seq = 1; seq <= 10; ++seq) small.record(seq, id(seq), 100);
    small.run(t0, std::ref(leader), counters);
    CHECK(small.unverified() == 6);
    leader.ids[2] = "9-9-1";  // an old difference is found once the budget reaches it
    small.run(t0 + 6s, std::ref(leader), counters);
    auto out = small.run(t0 + 12s, std::ref(leader), counters);
    REQUIRE(out.size() == 1);
    CHECK(out[0].stream_seq == 2);
  }

  SECTION("after a suspicious event everything is checked again, twice") {
    audit.run(t0, std::ref(leader), counters);
    audit.suspect(t0 + 1s);
    CHECK_FALSE(audit.due(t0 + 2s));
    CHECK(audit.due(t0 + 4s));
    leader.ids[1] = "changed-1";  // an old message the routine check had passed already
    auto out = audit.run(t0 + 4s, std::ref(leader), counters);
    REQUIRE(out.size() == 1);
    CHECK(out[0].stream_seq == 1);
    const int before = leader.requests;
    audit.run(t0 + 22s, std::ref(leader), counters);
    CHECK(leader.requests - before == 10);
  }

  SECTION("the same sequence delivered again with another message: checked at once") {
    audit.run(t0, std::ref(leader), counters);
    audit.record(5, "other", 100);  // a consumer reset served a different message at 5
    CHECK(audit.due(t0 + 1s));
    leader.ids[5] = "other";  // ... which is the leader's: what was applied at 5 was not
    auto out = audit.run(t0 + 1s, std::ref(leader), counters);
    REQUIRE(out.size() == 1);
    CHECK(out[0].stream_seq == 5);
  }

  SECTION("the window is bounded by messages and bytes") {
    StreamAudit::Limits limits;
    limits.max_entries = 4;
    StreamAudit by_count(limits);
    for (uint64_t seq = 1; seq <= 10; ++seq) by_count.record(seq, id(seq), 100);
    CHECK(by_count.window() == 4);
    limits.max_entries = 100;
    limits.max_bytes = 250;
    StreamAudit by_bytes(limits);
    for (uint64_t seq = 1; seq <= 10; ++seq) by_bytes.record(seq, id(seq), 100);
    CHECK(by_bytes.window() == 2);
  }
}

TEST_CASE("stream audit: a message's identity", "[audit]") {
  CHECK(StreamAudit::identity(std::string("1-2-1"), "x") == "1-2-1");
  // Without a Nats-Msg-Id (a raw publisher) the payload identifies it.
  CHECK(StreamAudit::identity(std::nullopt, "abc") == StreamAudit::identity(std::nullopt, "abc"));
  CHECK(StreamAudit::identity(std::nullopt, "abc") != StreamAudit::identity(std::nullopt, "abd"));
}

namespace {

// Reads one stream (a diverged replica); once it is exhausted, hands out queued replays (the
// leader's messages, as JetStreamSource does after an audit).
class ReplayingSource : public MessageSource {
 public:
  explicit ReplayingSource(FakeStream& replica) : inner_(replica) {}
  void start(uint64_t start_seq) override { inner_.start(start_seq); }
  std::optional<IncomingMessage> next(std::chrono::milliseconds timeout) override {
    if (auto m = inner_.next(timeout)) return m;
    std::lock_guard<std::mutex> lock(mu_);
    if (replays_.empty()) return std::nullopt;
    IncomingMessage m = std::move(replays_.front());
    replays_.pop_front();
    return m;
  }
  void stop() override {}
  void replay(IncomingMessage m) {
    std::lock_guard<std::mutex> lock(mu_);
    replays_.push_back(std::move(m));
  }

 private:
  FakeSource inner_;
  std::mutex mu_;
  std::deque<IncomingMessage> replays_;
};

}  // namespace

TEST_CASE("the consumer applies the leader's message at a sequence it already passed",
          "[audit][pipeline]") {
  TempDir dir("audit");
  auto make = [&](const std::string& name, uint64_t node) {
    std::string path = dir.file(name);
    Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL; CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT)");
    ensure_base_schema(db);
    set_node_id(db, node);
    enable_table(db, "Books");
    return path;
  };
  const auto a = make("a.db", 1), b = make("b.db", 2);
  FakeStream leader_copy;
  FakeTransport transport(leader_copy);
  ReplicatorStats stats_a, stats_b;
  Publisher pub(fake_publisher_options(a, 1), transport, stats_a);
  std::atomic<bool> stop_pub{false};
  std::thread tp([&] { pub.run(stop_pub); });
  REQUIRE(sqlite_shell(a, "INSERT INTO Books VALUES (1, 'one')").exit_code == 0);
  REQUIRE(wait_until([&] { return leader_copy.size() == 1; }, 5s));
  REQUIRE(sqlite_shell(a, "INSERT INTO Books VALUES (2, 'two')").exit_code == 0);
  REQUIRE(wait_until([&] { return leader_copy.size() == 2; }, 5s));
  stop_pub = true;
  tp.join();

  // The replica this node reads forked: at sequence 2 it holds a copy of message 1.
  const auto messages = leader_copy.snapshot();
  FakeStream replica;
  replica.append(messages[0]);
  replica.append(messages[0]);
  ReplayingSource source(replica);
  Consumer con(fake_consumer_options(b, 2), source, stats_b);
  std::atomic<bool> stop_con{false};
  std::thread tc([&] { con.run(stop_con); });
  auto rows = [&] {
    Db d = Db::open(b);
    d.set_busy_timeout(5000);  // the consumer may be writing
    return d.query_int("SELECT count(*) FROM Books");
  };
  REQUIRE(wait_until([&] { return con.position() == 2; }, 5s));
  CHECK(rows() == 1);  // 'two' never reached this node

  IncomingMessage fix = messages[1];
  fix.stream_seq = 2;
  fix.replay = true;
  source.replay(fix);
  const bool repaired = wait_until([&] { return rows() == 2; }, 5s);
  stop_con = true;
  tc.join();
  CHECK(repaired);
  CHECK(con.position() == 2);
  CHECK(Db::open(b).query_int("SELECT seq FROM __harmony_positions WHERE stream='s-1'") == 2);
}

TEST_CASE("stream audit: its cost is counted in leader reads and bytes", "[audit]") {
  const auto t0 = StreamAudit::Clock::now();
  StreamAudit audit;
  FakeLeader leader;
  for (uint64_t seq = 1; seq <= 4; ++seq) {
    audit.record(seq, id(seq), 100);
    leader.ids[seq] = id(seq);
  }
  leader.ids[4] = "";  // trimmed: asked, but nothing comes back
  AuditCounters counters;
  CHECK(audit.run(t0, std::ref(leader), counters).empty());
  CHECK(counters.leader_reads == 4);
  CHECK(counters.checked == 3);
  // "leader's 1-N-1": 14 bytes each, from the three found.
  CHECK(counters.leader_bytes == 3 * std::string("leader's 1-1-1").size());
  leader.available = false;
  audit.suspect(t0);
  audit.run(t0 + 3s, std::ref(leader), counters);
  CHECK(counters.leader_reads == 5);  // the unanswered request counts; the check stops there
  CHECK(counters.leader_bytes == 3 * std::string("leader's 1-1-1").size());
}
