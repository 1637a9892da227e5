// shared/dead_letters.cpp against a real SQLite file: what record_dead_letter stores, and that
// prune_dead_letters removes the oldest rows first by age, row count and bytes, and nothing
// while the table is within its limits.
#include <catch2/catch.hpp>

#include <string>

#include "shared/capture.hpp"
#include "shared/dead_letters.hpp"
#include "tests/support/db_fixture.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr int64_t kNow = 1'800'000'000'000;  // a fixed wall clock (ms), so ages are exact

struct DeadLetterDb {
  TempDir dir;
  std::string path = dir.path() + "/dl.db";
  Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  DeadLetterDb() { ensure_base_schema(db); }

  // Records `n` rows with seq first..first+n-1, each `payload_bytes` of payload, at `at_ms`.
  void add(int n, uint64_t first, size_t payload_bytes, int64_t at_ms) {
    const std::string payload(payload_bytes, 'x');
    for (int i = 0; i < n; ++i)
      record_dead_letter(
          db, {"s-1", first + static_cast<uint64_t>(i), 7, 9, "", "bad frame", payload}, at_ms);
  }
  int64_t min_seq() { return db.query_int("SELECT min(seq) FROM __harmony_dead_letters"); }
  int64_t max_seq() { return db.query_int("SELECT max(seq) FROM __harmony_dead_letters"); }
};

}  // namespace

TEST_CASE("record_dead_letter stores every field, NULL for an empty table and payload",
          "[dead_letters]") {
  DeadLetterDb d;
  record_dead_letter(d.db, {"s-2", 11, 3, 4, "Books", "unknown column x", "abc"}, kNow);
  record_dead_letter(d.db, {"s-2", 12, 0, 0, "", "undecodable", ""}, kNow + 1);
  auto s = d.db.prepare(
      "SELECT at_ms, stream, seq, origin_node, batch_id, table_name, reason, payload FROM "
      "__harmony_dead_letters ORDER BY id");
  REQUIRE(s.step());
  CHECK(s.column_int(0) == kNow);
  CHECK(s.column_text(1) == "s-2");
  CHECK(s.column_int(2) == 11);
  CHECK(s.column_int(3) == 3);
  CHECK(s.column_int(4) == 4);
  CHECK(s.column_text(5) == "Books");
  CHECK(s.column_text(6) == "unknown column x");
  CHECK(s.column_text(7) == "abc");
  REQUIRE(s.step());
  CHECK(s.column_is_null(5));
  CHECK(s.column_is_null(7));
  CHECK_FALSE(s.step());
  const auto u = dead_letter_usage(d.db);
  CHECK(u.rows == 2);
  // payload + reason + stream + table name
  CHECK(u.bytes == (3 + 16 + 3 + 5) + (0 + 11 + 3 + 0));
}

TEST_CASE("prune_dead_letters removes nothing within the limits", "[dead_letters]") {
  DeadLetterDb d;
  d.add(10, 1, 100, kNow);
  const auto r = prune_dead_letters(d.db, kNow, {10, 10 * 1000, 1000});
  CHECK(r.total() == 0);
  CHECK(dead_letter_usage(d.db).rows == 10);
}

TEST_CASE("prune_dead_letters keeps the newest max_rows rows", "[dead_letters]") {
  DeadLetterDb d;
  d.add(25, 1, 10, kNow);
  const auto r = prune_dead_letters(d.db, kNow, {10, 1 << 30, 0});
  CHECK(r.by_rows == 15);
  CHECK(r.total() == 15);
  CHECK(dead_letter_usage(d.db).rows == 10);
  CHECK(d.min_seq() == 16);
  CHECK(d.max_seq() == 25);
}

TEST_CASE("prune_dead_letters removes the oldest rows until the rest fit in max_bytes",
          "[dead_letters]") {
  DeadLetterDb d;
  // Each row: 1000 payload + 9 reason + 3 stream = 1012 bytes.
  d.add(20, 1, 1000, kNow);
  REQUIRE(dead_letter_usage(d.db).bytes == 20 * 1012);
  const auto r = prune_dead_letters(d.db, kNow, {1000, 5 * 1012 + 500, 0});
  CHECK(r.by_bytes == 15);
  const auto u = dead_letter_usage(d.db);
  CHECK(u.rows == 5);
  CHECK(u.bytes <= 5 * 1012 + 500);
  CHECK(d.min_seq() == 16);
  // A bound below one row's size empties the table rather than keeping it over the bound.
  CHECK(prune_dead_letters(d.db, kNow, {1000, 100, 0}).by_bytes == 5);
  CHECK(dead_letter_usage(d.db).rows == 0);
}

TEST_CASE("prune_dead_letters removes rows older than max_age first", "[dead_letters]") {
  DeadLetterDb d;
  d.add(5, 1, 10, kNow - 10'000);  // expired
  d.add(5, 6, 10, kNow - 1'000);   // within the age
  d.add(5, 11, 10, kNow);
  const auto r = prune_dead_letters(d.db, kNow, {8, 1 << 30, 5'000});
  CHECK(r.by_age == 5);
  CHECK(r.by_rows == 2);  // then the two oldest of the ten left beyond max_rows = 8
  CHECK(d.min_seq() == 8);
  CHECK(d.max_seq() == 15);
  // max_age 0: no age limit.
  CHECK(prune_dead_letters(d.db, kNow + 1'000'000'000, {100, 1 << 30, 0}).total() == 0);
}
