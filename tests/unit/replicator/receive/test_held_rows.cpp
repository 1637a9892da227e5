// Rows from another schema version through a real consumer (fake stream, real SQLite files):
// rows that need a column this node does not have yet are held - the stream moves on, nothing
// is dead-lettered - and applied by themselves after the local ALTER; a restart keeps them;
// values of a column this node dropped are left out; a hash is no reason to stop; held rows of
// large values stop the reader at max_held_bytes (and a hidden [bench] case times a batch with
// 100k rows held).
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>

#include "replicator/common/schema_guard.hpp"
#include "replicator/config/config.hpp"
#include "replicator/node/node_options.hpp"
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

// `n` bytes of text zstd cannot shrink much (held payloads are stored compressed): 90 symbols
// from a xorshift generator.
std::string noise(size_t n, uint32_t seed) {
  std::string out(n, ' ');
  uint32_t x = seed * 2654435761u + 1;
  for (auto& c : out) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>('!' + x % 90);
  }
  return out;
}

// A consumer of stream s-1 on `db` configured as a config file with `toml` would configure it.
ConsumerOptions options_from_config(const std::string& db, uint64_t node, const std::string& toml) {
  std::vector<std::string> warnings;
  const Config cfg = parse_config_text(toml, "held.toml", warnings);
  for (const auto& w : warnings) FAIL_CHECK(w);
  static std::atomic<uint64_t> generation{0};
  ConsumerOptions o = consumer_options(cfg, 1, node, generation);
  o.db_path = db;
  o.stream = "s-1";
  o.schema_generation = nullptr;
  return o;
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

TEST_CASE("held rows of large values stop the reader at max_held_bytes, raising it resumes",
          "[held][pipeline]") {
  TempDir dir("held");
  auto b = make_db(dir, "b.db", 2);
  FakeStream stream;
  const std::vector<std::string> with_rating{"id", "title", "author", "publication_year", "rating"};
  // Eight rows of 800 KB each that need a column this node lacks: held, far below the row bound.
  constexpr int kRows = 8;
  constexpr size_t kValueBytes = 800'000;
  for (int i = 1; i <= kRows; ++i)
    append(stream, books_batch(9, static_cast<uint64_t>(i), "newer", with_rating,
                               {int64_t{i}, Text{noise(kValueBytes, static_cast<uint32_t>(i))},
                                Null{}, Null{}, int64_t{i}}));
  // One batch per transaction, so the bound is looked at between them.
  const std::string common = "apply_batch_rows = 1\nmax_held_rows = 1000000\n";
  constexpr int64_t kBound = 1'500'000;  // about two of the rows, compressed
  ReplicatorStats stats;
  {
    FakeSource source(stream);
    Consumer con(options_from_config(b, 2, common + fmt::format("max_held_bytes = {}\n", kBound)),
                 source, stats);
    Runner rc([&](auto& stop) { con.run(stop); });
    REQUIRE(wait_until([&] { return stats.streams()["s-1"].paused || position(b) == kRows; }, 10s));
    INFO("position " << position(b) << ", held bytes "
                     << query_int(b, "SELECT sum(length(payload)) FROM __harmony_held"));
    CHECK(stats.streams()["s-1"].paused);
    CHECK(position(b) < kRows);
    CHECK(stats.streams()["s-1"].pause_reason.find("max_held_bytes") != std::string::npos);
    // It stopped at the bound: what is held reaches it, and did not before the last one.
    const int64_t held_bytes = query_int(b, "SELECT sum(length(payload)) FROM __harmony_held");
    CHECK(held_bytes >= kBound);
    CHECK(held_bytes - query_int(b,
                                 "SELECT length(payload) FROM __harmony_held ORDER BY id DESC "
                                 "LIMIT 1") <
          kBound);
    CHECK(query_int(b, "SELECT count(*) FROM __harmony_held") == position(b));
  }
  // Raised (a restart with the new config): the stream reads on; the ALTER releases every row.
  FakeSource source(stream);
  Consumer con(options_from_config(b, 2, common + "max_held_bytes = 67108864\n"), source, stats);
  Runner rc([&](auto& stop) { con.run(stop); });
  REQUIRE(wait_until([&] { return position(b) == kRows; }, 10s));
  CHECK_FALSE(stats.streams()["s-1"].paused);
  CHECK(query_int(b, "SELECT sum(row_count) FROM __harmony_held") == kRows);
  REQUIRE(sqlite_shell(b, "ALTER TABLE Books ADD COLUMN rating INTEGER").exit_code == 0);
  REQUIRE(wait_until(
      [&] { return query_int(b, "SELECT count(*) FROM Books WHERE rating IS NOT NULL") == kRows; },
      10s));
  CHECK(query_int(b, "SELECT count(*) FROM Books WHERE length(title) = 800000") == kRows);
  CHECK(query_text(b, "SELECT title FROM Books WHERE id = 3") == noise(kValueBytes, 3));
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_held") == 0);
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_dead_letters") == 0);
}

// Not a test: the cost of a transaction that holds a row while 100k rows are already held (the
// held count used to be a COUNT over __harmony_held after each such transaction). Run with
// `unit_tests "[bench]"`; prints ms per batch.
TEST_CASE("bench: a held row per batch with 100k rows already held", "[.][bench][held]") {
  TempDir dir("held");
  auto b = make_db(dir, "b.db", 2);
  const std::vector<std::string> with_rating{"id", "title", "author", "publication_year", "rating"};
  {
    // 100k copies of one real held entry (so a retry round could read them back).
    Batch one = books_batch(9, 1, "newer", with_rating,
                            {int64_t{1}, Text{"held"}, Null{}, Null{}, int64_t{1}});
    Db db = Db::open(b);
    Transaction tx(db);
    auto ins = db.prepare(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
        "INSERT INTO __harmony_held(at_ms, stream, seq, origin_node, batch_id, table_name, kind, "
        "reason, row_count, attempts, payload) SELECT ?1, 's-1', 0, 9, 1, 'Books', 'column', "
        "'column \"rating\" does not exist on this node', 1, 0, ?2 FROM n");
    ins.bind(1, wall_clock_ms()).bind(2, Value{Blob{encode_batch(one, true)}});
    ins.run();
    tx.commit();
  }
  constexpr int kBatches = 300;
  FakeStream stream;
  for (int i = 1; i <= kBatches; ++i)
    append(stream, books_batch(9, static_cast<uint64_t>(i + 1), "newer", with_rating,
                               {int64_t{i}, Text{"t"}, Null{}, Null{}, int64_t{i}}));
  ReplicatorStats stats;
  FakeSource source(stream);
  ConsumerOptions o = fake_consumer_options(b, 2);
  o.max_rows_per_txn = 1;  // one batch, one transaction
  Consumer con(o, source, stats);
  const auto started = std::chrono::steady_clock::now();
  Runner rc([&](auto& stop) { con.run(stop); });
  REQUIRE(wait_until([&] { return position(b) == kBatches; }, 120s));
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  WARN(
      fmt::format("{} batches, each holding a row, with 100k rows held: {:.0f} ms, {:.2f} ms "
                  "per batch",
                  kBatches, ms, ms / kBatches));
}
