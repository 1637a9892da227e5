// Schema versioning: hashes and previous hashes in __harmony_meta, the apply/pause rule for a
// received batch, and a consumer that pauses on a mismatch without applying, acknowledging or
// dropping anything, survives a restart while paused, and resumes by itself after local DDL.
#include <catch2/catch.hpp>

#include "replicator/common/schema_guard.hpp"
#include "replicator/wire/codec.hpp"
#include "shared/capture.hpp"
#include "shared/hlc.hpp"
#include "tests/support/db_fixture.hpp"
#include "tests/support/fake_stream.hpp"
#include "tests/support/runner.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// A database with capture on Books and its hashes recorded, as the replicator leaves it after
// start-up.
std::string make_db(const TempDir& dir, const std::string& name, uint64_t node) {
  std::string path = make_captured_db(dir, name, node);
  Db db = Db::open(path);
  record_schema_hashes(db, captured_tables(db));
  return path;
}

std::string books_hash(const std::string& path) {
  Db db = Db::open(path);
  return describe_table(db, "Books").schema_hash();
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

}  // namespace

TEST_CASE("schema hashes: columns, types and key count, previous hashes are remembered",
          "[schema]") {
  TempDir dir("schema");
  auto path = make_db(dir, "a.db", 1);
  Db db = Db::open(path);
  const std::string h0 = describe_table(db, "Books").schema_hash();
  CHECK(recorded_schema_hashes(db).at("books") == h0);
  CHECK(recorded_previous_hashes(db).empty());
  // Indexes and row data do not change the hash; columns do.
  db.exec("CREATE INDEX books_title ON Books(title); INSERT INTO Books VALUES (1,'a','b',1)");
  CHECK(describe_table(db, "Books").schema_hash() == h0);
  db.exec("ALTER TABLE Books ADD COLUMN rating INTEGER");
  const std::string h1 = describe_table(db, "Books").schema_hash();
  CHECK(h1 != h0);

  // Before anyone recorded the change, the recorded hash already counts as previous.
  auto local = LocalSchema::load(db);
  REQUIRE(local.find("BOOKS"));
  CHECK(local.find("books")->hash == h1);
  CHECK(local.find("Books")->previous == std::vector<std::string>{h0});

  std::vector<std::string> changed;
  {
    Transaction tx(db);
    changed = record_schema_hashes(db, captured_tables(db));
    tx.commit();
  }
  CHECK(changed == std::vector<std::string>{"Books"});
  CHECK(recorded_previous_hashes(db).at("books") == std::vector<std::string>{h0});
  {
    Transaction tx(db);
    CHECK(record_schema_hashes(db, captured_tables(db)).empty());  // nothing new
    tx.commit();
  }
  db.exec("ALTER TABLE Books ADD COLUMN isbn TEXT");
  const std::string h2 = describe_table(db, "Books").schema_hash();
  {
    Transaction tx(db);
    record_schema_hashes(db, captured_tables(db));
    tx.commit();
  }
  local = LocalSchema::load(db);
  CHECK(local.find("Books")->hash == h2);
  CHECK(local.find("Books")->previous == std::vector<std::string>{h1, h0});
  CHECK(local.by_name().count("Books") == 1);
}

TEST_CASE("which batches apply: empty hash, unknown table, current or previous hash", "[schema]") {
  LocalSchema local;
  local.tables["books"] = {"cur", {"prev1", "prev0"}};
  auto batch = [](std::string table, std::string hash) {
    Batch b;
    b.tables.push_back({std::move(table), std::move(hash), {"id"}, {"id"}, 0});
    return b;
  };
  CHECK_FALSE(check_batch_schema(batch("Books", ""), local));       // no claim
  CHECK_FALSE(check_batch_schema(batch("Books", "cur"), local));    // same schema
  CHECK_FALSE(check_batch_schema(batch("BOOKS", "prev1"), local));  // sender not upgraded yet
  CHECK_FALSE(check_batch_schema(batch("Books", "prev0"), local));
  CHECK_FALSE(check_batch_schema(batch("Unknown", "zzz"), local));  // dead letter, not a pause
  auto m = check_batch_schema(batch("Books", "next"), local);
  REQUIRE(m);
  CHECK(m->table == "Books");
  CHECK(m->incoming == "next");
  CHECK(m->local == "cur");
  const std::string text = m->describe(4, 17);
  CHECK(text.find("batch 17 from node 4 has schema next") != std::string::npos);
  CHECK(text.find("this node has cur (previously prev1, prev0)") != std::string::npos);
  // One bad table pauses the whole batch (it is applied whole or not at all).
  Batch two = batch("Books", "cur");
  two.tables.push_back({"Books", "next", {"id"}, {"id"}, 0});
  CHECK(check_batch_schema(two, local));
}

TEST_CASE("a schema mismatch pauses the stream without loss and resumes after local DDL",
          "[schema][pipeline]") {
  TempDir dir("schema");
  auto a = make_db(dir, "a.db", 1), b = make_db(dir, "b.db", 2);
  const std::string old_hash = books_hash(b);
  FakeStream stream;
  FakeTransport transport(stream);
  ReplicatorStats stats_a, stats_b;
  Publisher pub(fake_publisher_options(a, 1), transport, stats_a);
  Runner rp([&](auto& stop) { pub.run(stop); });

  // A raw batch without a hash applies when its columns fit.
  append(stream, books_batch(9, 1, "", {"id", "title"}, {int64_t{100}, Text{"no claim"}}));
  REQUIRE(sqlite_shell(a, "INSERT INTO Books(id, title) VALUES (1, 'before')").exit_code == 0);
  REQUIRE(wait_until([&] { return stream.size() == 2; }, 5s));

  // Node a upgrades while its publisher runs: capture follows, the new column travels.
  REQUIRE(sqlite_shell(a, "ALTER TABLE Books ADD COLUMN rating INTEGER").exit_code == 0);
  REQUIRE(
      sqlite_shell(a, "INSERT INTO Books(id, title, rating) VALUES (2, 'rated', 5)").exit_code ==
      0);
  REQUIRE(
      sqlite_shell(a, "INSERT INTO Books(id, title, rating) VALUES (3, 'later', 4)").exit_code ==
      0);
  REQUIRE(wait_until(
      [&] { return query_int(a, "SELECT count(*) FROM __harmony_rows_1 WHERE dirty") == 0; }, 5s));
  const uint64_t last = stream.size();
  CHECK(last >= 3);
  CHECK(pub.schema_generation() > 0);
  CHECK(stats_a.schema().at("Books").previous.at(0) == old_hash);

  {
    FakeSource source(stream);
    Consumer con(fake_consumer_options(b, 2), source, stats_b);
    Runner rc([&](auto& stop) { con.run(stop); });
    REQUIRE(wait_until([&] { return stats_b.streams()["s-1"].paused; }, 5s));
    // The consumer marks the pause before it commits what came before the mismatch; once that
    // commit is in, it reads nothing more until the schema changes (no waiting can show more).
    REQUIRE(wait_until(
        [&] { return query_int(b, "SELECT seq FROM __harmony_positions WHERE stream='s-1'") == 2; },
        5s));
    // What came before the mismatch is applied; nothing from it on.
    CHECK(query_int(b, "SELECT count(*) FROM Books WHERE id IN (1, 100)") == 2);
    CHECK(query_int(b, "SELECT count(*) FROM Books WHERE id >= 2 AND id < 100") == 0);
    CHECK(query_int(b, "SELECT seq FROM __harmony_positions WHERE stream='s-1'") == 2);
    CHECK(query_int(b, "SELECT count(*) FROM __harmony_dead_letters") == 0);
    CHECK(stats_b.schema_pauses == 1);
    CHECK(stats_b.streams()["s-1"].pause_reason.find("table Books") != std::string::npos);
  }
  // A restart while paused waits at the same place.
  FakeSource source(stream);
  Consumer con(fake_consumer_options(b, 2), source, stats_b);
  Runner rc([&](auto& stop) { con.run(stop); });
  REQUIRE(wait_until([&] { return stats_b.schema_pauses == 2; }, 5s));
  CHECK(query_int(b, "SELECT count(*) FROM Books WHERE id >= 2 AND id < 100") == 0);
  CHECK(query_int(b, "SELECT seq FROM __harmony_positions WHERE stream='s-1'") == 2);

  // The operator applies the same DDL on b (no publisher runs on b: PRAGMA schema_version is
  // what the paused consumer notices).
  REQUIRE(sqlite_shell(b, "ALTER TABLE Books ADD COLUMN rating INTEGER").exit_code == 0);
  REQUIRE(wait_until(
      [&] { return query_int(b, "SELECT count(*) FROM Books WHERE id IN (2, 3)") == 2; }, 5s));
  CHECK(query_int(b, "SELECT rating FROM Books WHERE id=2") == 5);
  CHECK(query_int(b, "SELECT rating FROM Books WHERE id=3") == 4);
  REQUIRE(wait_until([&] { return !stats_b.streams()["s-1"].paused; }, 5s));
  REQUIRE(wait_until(
      [&] {
        return query_int(b, "SELECT seq FROM __harmony_positions WHERE stream='s-1'") ==
               static_cast<int64_t>(last);
      },
      5s));

  // Rolling upgrade, the other way: a node still on the old schema sends the old hash; b has
  // it as its previous hash and applies it.
  append(stream, books_batch(9, 2, old_hash, {"id", "title", "author", "publication_year"},
                             {int64_t{4}, Text{"old node"}, Null{}, Null{}}));
  REQUIRE(
      wait_until([&] { return query_int(b, "SELECT count(*) FROM Books WHERE id=4") == 1; }, 5s));
  // A raw batch without a hash but with a column b does not have: dead letter, no pause.
  append(stream, books_batch(9, 3, "", {"id", "nope"}, {int64_t{5}, int64_t{1}}));
  REQUIRE(wait_until(
      [&] { return query_int(b, "SELECT count(*) FROM __harmony_dead_letters") == 1; }, 5s));
  CHECK_FALSE(stats_b.streams()["s-1"].paused);
  CHECK(stats_b.replication_delay.snapshot().count > 0);
  CHECK(stats_b.apply_latency.snapshot().count > 0);
  CHECK(stats_a.publish_latency.snapshot().count > 0);
}
