// Folding the capture logs into row versions (shared/fold.cpp): the HLC rules. Log rows are
// written directly with chosen ms values to play a wall clock that goes backwards or a clock
// that is already ahead (a version received from a peer), then fold_all must issue versions
// strictly greater than the row's previous version and than every version the database has seen.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "shared/apply.hpp"
#include "shared/capture.hpp"
#include "shared/fold.hpp"
#include "shared/hlc.hpp"
#include "tests/support/replicate.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

struct RowVersion {
  int64_t key, version, node, deleted, dirty;
};

struct FoldDb {
  TempDir dir{"fold"};
  Db db = open_test_db(dir.file("f.db"));
  CapturedTable t;
  FoldDb() {
    db.exec(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, u TEXT UNIQUE);"
        "CREATE TABLE s (id INTEGER PRIMARY KEY, v TEXT);");
    enable_table(db, "t");
    enable_table(db, "s");
    t = *find_captured(db, "t");
  }
  // Appends a log row as a trigger would, with a chosen ms.
  void log(int64_t key, int64_t ms, bool weak = false) {
    auto s = db.prepare(fmt::format("INSERT INTO {} (k1, ms, weak) VALUES (?1, ?2, ?3)", t.log));
    s.bind(1, key).bind(2, ms);
    if (weak)
      s.bind(3, int64_t{1});
    else
      s.bind_null(3);
    s.run();
  }
  void clear_log() { db.exec("DELETE FROM " + t.log); }
  FoldStats fold(uint64_t node = 7) {
    Transaction tx(db);
    auto st = fold_all(db, captured_tables(db), node);
    tx.commit();
    return st;
  }
  std::vector<RowVersion> versions() {
    std::vector<RowVersion> out;
    auto s =
        db.prepare("SELECT k1, version, node, deleted, dirty FROM " + t.rows + " ORDER BY version");
    while (s.step())
      out.push_back(
          {s.column_int(0), s.column_int(1), s.column_int(2), s.column_int(3), s.column_int(4)});
    return out;
  }
  int64_t version_of(int64_t key) {
    for (const auto& v : versions())
      if (v.key == key) return v.version;
    FAIL("no version for key " << key);
    return 0;
  }
};

}  // namespace

TEST_CASE("fold: versions strictly increase when the logged ms go backwards", "[capture][fold]") {
  FoldDb f;
  f.db.exec("INSERT INTO t VALUES (1,'a','a'),(2,'b','b'),(3,'c','c')");
  f.clear_log();
  const int64_t now = wall_clock_ms();
  f.log(1, now);
  f.log(2, now - 60'000);   // the wall clock was stepped back a minute
  f.log(3, now - 120'000);  // and again
  f.log(1, now - 180'000);  // key 1 changed last, with the oldest ms of all
  auto st = f.fold();
  CHECK(st.keys == 3);
  auto v = f.versions();
  REQUIRE(v.size() == 3);
  // Commit order (order of each key's last change): 2, 3, 1.
  CHECK(v[0].key == 2);
  CHECK(v[1].key == 3);
  CHECK(v[2].key == 1);
  CHECK(v[0].version < v[1].version);
  CHECK(v[1].version < v[2].version);
  for (const auto& r : v) {
    CHECK(r.node == 7);
    CHECK(r.dirty == 1);
    CHECK(r.deleted == 0);
  }
  CHECK(load_clock(f.db) == v[2].version);
  CHECK(f.db.query_int("SELECT count(*) FROM " + f.t.log) == 0);  // log consumed

  // A later fold whose ms are older still: every version exceeds everything issued before.
  const int64_t before = load_clock(f.db);
  const int64_t key1_before = f.version_of(1);
  f.log(1, now - 3'600'000);
  f.log(2, now - 7'200'000);
  f.fold();
  CHECK(f.version_of(1) > before);
  CHECK(f.version_of(1) > key1_before);
  CHECK(f.version_of(2) > f.version_of(1));
  CHECK(load_clock(f.db) == f.version_of(2));
}

TEST_CASE("fold: a clock ahead of the wall clock within the drift bound keeps counting from there",
          "[capture][fold]") {
  FoldDb f;
  const int64_t ahead = hlc_from_ms(wall_clock_ms() + 30'000) + 5;  // a peer's clock, 30 s ahead
  {
    Transaction tx(f.db);
    store_clock(f.db, ahead);
    tx.commit();
  }
  f.db.exec("INSERT INTO t VALUES (1, 'a', 'a'); INSERT INTO s VALUES (1, 'x');");  // real triggers
  f.fold();
  CHECK(f.version_of(1) == ahead + 1);
  CHECK(f.db.query_int("SELECT version FROM " + find_captured(f.db, "s")->rows) == ahead + 2);
  CHECK(load_clock(f.db) == ahead + 2);
  f.db.exec("UPDATE t SET v = 'b'");
  f.fold();
  CHECK(f.version_of(1) == ahead + 3);
}

// Issue 15 case 6: a clock left a day ahead (this host's clock was wrong, then fixed) kept issuing
// versions a day ahead, which every peer refused.
TEST_CASE("fold: a stored clock beyond wall clock + drift bound is lowered to the bound",
          "[capture][fold][clock]") {
  FoldDb f;
  const int64_t ahead = hlc_from_ms(wall_clock_ms() + 25LL * 3'600'000);  // 25 h ahead
  {
    Transaction tx(f.db);
    store_clock(f.db, ahead);
    tx.commit();
  }
  f.db.exec("INSERT INTO t VALUES (1, 'a', 'a'); INSERT INTO s VALUES (1, 'x');");
  const int64_t lowered_before = clock_bound_events().clock_lowered;
  const auto st = f.fold();
  const int64_t ahead_ms = hlc_physical_ms(f.version_of(1)) - wall_clock_ms();
  INFO("version issued " << ahead_ms << " ms ahead of the wall clock");
  CHECK(ahead_ms <= kDefaultMaxClockDriftMs);
  CHECK(hlc_plausible(f.version_of(1), wall_clock_ms(), kDefaultMaxClockDriftMs));
  CHECK(hlc_physical_ms(load_clock(f.db)) <= wall_clock_ms() + kDefaultMaxClockDriftMs);
  CHECK(st.clock_lowered_ms > 24LL * 3'600'000);
  CHECK(clock_bound_events().clock_lowered == lowered_before + 1);
  CHECK(st.beyond_bound == 0);
  // Versions keep increasing from the lowered clock.
  const int64_t v1 = f.version_of(1);
  f.db.exec("UPDATE t SET v = 'b'");
  CHECK(f.fold().clock_lowered_ms == 0);
  CHECK(f.version_of(1) > v1);
}

TEST_CASE("fold: a row's new version exceeds its previous one even above the clock",
          "[capture][fold]") {
  FoldDb f;
  f.db.exec("INSERT INTO t VALUES (1, 'a', 'a')");
  f.fold();
  // A version for this row higher than the stored clock (as if the clock had been lost).
  const int64_t high = load_clock(f.db) + hlc_from_ms(30'000);  // half a minute ahead
  f.db.exec(fmt::format("UPDATE {} SET version = {}", f.t.rows, high));
  f.db.exec("UPDATE t SET v = 'b'");
  f.fold();
  CHECK(f.version_of(1) == high + 1);
  CHECK(load_clock(f.db) == high + 1);
}

// A row whose previous version is beyond the bound (issued while this host's clock ran ahead):
// its new version must still exceed it, or peers holding the old version would skip the write.
// Fresh versions of other rows stay within the bound; the exception is counted.
TEST_CASE("fold: a row already beyond the drift bound gets previous + 1, other rows stay within",
          "[capture][fold][clock]") {
  FoldDb f;
  f.db.exec("INSERT INTO t VALUES (1, 'a', 'a'), (2, 'b', 'b')");
  f.fold();
  const int64_t far = hlc_from_ms(wall_clock_ms() + 3'600'000);  // an hour ahead
  f.db.exec(fmt::format("UPDATE {} SET version = {} WHERE k1 = 1", f.t.rows, far));
  f.db.exec("UPDATE t SET v = 'c'");  // both rows
  const int64_t beyond_before = clock_bound_events().versions_beyond;
  const auto st = f.fold();
  CHECK(f.version_of(1) == far + 1);
  CHECK(st.beyond_bound == 1);
  CHECK(clock_bound_events().versions_beyond == beyond_before + 1);
  CHECK(hlc_physical_ms(f.version_of(2)) <= wall_clock_ms() + kDefaultMaxClockDriftMs);
  CHECK(hlc_physical_ms(load_clock(f.db)) <= wall_clock_ms() + kDefaultMaxClockDriftMs);
}

TEST_CASE("fold: ms logged in the future are capped at the wall clock", "[capture][fold]") {
  FoldDb f;
  f.db.exec("INSERT INTO t VALUES (1, 'a', 'a')");
  f.clear_log();
  f.log(1, wall_clock_ms() + 10LL * 24 * 3'600'000);  // written before the clock was set back
  f.fold();
  CHECK(hlc_physical_ms(f.version_of(1)) <= wall_clock_ms());
  CHECK(hlc_plausible(f.version_of(1), wall_clock_ms()));
  // Garbage ms (negative) cannot produce a version below the clock either.
  const int64_t clock = load_clock(f.db);
  f.log(1, -5);
  f.fold();
  CHECK(f.version_of(1) == clock + 1);
}

TEST_CASE("fold: deletes become tombstones and weak notes count only for rows really gone",
          "[capture][fold]") {
  FoldDb f;
  f.db.exec("INSERT INTO t VALUES (1,'a','a'),(2,'b','b'),(3,'c','c')");
  f.fold();
  f.db.exec("DELETE FROM t WHERE id = 1");
  f.log(2, wall_clock_ms(), true);  // "might be replaced", but row 2 is still there
  f.db.exec("DELETE FROM t WHERE id = 3");
  f.log(3, wall_clock_ms(), true);  // weak note for a row that is gone
  const int64_t v2 = f.version_of(2);
  auto st = f.fold();
  CHECK(st.keys == 2);
  CHECK(st.ignored_weak == 1);
  CHECK(f.version_of(2) == v2);  // untouched
  for (const auto& r : f.versions()) CHECK(r.deleted == (r.key == 2 ? 0 : 1));
  // Re-inserting a deleted key makes it live again with a higher version.
  const int64_t v1 = f.version_of(1);
  f.db.exec("INSERT INTO t VALUES (1, 'again', 'z')");
  f.fold();
  CHECK(f.version_of(1) > v1);
  for (const auto& r : f.versions())
    if (r.key == 1) CHECK(r.deleted == 0);
}

TEST_CASE("fold: a version received from a peer raises the clock (HLC receive rule)",
          "[capture][fold]") {
  FoldDb f;
  f.db.exec("INSERT INTO t VALUES (1, 'a', 'a')");
  f.fold();
  Batch b;
  b.origin_node = 99;
  b.batch_id = 1;
  b.tables.push_back({"t", "", {"id", "v", "u"}, {"id"}, 0});
  RowChange r;
  r.table = 0;
  r.hlc = hlc_from_ms(wall_clock_ms() + 30'000);  // a peer whose clock runs 30 s ahead
  r.key = {int64_t{2}};
  r.values = {int64_t{2}, Text{"remote"}, Text{"r"}};
  b.rows.push_back(r);
  {
    Transaction tx(f.db);
    Applier applier(f.db, 7, captured_tables(f.db));
    applier.begin();
    std::vector<HeldRows> held;
    CHECK(applier.apply(b, {"s", 1}, held).applied == 1);
    applier.finish();
    tx.commit();
  }
  CHECK(load_clock(f.db) >= r.hlc);
  f.db.exec("UPDATE t SET v = 'local' WHERE id = 1");
  f.fold();
  CHECK(f.version_of(1) > r.hlc);
}

namespace {
// One received row of table t, version `hlc`, from node 99.
Batch remote_row(int64_t id, int64_t hlc) {
  Batch b;
  b.origin_node = 99;
  b.batch_id = 1;
  b.tables.push_back({"t", "", {"id", "v", "u"}, {"id"}, 0});
  RowChange r;
  r.table = 0;
  r.hlc = hlc;
  r.key = {int64_t{id}};
  r.values = {int64_t{id}, Text{"remote"}, Text{fmt::format("r{}", id)}};
  b.rows.push_back(r);
  return b;
}
}  // namespace

// Issue 15 case 6: a row 2 min ahead was applied at once and dragged this node's clock (and every
// later local version) 2 min ahead; only versions beyond a day were held.
TEST_CASE("apply: a row beyond the drift bound is held and does not move the clock",
          "[capture][fold][clock]") {
  FoldDb f;
  const int64_t clock_before = load_clock(f.db);
  const Batch b = remote_row(5, hlc_from_ms(wall_clock_ms() + 120'000));  // 2 min ahead
  ApplyStats st;
  std::vector<HeldRows> held;
  {
    Transaction tx(f.db);
    Applier applier(f.db, 7, captured_tables(f.db));  // the default bound: a minute
    applier.begin();
    st = applier.apply(b, {"s", 1}, held);
    applier.finish();
    tx.commit();
  }
  INFO("applied " << st.applied << ", held " << st.held << ", clock now "
                  << hlc_physical_ms(load_clock(f.db)) - wall_clock_ms() << " ms ahead");
  CHECK(st.applied == 0);
  CHECK(st.held == 1);
  REQUIRE(held.size() == 1);
  CHECK(held[0].kind == HoldKind::Clock);
  CHECK(held[0].reason.find("bound 60.0 s") != std::string::npos);
  CHECK(load_clock(f.db) == clock_before);
  CHECK(f.db.query_int("SELECT count(*) FROM t WHERE id = 5") == 0);
}

TEST_CASE("apply: the drift bound is the Applier's option", "[capture][fold][clock]") {
  FoldDb f;
  const Batch b = remote_row(5, hlc_from_ms(wall_clock_ms() + 120'000));  // 2 min ahead
  Transaction tx(f.db);
  Applier applier(f.db, 7, captured_tables(f.db), 300'000);  // 5 min
  applier.begin();
  std::vector<HeldRows> held;
  CHECK(applier.apply(b, {"s", 1}, held).applied == 1);
  applier.finish();
  tx.commit();
}
