// Tombstone GC's pruning and anti-entropy rule (replicator/sync/tombstone_gc.hpp) on real SQLite
// files: only published tombstones below the horizon go, with their digest contribution and
// digest key (the stored digest equals the one rebuilt from {rows}); the safe mark is refused
// while anything is unfolded, unpublished or behind; plan_fetch never fetches a pruned delete back.
#include <fmt/format.h>
#include <catch2/catch.hpp>

#include "replicator/sync/tombstone_gc.hpp"
#include "shared/apply.hpp"
#include "shared/fold.hpp"
#include "shared/meta_store.hpp"
#include "tests/support/capture_fixture.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

const char* kSchema = "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);";

void fold_now(Db& db) {
  Transaction tx(db);
  fold_all(db, captured_tables(db), node_id(db));
  tx.commit();
}

DigestEntry entry(int64_t id, int64_t version, bool deleted, uint64_t node = 1) {
  return DigestEntry{{Value{id}}, RowVersion{version, node, deleted}};
}

}  // namespace

TEST_CASE("published tombstones below the horizon are pruned with their digest entries",
          "[tombstone_gc]") {
  TwoNodes n(kSchema);
  Db& db = n.a;
  {
    Transaction tx(db);
    rebuild_digests(db, captured_tables(db));
    tx.commit();
  }
  n.write_a(
      "WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < 100) "
      "INSERT INTO t SELECT i, 'v' || i FROM s;");
  fold_now(db);
  n.write_a("DELETE FROM t WHERE id <= 60;");
  fold_now(db);
  const auto t = *find_captured(db, "t");
  // Published: all but ids 1..10 (their tombstones still wait for the ack).
  db.exec(fmt::format("UPDATE {} SET dirty = 0 WHERE k1 > 10", t.rows));
  CHECK(count_tombstones(db, {t}) == 60);
  const int64_t newest = db.query_int(fmt::format("SELECT max(version) FROM {}", t.rows));
  int64_t pruned = 0;
  {
    Transaction tx(db);
    pruned += prune_tombstones(db, t, newest + 1, 20);  // bounded step
    pruned += prune_tombstones(db, t, newest + 1, 1000);
    tx.commit();
  }
  CHECK(pruned == 50);
  CHECK(count_tombstones(db, {t}) == 10);  // the unpublished ones stay
  CHECK(db.query_int(fmt::format("SELECT count(*) FROM {}", t.rows)) == 50);
  CHECK(db.query_int("SELECT count(*) FROM __harmony_digest_keys") == 50);
  const TableDigest stored = load_digest(db, t.id);
  CHECK(stored == compute_digest(db, t));
  CHECK(stored.rows == 50);
  // A horizon at or below the tombstones' versions prunes nothing.
  db.exec(fmt::format("UPDATE {} SET dirty = 0", t.rows));
  {
    Transaction tx(db);
    const int64_t oldest = db.query_int(fmt::format("SELECT min(version) FROM {}", t.rows));
    CHECK(prune_tombstones(db, t, oldest, 1000) == 0);
    tx.commit();
  }
  CHECK(n.a.query_int("SELECT count(*) FROM t") == 40);  // live rows untouched
}

TEST_CASE("a safe mark needs folded, published, caught-up state", "[tombstone_gc]") {
  TwoNodes n(kSchema);
  Db& db = n.a;
  std::map<std::string, uint64_t> tails{{"s-1", 7}};
  StreamTails read_tails = [&] { return std::optional(tails); };
  n.write_a("INSERT INTO t VALUES (1, 'a');");
  CHECK_FALSE(take_safe_mark(db, read_tails));  // unfolded log
  fold_now(db);
  CHECK_FALSE(take_safe_mark(db, read_tails));  // unpublished
  const auto t = *find_captured(db, "t");
  db.exec(fmt::format("UPDATE {} SET dirty = 0", t.rows));
  CHECK_FALSE(take_safe_mark(db, read_tails));  // position 0 < last sequence 7
  {
    Transaction tx(db);
    store_position(db, "s-1", 7);
    tx.commit();
  }
  const int64_t clock = load_clock(db);
  auto mark = take_safe_mark(db, read_tails);
  REQUIRE(mark);
  CHECK(mark->h == clock);
  CHECK(mark->p == tails);
  tails["s-1"] = 8;  // a message arrived that this node has not applied
  CHECK_FALSE(take_safe_mark(db, read_tails));
  CHECK_FALSE(take_safe_mark(db, [] { return std::optional<std::map<std::string, uint64_t>>(); }));
}

TEST_CASE("anti-entropy never fetches back a pruned delete", "[tombstone_gc]") {
  // Here: key 1 pruned (lacking), key 2 live at 50, key 3 live at 500.
  const std::vector<DigestEntry> mine = {entry(2, 50, false), entry(3, 500, false)};
  // The peer: key 1 live at 40 (it missed the delete), key 2 missing, key 3 newer, key 4 a
  // tombstone at 60 we never had, key 5 live at 900.
  const std::vector<DigestEntry> theirs = {entry(1, 40, false), entry(3, 600, false),
                                           entry(4, 60, true), entry(5, 900, false)};
  const GcView complete{100, true}, incomplete{100, false}, none{0, true};
  auto keys = [](const FetchPlan& p) {
    std::vector<int64_t> out;
    for (const auto& k : p.fetch) out.push_back(std::get<int64_t>(k[0]));
    return out;
  };
  SECTION("no horizon anywhere: as before") {
    const FetchPlan p = plan_fetch(mine, theirs, none, none);
    CHECK(keys(p) == std::vector<int64_t>{1, 3, 4, 5});
    CHECK(p.remove_local.empty());
  }
  SECTION("complete here, incomplete there: the stale live row and the tombstone stay away") {
    const FetchPlan p = plan_fetch(mine, theirs, complete, incomplete);
    CHECK(keys(p) == std::vector<int64_t>{3, 5});
    CHECK(p.skipped == 2);
    CHECK(p.remove_local.empty());
  }
  SECTION("incomplete here, complete there: fetch, and remove what the peer pruned") {
    const FetchPlan p = plan_fetch(mine, theirs, incomplete, complete);
    CHECK(keys(p) == std::vector<int64_t>{1, 3, 5});  // the old tombstone is not fetched
    REQUIRE(p.remove_local.size() == 1);
    CHECK(std::get<int64_t>(p.remove_local[0].key[0]) == 2);
  }
  SECTION("incomplete here, complete there without a horizon: nothing removed") {
    const FetchPlan p = plan_fetch(mine, theirs, GcView{0, false}, none);
    CHECK(p.remove_local.empty());
  }
  SECTION("both incomplete: differences below the lower horizon are skipped") {
    const FetchPlan p = plan_fetch(mine, theirs, incomplete, GcView{80, false});
    CHECK(keys(p) == std::vector<int64_t>{3, 5});
    CHECK(p.remove_local.empty());
  }
  SECTION("both complete: a live row below the horizon is still fetched (existing repair)") {
    const FetchPlan p = plan_fetch(mine, theirs, complete, complete);
    CHECK(keys(p) == std::vector<int64_t>{1, 3, 5});
  }
}

TEST_CASE("a stale row is removed with capture's help only when unchanged", "[tombstone_gc]") {
  TwoNodes n(kSchema);
  Db& db = n.a;
  {
    Transaction tx(db);
    rebuild_digests(db, captured_tables(db));
    tx.commit();
  }
  n.write_a("INSERT INTO t VALUES (1, 'a'), (2, 'b');");
  fold_now(db);
  const auto t = *find_captured(db, "t");
  db.exec(fmt::format("UPDATE {} SET dirty = 0 WHERE k1 = 1", t.rows));
  auto version_of = [&](int64_t id) {
    auto s = db.prepare(fmt::format("SELECT version, node FROM {} WHERE k1 = ?", t.rows));
    s.bind(1, id);
    REQUIRE(s.step());
    return RowVersion{s.column_int(0), static_cast<uint64_t>(s.column_int(1)), false};
  };
  const RowVersion v1 = version_of(1), v2 = version_of(2);
  Transaction tx(db);
  db.exec("INSERT INTO __harmony_mute VALUES (1)");
  CHECK_FALSE(remove_stale_entry(db, t, {Value{int64_t{1}}},
                                 RowVersion{v1.version + 1, v1.node, false}));  // changed
  CHECK_FALSE(remove_stale_entry(db, t, {Value{int64_t{2}}}, v2));  // ours, not yet published
  CHECK(remove_stale_entry(db, t, {Value{int64_t{1}}}, v1));
  db.exec("DELETE FROM __harmony_mute");
  tx.commit();
  CHECK(db.query_int("SELECT count(*) FROM t") == 1);
  CHECK(db.query_int(fmt::format("SELECT count(*) FROM {}", t.log)) == 0);  // nothing captured
  CHECK(load_digest(db, t.id) == compute_digest(db, t));
}

TEST_CASE("a change below the horizon for a pruned key is skipped and recorded, not applied",
          "[tombstone_gc][apply]") {
  TwoNodes n(kSchema);
  Db& b = n.b;
  n.write_a("INSERT INTO t VALUES (1, 'old'), (2, 'two');");
  n.sync();
  n.write_a("DELETE FROM t WHERE id = 1;");
  n.sync();
  const auto t = *find_captured(b, "t");
  const int64_t newest = b.query_int(fmt::format("SELECT max(version) FROM {}", t.rows));
  {
    Transaction tx(b);
    meta_set(b, "tombstone_horizon", Value{newest + 1});
    CHECK(prune_tombstones(b, t, newest + 1, 100) == 1);
    tx.commit();
  }
  // The insert of key 1 delivered again (a replay, or a dropped member's old outbox row), and a
  // new key 3 with an equally old version.
  Batch old;
  old.origin_node = node_id(n.a);
  old.tables.push_back(BatchTable{"t", t.info.schema_hash(), {"id", "v"}, {"id"}, 0});
  old.rows.push_back(RowChange{
      0, newest - 5, false, {Value{int64_t{1}}}, {Value{int64_t{1}}, Value{Text{"old"}}}});
  old.rows.push_back(RowChange{
      0, newest - 4, false, {Value{int64_t{3}}}, {Value{int64_t{3}}, Value{Text{"three"}}}});
  auto apply = [&](bool ignore_horizon) {
    Transaction tx(b);
    Applier a(b, node_id(b), captured_tables(b));
    if (ignore_horizon) a.ignore_tombstone_horizon();
    a.begin();
    std::vector<HeldRows> held;
    const ApplyStats s = a.apply(old, MessageRef{"s-1", 9}, held);
    a.finish();
    tx.commit();
    return s;
  };
  const ApplyStats s = apply(false);
  CHECK(s.applied == 0);
  CHECK(s.skipped_older == 2);
  CHECK(s.conflicts == 2);
  CHECK(b.query_int("SELECT count(*) FROM t WHERE id IN (1, 3)") == 0);
  CHECK(b.query_int("SELECT count(*) FROM __harmony_conflicts WHERE kind = 'discarded'") == 2);
  // Anti-entropy's repairs opt out (plan_fetch decided what comes below the horizon).
  CHECK(apply(true).applied == 2);
}
