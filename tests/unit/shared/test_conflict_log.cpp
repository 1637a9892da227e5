// The conflict log (issue 15): what last-writer-wins made lose is recorded in
// __harmony_conflicts on the node whose concurrent change it was, with its values and both
// versions; writes that saw each other are not conflicts; the log stays within its bounds.
#include "tests/support/capture_fixture.hpp"

#include "shared/conflict_log.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {
const char* kSchema = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);";

struct Logged {
  std::string kind, key, values;
  int64_t loser_node = 0, winner_node = 0, winner_deleted = 0;
};

std::vector<Logged> conflicts(Db& db) {
  std::vector<Logged> out;
  auto s = db.prepare(
      "SELECT kind, key, coalesce(loser_values, ''), loser_node, winner_node, winner_deleted "
      "FROM __harmony_conflicts ORDER BY id");
  while (s.step())
    out.push_back({s.column_text(0), s.column_text(1), s.column_text(2), s.column_int(3),
                   s.column_int(4), s.column_int(5)});
  return out;
}
}  // namespace

TEST_CASE("a remote write that replaces this node's concurrent change is logged on both writers",
          "[conflicts]") {
  TwoNodes n(kSchema);
  n.write_a("INSERT INTO t VALUES (1, 'base');");
  n.sync();
  n.write_a("UPDATE t SET v = 'from A' WHERE id = 1;");
  n.write_b("UPDATE t SET v = 'from B' WHERE id = 1;");  // later: B wins
  replicate_once(n.a, n.b);  // B keeps its newer value: A's change is discarded there
  replicate_once(n.b, n.a);  // A's change is overwritten by B's
  replicate_both(n.a, n.b);
  n.check_same("t");
  const auto on_a = conflicts(n.a);
  const auto on_b = conflicts(n.b);
  REQUIRE(on_a.size() == 1);
  CHECK(on_a[0].kind == "overwritten");
  CHECK(on_a[0].key == "[1]");
  CHECK(on_a[0].values == R"({"id":1,"v":"from A"})");
  CHECK(on_a[0].loser_node == static_cast<int64_t>(node_id(n.a)));
  CHECK(on_a[0].winner_node == static_cast<int64_t>(node_id(n.b)));
  REQUIRE(on_b.size() == 1);
  CHECK(on_b[0].kind == "discarded");
  CHECK(on_b[0].values == R"({"id":1,"v":"from A"})");
  CHECK(on_b[0].winner_node == static_cast<int64_t>(node_id(n.b)));
}

TEST_CASE("independent inserts of the same primary key are logged, the loser's values kept",
          "[conflicts]") {
  TwoNodes n(kSchema);
  n.write_a("INSERT INTO t VALUES (5, 'inserted on A');");
  n.write_b("INSERT INTO t VALUES (5, 'inserted on B');");
  replicate_both(n.a, n.b);
  n.check_same("t");
  CHECK(n.a.query_int("SELECT count(*) FROM t") == 1);
  const auto on_a = conflicts(n.a);
  REQUIRE(on_a.size() == 1);
  CHECK(on_a[0].kind == "overwritten");
  CHECK(on_a[0].values == R"({"id":5,"v":"inserted on A"})");
}

TEST_CASE("a remote delete of a row this node changed concurrently is logged as removed",
          "[conflicts]") {
  TwoNodes n(kSchema);
  n.write_a("INSERT INTO t VALUES (1, 'base');");
  n.sync();
  n.write_a("UPDATE t SET v = 'kept?' WHERE id = 1;");
  n.write_b("DELETE FROM t WHERE id = 1;");
  replicate_both(n.a, n.b);
  n.check_same("t");
  const auto on_a = conflicts(n.a);
  REQUIRE(on_a.size() == 1);
  CHECK(on_a[0].kind == "removed");
  CHECK(on_a[0].values == R"({"id":1,"v":"kept?"})");
  CHECK(on_a[0].winner_deleted == 1);
}

TEST_CASE("an update made after the other node's write was seen is no conflict", "[conflicts]") {
  TwoNodes n(kSchema);
  n.write_a("INSERT INTO t VALUES (1, 'base');");  // stamped a minute in the past
  n.sync();
  n.shell_b("UPDATE t SET v = 'later' WHERE id = 1;");  // now: B had A's row, a minute later
  replicate_both(n.a, n.b);
  n.check_same("t");
  CHECK(conflicts(n.a).empty());
  CHECK(conflicts(n.b).empty());
}

TEST_CASE("concurrency is decided on this node's own versions only", "[conflicts]") {
  const uint64_t self = 1, other = 2, third = 3;
  const int64_t t = hlc_from_ms(1'000'000'000);
  const Version far_later{t + hlc_from_ms(kConcurrentWithinMs + 1), other};
  const Version close{t + hlc_from_ms(kConcurrentWithinMs), other};
  CHECK(concurrent({{t, self}, false, false}, close, self));
  CHECK_FALSE(concurrent({{t, self}, false, false}, far_later, self));
  CHECK(concurrent({{t, self}, true, false}, far_later, self));     // unpublished: never seen
  CHECK_FALSE(concurrent({{t, third}, true, false}, close, self));  // a relayed version
  CHECK_FALSE(concurrent({{t, self}, true, false}, {t + 1, self}, self));  // our own
}

TEST_CASE("the conflict log keeps the newest max_rows rows and none older than max_age",
          "[conflicts]") {
  TempDir dir("conflicts");
  Db db = open_test_db(dir.file("c.db"));
  ensure_base_schema(db);
  const int64_t now = 10'000'000;
  for (int i = 0; i < 20; ++i)
    record_conflict(
        db, {ConflictKind::Overwritten, "t", fmt::format("[{}]", i), "{}", {1, 1}, {2, 2}, false},
        now - (i < 5 ? 2'000 : 0));  // the first five are old
  CHECK(conflict_count(db) == 20);
  CHECK(prune_conflicts(db, now, {12, 1'000}) == 8);  // 5 by age, 3 more by count
  CHECK(conflict_count(db) == 12);
  CHECK(db.query_int("SELECT min(id) FROM __harmony_conflicts") == 9);
  // Values of any kind are readable JSON, even bytes that are not UTF-8.
  CHECK(values_json_object({"a", "b", "c", "d"}, {Value{Null{}}, Value{2.5},
                                                  Value{Blob{"\x01\xff"}}, Value{Text{"\xff"}}}) ==
        std::string(R"({"a":null,"b":2.5,"c":{"blob":"01ff"},"d":")") + "\xef\xbf\xbd\"}");
}
