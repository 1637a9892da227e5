// Last-writer-wins between two databases that both accept writes: concurrent updates of the
// same row, exchanged both ways in either order, end identical; deletes leave tombstones so a
// late, older update never resurrects a row.
#include "tests/support/capture_fixture.hpp"

#include "shared/fold.hpp"
#include "shared/hlc.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {
const char* kSchema =
    "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT, n INTEGER);"
    "CREATE TABLE c (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;";

// Folds pending changes now, so their versions are fixed in this order (as the replicator
// would, shortly after each commit).
void fold_now(Db& db) {
  Transaction tx(db);
  fold_all(db, captured_tables(db), node_id(db));
  tx.commit();
}
}  // namespace

TEST_CASE("concurrent updates of the same row converge whatever the exchange order",
          "[capture][lww]") {
  for (int order = 0; order < 2; ++order) {
    for (int first_writer = 0; first_writer < 2; ++first_writer) {
      DYNAMIC_SECTION("exchange " << (order ? "B->A first" : "A->B first") << ", "
                                  << (first_writer ? "B" : "A") << " writes first") {
        TwoNodes n(kSchema);
        n.write_a(
            "INSERT INTO t VALUES (1, 'base', 0), (2, 'other', 0);"
            "INSERT INTO c VALUES ('k', 1, 'base');");
        n.sync();
        // Both change the same rows without hearing from each other.
        auto write_a = [&] {
          n.write_a(
              "UPDATE t SET v = 'from A', n = n + 1 WHERE id = 1; UPDATE c SET v = 'A';"
              "UPDATE t SET n = 10 WHERE id = 2;");
          fold_now(n.a);
        };
        auto write_b = [&] {
          n.write_b(
              "UPDATE t SET v = 'from B', n = n + 2 WHERE id = 1; UPDATE c SET v = 'B';"
              "INSERT INTO t VALUES (3, 'only B', 0);");
          fold_now(n.b);
        };
        // Stamped one after the other, so the second writer's time (and version) is later.
        if (first_writer == 0) {
          write_a();
          write_b();
        } else {
          write_b();
          write_a();
        }
        if (order == 0) {
          replicate_once(n.a, n.b);
          replicate_once(n.b, n.a);
        } else {
          replicate_once(n.b, n.a);
          replicate_once(n.a, n.b);
        }
        replicate_both(n.a, n.b);
        n.check_same("t");
        n.check_same("c");
        // The later writer (higher version) won the conflicting row, everywhere.
        const char* winner = first_writer == 0 ? "'from B'" : "'from A'";
        CHECK(show(*n.a.query_value("SELECT v FROM t WHERE id = 1")) == winner);
        CHECK(n.a.query_int("SELECT n FROM t WHERE id = 2") == 10);
        CHECK(n.a.query_int("SELECT count(*) FROM t") == 3);
        CHECK(database_checksum(n.a) == database_checksum(n.b));
        CHECK(pending_total(n.a) == 0);
        CHECK(pending_total(n.b) == 0);
      }
    }
  }
}

TEST_CASE("equal versions break ties on the node id", "[capture][lww]") {
  TwoNodes n(kSchema);
  n.shell_a("INSERT INTO t VALUES (1, 'base', 0);");
  n.sync();
  // Force both nodes' clocks to the same far-ahead value: both updates get version X + 1.
  const int64_t x = load_clock(n.a) + hlc_from_ms(60'000);
  for (Db* db : {&n.a, &n.b}) {
    Transaction tx(*db);
    store_clock(*db, x);
    tx.commit();
  }
  n.shell_a("UPDATE t SET v = 'A' WHERE id = 1;");
  n.shell_b("UPDATE t SET v = 'B' WHERE id = 1;");
  replicate_both(n.a, n.b);
  n.check_same("t");
  const bool a_wins = node_id(n.a) > node_id(n.b);
  CHECK(show(*n.b.query_value("SELECT v FROM t")) == (a_wins ? "'A'" : "'B'"));
}

TEST_CASE("a late older update never resurrects a deleted row", "[capture][lww]") {
  SECTION("delete is newer than the concurrent update") {
    TwoNodes n(kSchema);
    n.write_a("INSERT INTO t VALUES (1, 'x', 0); INSERT INTO c VALUES ('k', 1, 'x');");
    n.sync();
    n.write_b("UPDATE t SET v = 'older update' WHERE id = 1; UPDATE c SET v = 'old';");
    fold_now(n.b);
    n.write_a("DELETE FROM t WHERE id = 1; DELETE FROM c;");
    fold_now(n.a);
    // The delete reaches B first, then B's older update reaches A late.
    replicate_once(n.a, n.b);
    replicate_once(n.b, n.a);
    replicate_both(n.a, n.b);
    CHECK(n.a.query_int("SELECT count(*) FROM t") == 0);
    CHECK(n.b.query_int("SELECT count(*) FROM t") == 0);
    CHECK(n.a.query_int("SELECT count(*) FROM c") == 0);
    n.check_same("t");
    n.check_same("c");
  }
  SECTION("a stale copy of an old update replayed after the delete") {
    TwoNodes n(kSchema);
    n.shell_a("INSERT INTO t VALUES (1, 'x', 0);");
    n.sync();
    n.shell_a("UPDATE t SET v = 'old' WHERE id = 1;");
    Batch old_update;
    {
      Transaction tx(n.a);
      old_update = collect_pending(n.a, captured_tables(n.a), node_id(n.a), 100);
      tx.commit();
    }
    REQUIRE(old_update.rows.size() == 1);
    n.sync();  // nothing more (not marked published) -> sends the same again; fine
    n.shell_a("DELETE FROM t WHERE id = 1;");
    n.sync();
    CHECK(n.b.query_int("SELECT count(*) FROM t") == 0);
    // Redelivery of the old batch (JetStream may deliver twice): the tombstone wins.
    {
      Transaction tx(n.b);
      Applier applier(n.b, node_id(n.b), captured_tables(n.b));
      applier.begin();
      std::vector<HeldRows> held;
      auto st = applier.apply(old_update, {"replay", 1}, held);
      CHECK(held.empty());
      CHECK(st.skipped_older == 1);
      applier.finish();
      tx.commit();
    }
    CHECK(n.b.query_int("SELECT count(*) FROM t") == 0);
    CHECK(pending_total(n.b) == 0);
  }
  SECTION("a newer insert after a delete does bring the row back") {
    TwoNodes n(kSchema);
    n.shell_a("INSERT INTO t VALUES (1, 'x', 0);");
    n.sync();
    n.shell_a("DELETE FROM t WHERE id = 1;");
    n.sync();
    n.shell_b("INSERT INTO t VALUES (1, 'reborn', 1);");
    replicate_both(n.a, n.b);
    n.check_same("t");
    CHECK(n.a.query_int("SELECT count(*) FROM t") == 1);
  }
}

TEST_CASE("concurrent inserts of the same key are one row to LWW", "[capture][lww]") {
  TwoNodes n(kSchema);
  n.write_a("INSERT INTO t VALUES (7, 'a', 1);");
  fold_now(n.a);
  n.write_b("INSERT INTO t VALUES (7, 'b', 2);");
  fold_now(n.b);
  replicate_both(n.a, n.b);
  n.check_same("t");
  CHECK(show(*n.a.query_value("SELECT v FROM t WHERE id = 7")) == "'b'");
}

TEST_CASE("values of a UNIQUE column swapped or passed along in one transaction apply whole",
          "[capture][lww][unique]") {
  TwoNodes n("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, v INTEGER);");
  n.shell_a("INSERT INTO u VALUES (1, 'x', 0), (2, 'y', 0), (3, 'z', 0);");
  REQUIRE(n.sync().apply.applied == 3);

  SECTION("a swap: each row takes the value the other gives up") {
    n.shell_a(
        "BEGIN; UPDATE u SET email = 'tmp' WHERE id = 1; UPDATE u SET email = 'x' WHERE id = 2;"
        "UPDATE u SET email = 'y' WHERE id = 1; COMMIT;");
    auto s = n.sync();
    CHECK(s.apply.dead_lettered == 0);
    CHECK(s.apply.applied == 2);
  }
  SECTION("a rotation of three values") {
    n.shell_a(
        "BEGIN; UPDATE u SET email = 't1' WHERE id = 1; UPDATE u SET email = 'x' WHERE id = 3;"
        "UPDATE u SET email = 'z' WHERE id = 2; UPDATE u SET email = 'y' WHERE id = 1; COMMIT;");
    CHECK(n.sync().apply.dead_lettered == 0);
  }
  SECTION("a chain: a row takes a value another row gives up to a fresh one") {
    n.shell_a(
        "BEGIN; UPDATE u SET email = 'w' WHERE id = 3; UPDATE u SET email = 'z' WHERE id = 1;"
        "COMMIT;");
    CHECK(n.sync().apply.dead_lettered == 0);
  }
  n.check_same("u");
  CHECK(pending_total(n.b) == 0);
}

TEST_CASE("a UNIQUE value taken here by a row outside the batch is a race the newer row wins",
          "[capture][lww][unique]") {
  TwoNodes n("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, v INTEGER);");
  n.shell_a("INSERT INTO u VALUES (1, 'x', 0), (2, 'y', 0);");
  REQUIRE(n.sync().apply.applied == 2);
  // B wrote 'q' on its own row 9 (not sent to A); then A, later, swaps x/y and gives row 1 the
  // value 'q' without having seen row 9.
  n.shell_b("INSERT INTO u VALUES (9, 'q', 0);");
  fold_now(n.b);
  {
    Transaction tx(n.a);  // A's clock a minute ahead of B's: A's version is the greater
    store_clock(n.a, load_clock(n.b) + hlc_from_ms(60'000));
    tx.commit();
  }
  n.shell_a(
      "BEGIN; UPDATE u SET email = 'tmp' WHERE id = 1; UPDATE u SET email = 'x' WHERE id = 2;"
      "UPDATE u SET email = 'q' WHERE id = 1; COMMIT;");
  // Row 1 wins 'q' (greater version): row 9 is deleted (and the delete published); row 2 then
  // takes 'x' from row 1. The batch applies whole; nothing waits.
  auto s = n.sync();
  CHECK(s.apply.held == 0);
  CHECK(s.apply.applied == 2);
  CHECK(s.apply.unique_losers == 1);
  CHECK(n.b.query_int("SELECT count(*) FROM u WHERE (id, email) IN (VALUES (1, 'q'), (2, 'x'))") ==
        2);
  CHECK(n.b.query_int("SELECT count(*) FROM u") == 2);
  CHECK(n.b.query_int("SELECT count(*) FROM __harmony_conflicts WHERE kind = 'unique' AND "
                      "key = '[9]' AND json_extract(loser_values, '$.email') = 'q'") == 1);
  CHECK(n.b.query_int("SELECT count(*) FROM __harmony_dead_letters") == 0);
  replicate_both(n.a, n.b);
  n.check_same("u");
}

TEST_CASE("a newer delete of a row already deleted here moves the tombstone's version",
          "[capture][lww]") {
  TwoNodes n(kSchema);
  n.write_a("INSERT INTO t VALUES (1, 'x', 0);");
  n.sync();
  n.write_b("DELETE FROM t WHERE id = 1;");
  fold_now(n.b);
  n.write_a("DELETE FROM t WHERE id = 1;");
  fold_now(n.a);
  const int64_t newer = n.a.query_int("SELECT version FROM __harmony_rows_1");
  REQUIRE(newer > n.b.query_int("SELECT version FROM __harmony_rows_1"));
  auto s = replicate_once(n.a, n.b);
  CHECK(s.apply.applied == 1);
  CHECK(n.b.query_int("SELECT version FROM __harmony_rows_1") == newer);
  CHECK(n.b.query_int("SELECT node FROM __harmony_rows_1") == static_cast<int64_t>(node_id(n.a)));
}

// Issue 15 case 5: two nodes give the same UNIQUE value to different rows without hearing from
// each other. Whatever the order, both end with the row of the greater version, the other row
// deleted on both and recorded in the conflict log; nothing is left held.
TEST_CASE("a UNIQUE race on a non-key column ends the same on both nodes in every order",
          "[capture][lww][unique]") {
  const char* schema =
      "CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);"
      "CREATE TABLE w (id INTEGER PRIMARY KEY, a TEXT, b TEXT, UNIQUE (a COLLATE NOCASE, b));";
  for (int order = 0; order < 2; ++order) {
    for (int first_writer = 0; first_writer < 2; ++first_writer) {
      DYNAMIC_SECTION("exchange " << (order ? "B->A first" : "A->B first") << ", "
                                  << (first_writer ? "B" : "A") << " writes first") {
        TwoNodes n(schema);
        auto write_a = [&] {
          n.write_a(
              "INSERT INTO u VALUES (1, 'x@example.com', 'A');"
              "INSERT INTO w VALUES (1, 'k', 'v');");
        };
        auto write_b = [&] {
          n.write_b(
              "INSERT INTO u VALUES (2, 'x@example.com', 'B');"
              "INSERT INTO w VALUES (2, 'K', 'v');");
        };
        if (first_writer == 0) {
          write_a();
          write_b();
        } else {
          write_b();
          write_a();
        }
        if (order == 0) {
          replicate_once(n.a, n.b);
          replicate_once(n.b, n.a);
        } else {
          replicate_once(n.b, n.a);
          replicate_once(n.a, n.b);
        }
        replicate_both(n.a, n.b);
        n.check_same("u");
        n.check_same("w");
        const int64_t later = first_writer == 0 ? 2 : 1;
        CHECK(n.a.query_int("SELECT sum(id) FROM u") == later);
        CHECK(n.a.query_int("SELECT sum(id) FROM w") == later);
        for (Db* db : {&n.a, &n.b}) {
          CHECK(db->query_int("SELECT count(*) FROM __harmony_held") == 0);
          CHECK(pending_total(*db) == 0);
        }
        // The loser is in the log, values and all, on the node that settled the race.
        CHECK(n.a.query_int("SELECT count(*) FROM __harmony_conflicts WHERE kind = 'unique'") +
                  n.b.query_int("SELECT count(*) FROM __harmony_conflicts WHERE kind = 'unique'") >=
              2);
        CHECK(n.a.query_int("SELECT count(*) FROM __harmony_conflicts WHERE kind = 'unique' "
                            "AND table_name = 'u' AND json_extract(loser_values, '$.id') = " +
                            std::to_string(3 - later)) +
                  n.b.query_int("SELECT count(*) FROM __harmony_conflicts WHERE kind = 'unique' "
                                "AND table_name = 'u' AND json_extract(loser_values, '$.id') = " +
                                std::to_string(3 - later)) >=
              1);
      }
    }
  }
}

// The race settled on one node must not depend on whether that node saw it: a node that got
// the winner's value moved away before the loser arrived sees no race, and the delete the
// other node published brings it to the same state.
TEST_CASE("a UNIQUE race settled elsewhere converges on a node that never saw it",
          "[capture][lww][unique]") {
  const char* schema = "CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT);";
  TwoNodes n(schema);  // A settles the race; B only relays
  n.write_b("INSERT INTO u VALUES (2, 'x@example.com', 'B');");  // older: loses
  n.write_a("INSERT INTO u VALUES (1, 'x@example.com', 'A');");
  replicate_once(n.b, n.a);  // A: row 2 loses to row 1, A deletes it and publishes the delete
  CHECK(n.a.query_int("SELECT count(*) FROM u") == 1);
  n.write_a("UPDATE u SET email = 'moved@example.com' WHERE id = 1;");
  replicate_both(n.a, n.b);
  n.check_same("u");
  CHECK(n.b.query_int("SELECT sum(id) FROM u") == 1);
}
