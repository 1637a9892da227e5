// The consumer's held-row counts (replicator/receive/consumer.cpp): kept from what storing,
// retrying and forgetting return instead of counted per transaction, so they must stay exactly
// what __harmony_held holds across every change - rows held, some released by an ALTER, one
// entry dropped by -drop-held while the consumer runs, more held, a restart.
#include <catch2/catch.hpp>

#include "replicator/ops/held_command.hpp"
#include "replicator/receive/consumer.hpp"
#include "replicator/wire/codec.hpp"
#include "shared/capture.hpp"
#include "shared/held.hpp"
#include "shared/hlc.hpp"
#include "tests/support/db_fixture.hpp"
#include "tests/support/fake_stream.hpp"
#include "tests/support/runner.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// One row of `table` with `columns` (the first is the key `id`).
Batch one_row(uint64_t batch_id, const std::string& table, std::vector<std::string> columns,
              std::vector<Value> values) {
  Batch b;
  b.origin_node = 9;
  b.batch_id = batch_id;
  b.tables.push_back({table, "", std::move(columns), {"id"}, 0});
  b.rows.push_back({0, hlc_from_ms(wall_clock_ms()), false, {values[0]}, std::move(values)});
  return b;
}

void append(FakeStream& s, const Batch& b) {
  s.append(IncomingMessage{0, std::to_string(b.origin_node), std::to_string(b.batch_id), "1/1",
                           encode_batch(b, true)});
}

Batch rated(uint64_t batch_id, int64_t id, size_t title_bytes) {
  return one_row(batch_id, "Books", {"id", "title", "rating"},
                 {id, Text{std::string(title_bytes, 'x')}, id});
}

int64_t position(const std::string& db) {
  return query_int(db, "SELECT coalesce(max(seq), 0) FROM __harmony_positions WHERE stream='s-1'");
}

// The stream's figures as the consumer reports them equal a full count of the table.
bool counts_exact(ReplicatorStats& stats, const std::string& db) {
  Db d = Db::open(db);
  const HeldSummary table = held_summary(d, "s-1");
  const StreamProgress p = stats.streams()["s-1"];
  return p.held_rows == table.rows && p.held_bytes == table.bytes &&
         p.held_since_ms == table.oldest_at_ms && p.held_reason == table.oldest_reason;
}

}  // namespace

TEST_CASE("held counts stay exact across store, retry, drop and restart", "[held][consumer]") {
  TempDir dir("held");
  auto b = make_captured_db(dir, "b.db", 2);
  FakeStream stream;
  append(stream, rated(1, 1, 100));
  append(stream, rated(2, 2, 5000));
  append(stream, one_row(3, "Later", {"id", "v"}, {int64_t{1}, Text{"waits for a table"}}));
  append(stream, rated(4, 3, 20));
  ReplicatorStats stats;
  const auto exact = [&] { return counts_exact(stats, b); };
  {
    FakeSource source(stream);
    ConsumerOptions o = fake_consumer_options(b, 2);
    o.max_rows_per_txn = 1;  // a transaction per batch: the counts move step by step
    Consumer con(o, source, stats);
    Runner rc([&](auto& stop) { con.run(stop); });
    REQUIRE(wait_until([&] { return position(b) == 4; }, 5s));
    REQUIRE(wait_until(exact, 5s));
    CHECK(stats.streams()["s-1"].held_rows == 4);
    CHECK(stats.streams()["s-1"].held_bytes > 0);

    // The ALTER releases the three Books rows; the one for table Later still waits.
    REQUIRE(sqlite_shell(b, "ALTER TABLE Books ADD COLUMN rating INTEGER").exit_code == 0);
    REQUIRE(wait_until([&] { return stats.streams()["s-1"].held_rows == 1; }, 10s));
    CHECK(exact());
    CHECK(stats.streams()["s-1"].held_reason.find("Later") != std::string::npos);

    // More held while one is there, then -drop-held of the oldest while the consumer runs.
    append(stream, one_row(5, "Later", {"id", "v"}, {int64_t{2}, Text{"second"}}));
    REQUIRE(wait_until([&] { return stats.streams()["s-1"].held_rows == 2; }, 5s));
    CHECK(exact());
    Config cfg;
    cfg.db_path = b;
    const int64_t oldest = query_int(b, "SELECT min(id) FROM __harmony_held");
    REQUIRE(run_drop_held(cfg, std::to_string(oldest)) == 0);
    REQUIRE(wait_until([&] { return stats.streams()["s-1"].held_rows == 1; }, 10s));
    CHECK(exact());
  }
  // A restart counts the table again: the same figures.
  ReplicatorStats fresh;
  FakeSource source(stream);
  Consumer con(fake_consumer_options(b, 2), source, fresh);
  Runner rc([&](auto& stop) { con.run(stop); });
  REQUIRE(
      wait_until([&] { return position(b) == 5 && fresh.streams()["s-1"].held_rows == 1; }, 5s));
  CHECK(counts_exact(fresh, b));
  // The table appears: nothing held, the counts say so.
  REQUIRE(sqlite_shell(b, "CREATE TABLE Later (id INTEGER PRIMARY KEY, v TEXT)").exit_code == 0);
  {
    Db db = Db::open(b);
    enable_table(db, "Later");
  }
  REQUIRE(wait_until([&] { return fresh.streams()["s-1"].held_rows == 0; }, 10s));
  CHECK(counts_exact(fresh, b));
  CHECK(fresh.streams()["s-1"].held_bytes == 0);
  CHECK(query_text(b, "SELECT v FROM Later") == "second");
}
