// Rows from another schema version through a real consumer (fake stream, real SQLite files):
// rows that need a column this node does not have yet are held - the stream moves on, nothing
// is dead-lettered - and applied by themselves after the local ALTER; a restart keeps them;
// values of a column this node dropped are left out; a hash is no reason to stop.
#include <catch2/catch.hpp>

#include "replicator/common/schema_guard.hpp"
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

std::string make_db(const TempDir& dir, const std::string& name, uint64_t node) {
  std::string path = make_captured_db(dir, name, node);
  Db db = Db::open(path);
  record_schema_hashes(db, captured_tables(db));
  return path;
}

Batch books_batch(uint64_t origin, uint64_t id, const std::string& hash,
                  std::vector<std::string> columns, std::vector<Value> values) {
  Batch b;
  b.origin_node = origin;
  b.batch_id = id;
  b.tables.push_back({"Books", hash, std::move(columns), {"id"}, 0});
  b.rows.push_back({0, hlc_from_ms(wall_clock_ms()), false, {values[0]}, std::move(values)});
  return b;
}

void append(FakeStream& s, const Batch& b) {
  s.append(IncomingMessage{0, std::to_string(b.origin_node), std::to_string(b.batch_id), "1/1",
                           encode_batch(b, true)});
}

int64_t position(const std::string& db) {
  return query_int(db, "SELECT coalesce(max(seq), 0) FROM __harmony_positions WHERE stream='s-1'");
}

}  // namespace

TEST_CASE(
    "rows that need a column this node lacks are held, kept over a restart and applied "
    "after the local ALTER",
    "[held][pipeline]") {
  TempDir dir("held");
  auto b = make_db(dir, "b.db", 2);
  FakeStream stream;
  ReplicatorStats stats;
  const std::vector<std::string> with_rating{"id", "title", "author", "publication_year", "rating"};
  append(stream, books_batch(9, 1, "made-up-hash", {"id", "title"}, {int64_t{1}, Text{"fits"}}));
  append(stream, books_batch(9, 2, "newer", with_rating,
                             {int64_t{2}, Text{"rated"}, Null{}, Null{}, int64_t{5}}));
  append(stream, books_batch(9, 3, "newer", with_rating,
                             {int64_t{3}, Text{"later"}, Null{}, Null{}, int64_t{4}}));
  append(stream, books_batch(9, 4, "", {"id", "title"}, {int64_t{4}, Text{"after"}}));
  {
    FakeSource source(stream);
    Consumer con(fake_consumer_options(b, 2), source, stats);
    Runner rc([&](auto& stop) { con.run(stop); });
    // The stream moves on past the rows it cannot apply yet.
    REQUIRE(wait_until([&] { return position(b) == 4; }, 5s));
    CHECK(query_int(b, "SELECT count(*) FROM Books WHERE id IN (1, 4)") == 2);
    CHECK(query_int(b, "SELECT count(*) FROM Books WHERE id IN (2, 3)") == 0);
    CHECK(query_int(b, "SELECT count(*) FROM __harmony_dead_letters") == 0);
    CHECK(query_int(b, "SELECT sum(row_count) FROM __harmony_held") == 2);
    CHECK(query_text(b, "SELECT reason FROM __harmony_held ORDER BY id LIMIT 1")
              .find("column \"rating\" does not exist on this node") != std::string::npos);
    REQUIRE(wait_until([&] { return stats.streams()["s-1"].held_rows == 2; }, 5s));
    CHECK_FALSE(stats.streams()["s-1"].paused);
    CHECK(stats.rows_held == 2);
  }
  // A restart finds them again; the DDL on this node releases them (no publisher runs here:
  // PRAGMA schema_version is what the consumer notices).
  FakeSource source(stream);
  Consumer con(fake_consumer_options(b, 2), source, stats);
  Runner rc([&](auto& stop) { con.run(stop); });
  REQUIRE(sqlite_shell(b, "ALTER TABLE Books ADD COLUMN rating INTEGER").exit_code == 0);
  REQUIRE(wait_until(
      [&] { return query_int(b, "SELECT count(*) FROM Books WHERE id IN (2, 3)") == 2; }, 10s));
  CHECK(query_int(b, "SELECT rating FROM Books WHERE id=2") == 5);
  CHECK(query_int(b, "SELECT rating FROM Books WHERE id=3") == 4);
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_held") == 0);
  REQUIRE(wait_until([&] { return stats.streams()["s-1"].held_rows == 0; }, 5s));
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_dead_letters") == 0);
}

TEST_CASE("a column dropped or renamed here: values map to the new name or are left out",
          "[held][pipeline]") {
  TempDir dir("held");
  auto b = make_db(dir, "b.db", 2);
  // The consumer records the columns as they are before the DDL (as the replicator does at
  // start-up and after each DDL it sees).
  {
    Db db = Db::open(b);
    Transaction tx(db);
    record_column_history(db, captured_tables(db));
    tx.commit();
  }
  REQUIRE(sqlite_shell(b,
                       "ALTER TABLE Books DROP COLUMN publication_year; "
                       "ALTER TABLE Books RENAME COLUMN author TO writer")
              .exit_code == 0);
  FakeStream stream;
  ReplicatorStats stats;
  // A node still on the old schema sends all four columns.
  append(stream, books_batch(9, 1, "old", {"id", "title", "author", "publication_year"},
                             {int64_t{1}, Text{"Dune"}, Text{"Herbert"}, int64_t{1965}}));
  FakeSource source(stream);
  Consumer con(fake_consumer_options(b, 2), source, stats);
  Runner rc([&](auto& stop) { con.run(stop); });
  REQUIRE(wait_until([&] { return position(b) == 1; }, 5s));
  CHECK(query_text(b, "SELECT writer FROM Books WHERE id=1") == "Herbert");
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_held") == 0);
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  CHECK(stats.values_left_out == 1);
}
