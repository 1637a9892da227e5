// Change capture end to end: writes made through the stock sqlite3 shell (a connection that never
// loaded libharmony) are captured by the plain-SQL triggers, folded, published and applied on a
// second database, which must then hold exactly the same rows. DML shapes live here; schema
// changes, identifiers and eligibility in test_capture_schema.cpp; the HLC fold in
// test_capture_fold.cpp; LWW in test_capture_lww.cpp; the SQL API in test_capture_extension.cpp.
#include "tests/support/capture_fixture.hpp"

#include <limits>

#include <fmt/format.h>

#include "shared/clock.hpp"
#include "shared/names.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {
const char* kBooks =
    "CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, author TEXT, "
    "publication_year INTEGER);";

int64_t log_rows(Db& db, const std::string& table) {
  auto t = find_captured(db, table);
  REQUIRE(t);
  return db.query_int("SELECT count(*) FROM " + t->log);
}
}  // namespace

TEST_CASE("INSERT, UPDATE and DELETE from the sqlite3 shell replicate exactly", "[capture]") {
  TwoNodes n(kBooks);
  n.shell_a(
      "PRAGMA trusted_schema=OFF;"
      "INSERT INTO Books VALUES (1, 'Dune', 'Herbert', 1965);"
      "INSERT INTO Books(title, author) VALUES ('Emma', 'Austen');");
  CHECK(pending_total(n.a) == 2);
  auto st = n.sync();
  CHECK(st.rows == 2);
  CHECK(st.apply.applied == 2);
  n.check_same("Books");

  n.shell_a(
      "PRAGMA trusted_schema=OFF; UPDATE Books SET publication_year = 1966 WHERE id = 1;"
      "DELETE FROM Books WHERE id = 2;");
  st = n.sync();
  CHECK(st.rows == 2);
  n.check_same("Books");
  CHECK(table_rows(n.b, "Books").size() == 1);
  CHECK(pending_total(n.a) == 0);
  CHECK(n.sync().rows == 0);  // nothing left
}

TEST_CASE("capture works with recursive_triggers on and off", "[capture]") {
  for (const char* rt : {"ON", "OFF"}) {
    DYNAMIC_SECTION("recursive_triggers=" << rt) {
      TwoNodes n(kBooks);
      std::string p = std::string("PRAGMA recursive_triggers=") + rt + ";";
      n.shell_a(p + "INSERT INTO Books VALUES (1,'a','x',1),(2,'b','y',2);");
      n.shell_a(p + "UPDATE Books SET title = upper(title); DELETE FROM Books WHERE id = 2;");
      n.shell_a(p + "INSERT OR REPLACE INTO Books VALUES (1, 'A2', 'z', 3);");
      n.sync();
      n.check_same("Books");
      CHECK(table_rows(n.b, "Books").size() == 1);
    }
  }
}

TEST_CASE("multi-row statements capture every row", "[capture]") {
  TwoNodes n("CREATE TABLE t (id INTEGER PRIMARY KEY, v INTEGER, s TEXT);");
  n.shell_a(
      "INSERT INTO t VALUES (1, 1, 'a'), (2, 2, 'b'), (3, 3, 'c');"
      "WITH RECURSIVE c(x) AS (SELECT 10 UNION ALL SELECT x + 1 FROM c WHERE x < 1009) "
      "INSERT INTO t SELECT x, x * 2, 'row' || x FROM c;");
  CHECK(n.sync().rows == 1003);
  n.check_same("t");
  n.shell_a("UPDATE t SET v = v + 1 WHERE id % 2 = 0; DELETE FROM t WHERE id % 3 = 0;");
  n.sync();
  n.check_same("t");
  // DELETE without WHERE: the truncate optimisation is off while triggers exist.
  n.shell_a("DELETE FROM t;");
  auto st = n.sync();
  CHECK(st.apply.applied == static_cast<int64_t>(st.rows));
  n.check_same("t");
  CHECK(table_rows(n.b, "t").empty());
}

TEST_CASE("many changes of one row inside one transaction fold into one change", "[capture]") {
  TwoNodes n(kBooks);
  n.shell_a(
      "BEGIN; INSERT INTO Books VALUES (1,'a','x',1); UPDATE Books SET title='b' WHERE id=1;"
      "UPDATE Books SET title='c' WHERE id=1; INSERT INTO Books VALUES (2,'t','u',2);"
      "DELETE FROM Books WHERE id=2; COMMIT;");
  CHECK(pending_total(n.a) == 2);
  auto st = n.sync();
  CHECK(st.rows == 2);  // row 1 (live, 'c') and row 2 (tombstone)
  n.check_same("Books");
}

TEST_CASE("a rolled-back write leaves no trace", "[capture]") {
  TwoNodes n(kBooks);
  n.shell_a("BEGIN; INSERT INTO Books VALUES (1,'a','x',1); ROLLBACK;");
  CHECK(log_rows(n.a, "Books") == 0);
  CHECK(pending_total(n.a) == 0);

  // A statement that fails half-way (NOT NULL on the 3rd row) undoes its captured rows too.
  auto r = sqlite_shell(n.path_a,
                        "INSERT INTO Books VALUES (1,'a','x',1),(2,'b','y',2),(3,NULL,'z',3);");
  CHECK(r.exit_code != 0);
  CHECK(log_rows(n.a, "Books") == 0);

  // Savepoint rollback inside a committed transaction: only the kept write is captured.
  n.shell_a(
      "BEGIN; INSERT INTO Books VALUES (5,'keep','k',5); SAVEPOINT s;"
      "INSERT INTO Books VALUES (6,'drop','d',6); UPDATE Books SET title='x' WHERE id=5;"
      "ROLLBACK TO s; RELEASE s; COMMIT;");
  CHECK(pending_total(n.a) == 1);
  n.sync();
  n.check_same("Books");

  // Same from a C++ connection that never loaded anything.
  {
    Db c = open_test_db(n.path_a);
    c.exec("BEGIN; UPDATE Books SET title = 'nope'; DELETE FROM Books; ROLLBACK;");
  }
  CHECK(pending_total(n.a) == 0);
}

TEST_CASE("UPSERT: DO UPDATE and DO NOTHING", "[capture]") {
  TwoNodes n(
      "CREATE TABLE kv (k TEXT PRIMARY KEY NOT NULL, v INTEGER, n INTEGER DEFAULT 0);"
      "CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, hits INTEGER);");
  n.shell_a(
      "INSERT INTO kv VALUES ('a', 1, 0), ('b', 2, 0);"
      "INSERT INTO u VALUES (1, 'x@y', 0);");
  n.sync();
  n.shell_a(
      "INSERT INTO kv VALUES ('a', 10, 0) ON CONFLICT(k) DO UPDATE SET v = excluded.v, n = n + 1;"
      "INSERT INTO kv VALUES ('c', 3, 0) ON CONFLICT(k) DO UPDATE SET v = excluded.v;"
      "INSERT INTO u VALUES (2, 'x@y', 0) ON CONFLICT(email) DO UPDATE SET hits = hits + 1;");
  CHECK(pending_total(n.a) == 3);
  n.sync();
  n.check_same("kv");
  n.check_same("u");
  // DO NOTHING on a conflict is not a change.
  n.shell_a(
      "INSERT INTO kv VALUES ('a', 99, 0) ON CONFLICT DO NOTHING;"
      "INSERT INTO u VALUES (3, 'x@y', 0) ON CONFLICT DO NOTHING;");
  CHECK(pending_total(n.a) == 0);
  CHECK(n.sync().rows == 0);
  // UPSERT whose DO UPDATE changes the primary key: the old key goes away on replicas.
  n.shell_a("INSERT INTO kv VALUES ('b', 0, 0) ON CONFLICT(k) DO UPDATE SET k = 'b2';");
  n.sync();
  n.check_same("kv");
}

TEST_CASE("INSERT OR REPLACE on the primary key", "[capture]") {
  for (const char* rt : {"ON", "OFF"}) {
    DYNAMIC_SECTION("recursive_triggers=" << rt) {
      TwoNodes n(kBooks);
      std::string p = std::string("PRAGMA recursive_triggers=") + rt + ";";
      n.shell_a(p + "INSERT INTO Books VALUES (1,'a','x',1),(2,'b','y',2);");
      n.sync();
      n.shell_a(p +
                "INSERT OR REPLACE INTO Books VALUES (1,'a2','x2',11); REPLACE INTO Books "
                "VALUES (3,'c','z',3);");
      n.sync();
      n.check_same("Books");
      CHECK(table_rows(n.b, "Books").size() == 3);
    }
  }
}

TEST_CASE("REPLACE that deletes another row through a secondary UNIQUE index", "[capture]") {
  const char* schema =
      "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT UNIQUE, name TEXT,"
      "  nick TEXT COLLATE NOCASE, UNIQUE(name, nick));"
      "CREATE UNIQUE INDEX users_nick_ci ON users(nick COLLATE NOCASE);";
  for (const char* rt : {"OFF", "ON"}) {
    DYNAMIC_SECTION("recursive_triggers=" << rt) {
      TwoNodes n(schema);
      std::string p = std::string("PRAGMA recursive_triggers=") + rt + ";";
      n.shell_a(p +
                "INSERT INTO users VALUES (1,'a@x','Ann','ann'),(2,'b@x','Bob','bob'),"
                "(3,'c@x','Cy','cy'),(4,'d@x','Di','di'),(5,'e@x','Ed','ed');");
      n.sync();
      // Row 1 is removed because row 6 takes its email; row 2 because 6 takes its nick
      // (case-insensitively, through users_nick_ci).
      n.shell_a(p + "INSERT OR REPLACE INTO users VALUES (6, 'a@x', 'Zed', 'BOB');");
      // UPDATE OR REPLACE: row 4 takes row 3's email, so row 3 is removed.
      n.shell_a(p + "UPDATE OR REPLACE users SET email = 'c@x' WHERE id = 4;");
      // UPDATE OR REPLACE of the primary key onto an existing one: row 5 is replaced by row 4.
      n.shell_a(p + "UPDATE OR REPLACE users SET id = 5 WHERE id = 4;");
      auto st = n.sync();
      CHECK(st.apply.dead_lettered == 0);
      n.check_same("users");
      auto rows = table_rows(n.b, "users");
      REQUIRE(rows.size() == 2);
      CHECK(std::get<int64_t>(rows[0][0]) == 5);
      CHECK(std::get<int64_t>(rows[1][0]) == 6);
    }
  }
}

TEST_CASE("INSERT OR IGNORE hitting a unique conflict is not a change", "[capture]") {
  TwoNodes n("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT UNIQUE, v INTEGER);");
  n.shell_a("INSERT INTO u VALUES (1, 'a', 1);");
  n.sync();
  CHECK(pending_total(n.a) == 0);
  n.shell_a(
      "INSERT OR IGNORE INTO u VALUES (2, 'a', 2);"         // UNIQUE(email) conflict
      "INSERT OR IGNORE INTO u VALUES (1, 'z', 2);"         // PRIMARY KEY conflict
      "UPDATE OR IGNORE u SET email = 'a' WHERE id = 1;");  // no-op on itself: a real update
  auto st = n.sync();
  CHECK(st.rows == 1);  // only the UPDATE of row 1 (it fired, even if nothing changed)
  n.check_same("u");
  n.shell_a("INSERT INTO u VALUES (3, 'c', 3); UPDATE OR IGNORE u SET email = 'c' WHERE id = 1;");
  st = n.sync();
  CHECK(st.rows == 1);  // only the INSERT of row 3; the ignored UPDATE left both rows alone
  n.check_same("u");
  // A failed INSERT (ABORT) leaves no weak note either.
  CHECK(sqlite_shell(n.path_a, "INSERT INTO u VALUES (4, 'a', 4);").exit_code != 0);
  CHECK(pending_total(n.a) == 0);
  CHECK(n.sync().rows == 0);
}

TEST_CASE("UPDATE that changes the primary key deletes the old key on replicas", "[capture]") {
  TwoNodes n(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);"
      "CREATE TABLE c (a TEXT, b INTEGER, v TEXT, PRIMARY KEY (a, b)) WITHOUT ROWID;");
  n.shell_a(
      "INSERT INTO t VALUES (1,'one'),(2,'two'),(3,'three'),(4,'four');"
      "INSERT INTO c VALUES ('x',1,'p'),('x',2,'q'),('y',1,'r');");
  n.sync();
  n.shell_a(
      "UPDATE t SET id = 10 WHERE id = 1;"
      "UPDATE t SET rowid = 20 WHERE id = 2;"  // through the rowid alias (no UPDATE OF id)
      "UPDATE t SET oid = oid + 100 WHERE id IN (3, 4);"
      "UPDATE c SET b = b + 10 WHERE a = 'x';"
      "UPDATE c SET a = 'z' WHERE a = 'y';");
  n.sync();
  n.check_same("t");
  n.check_same("c");
  auto rows = table_rows(n.b, "t");
  REQUIRE(rows.size() == 4);
  CHECK(std::get<int64_t>(rows[0][0]) == 10);
  CHECK(std::get<int64_t>(rows[1][0]) == 20);
  // Swap two keys in one transaction.
  n.shell_a(
      "BEGIN; UPDATE t SET id = -1 WHERE id = 10; UPDATE t SET id = 10 WHERE id = 20;"
      "UPDATE t SET id = 20 WHERE id = -1; COMMIT;");
  n.sync();
  n.check_same("t");
}

TEST_CASE("composite primary keys and WITHOUT ROWID tables", "[capture]") {
  TwoNodes n(
      "CREATE TABLE w (region TEXT, day INTEGER, n REAL, PRIMARY KEY (day DESC, region)) "
      "WITHOUT ROWID;"
      "CREATE TABLE r (a INTEGER, b TEXT, c BLOB, v, PRIMARY KEY (a, b, c));");
  n.shell_a(
      "INSERT INTO w VALUES ('eu', 1, 1.5), ('us', 1, 2.5), ('eu', 2, 3.5);"
      "INSERT INTO r VALUES (1, 'x', x'00', 'a'), (1, 'x', x'01', 'b'), (2, 'y', x'', 'c');");
  n.sync();
  n.check_same("w");
  n.check_same("r");
  n.shell_a(
      "UPDATE w SET n = n * 2 WHERE region = 'eu'; DELETE FROM w WHERE day = 1 AND region = 'us';"
      "DELETE FROM r WHERE c = x'01'; UPDATE r SET v = 'z' WHERE a = 2;");
  n.sync();
  n.check_same("w");
  n.check_same("r");
}

TEST_CASE("INTEGER PRIMARY KEY and AUTOINCREMENT keys travel as assigned", "[capture]") {
  TwoNodes n(
      "CREATE TABLE a (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);"
      "CREATE TABLE i (id INTEGER PRIMARY KEY, v TEXT);");
  n.shell_a(
      "INSERT INTO a(v) VALUES ('x'), ('y'), ('z'); DELETE FROM a WHERE v = 'z';"
      "INSERT INTO a(v) VALUES ('w');"  // AUTOINCREMENT: id 4, not 3
      "INSERT INTO i(v) VALUES ('x'), ('y'); INSERT INTO i VALUES (100, 'big');"
      "INSERT INTO i(v) VALUES ('after');");
  n.sync();
  n.check_same("a");
  n.check_same("i");
  auto rows = table_rows(n.b, "a");
  REQUIRE(rows.size() == 3);
  CHECK(std::get<int64_t>(rows[2][0]) == 4);
  CHECK(std::get<int64_t>(table_rows(n.b, "i").back()[0]) == 101);
}

TEST_CASE("every storage class survives capture and apply bit-exactly", "[capture]") {
  TwoNodes n(
      "CREATE TABLE v (id INTEGER PRIMARY KEY, x, i INTEGER, r REAL, t TEXT, b BLOB);"
      "CREATE TABLE kb (k BLOB PRIMARY KEY, v) WITHOUT ROWID;"
      "CREATE TABLE kt (k TEXT PRIMARY KEY, v);"
      "CREATE TABLE kr (k REAL PRIMARY KEY, v);");
  n.shell_a(
      "INSERT INTO v VALUES (1, NULL, NULL, NULL, NULL, NULL);"
      "INSERT INTO v VALUES (2, 9223372036854775807, -9223372036854775808, -0.0, '', x'');"
      "INSERT INTO v VALUES (3, -9223372036854775808, 0, 1e308, 'ascii', x'000102000300');"
      "INSERT INTO v VALUES (4, 0.1, 1, 4.9406564584124654e-324, CAST(x'c328ff00fe41' AS TEXT), "
      "  zeroblob(5));"
      "INSERT INTO v VALUES (5, 'text in any', 2, -1e-300, 'Ünïcødé ✓ 𝄞', x'ff');"
      "INSERT INTO v VALUES (6, x'00ff', 3, 9e999, 'nul' || char(0) || 'inside', NULL);"
      "INSERT INTO v VALUES (7, -9e999, 3.0, 3, '5', '5');"  // affinity: 3.0 -> 3, '5' stays
      "INSERT INTO kb VALUES (x'', 'empty'), (x'00', 'zero'), (x'0000', 'two zeros');"
      "INSERT INTO kt VALUES (CAST(x'ff' AS TEXT), 'bad utf8'), ('a', 1), ('A', 2);"
      "INSERT INTO kr VALUES (0.5, 'half'), (-1e300, 'very negative'), (1.7976931348623157e308, "
      "'max');");
  {
    // -0.0 and a NaN-free set of doubles bound from C++ (the shell prints -0.0 as 0.0).
    Db plain = open_test_db(n.path_a);
    auto ins = plain.prepare("INSERT INTO v (id, x, r) VALUES (?1, ?2, ?3)");
    ins.bind(1, int64_t{8}).bind(2, Value{-0.0}).bind(3, Value{-0.0}).run();
    ins.reset();
    ins.bind(1, int64_t{9})
        .bind(2, Value{std::numeric_limits<double>::denorm_min()})
        .bind(3, Value{-std::numeric_limits<double>::max()})
        .run();
  }
  n.sync();
  for (const char* t : {"v", "kb", "kt", "kr"}) n.check_same(t);
  // -0.0 kept its sign bit on B in a column without affinity (SQLite keeps those REAL bits;
  // a REAL column stores whole numbers as integers, on every node alike).
  for (Db* db : {&n.a, &n.b}) {
    auto neg = db->query_value("SELECT x FROM v WHERE id = 8");
    REQUIRE(neg);
    REQUIRE(std::holds_alternative<double>(*neg));
    CHECK(std::signbit(std::get<double>(*neg)));
  }
  auto types = n.b.query_value(
      "SELECT group_concat(t, ',') FROM (SELECT typeof(x) AS t FROM v ORDER BY id)");
  CHECK(show(*types) == "'null,integer,integer,real,text,blob,real,real,real'");
  // Updates and deletes with exotic keys.
  n.shell_a(
      "UPDATE kb SET v = 'changed' WHERE k = x'00'; DELETE FROM kb WHERE k = x'';"
      "DELETE FROM kt WHERE k = CAST(x'ff' AS TEXT); UPDATE kr SET v = 'm' WHERE k > 1e300;");
  n.sync();
  for (const char* t : {"v", "kb", "kt", "kr"}) n.check_same(t);
}

TEST_CASE("FOREIGN KEY ON DELETE CASCADE child deletes are captured", "[capture]") {
  for (const char* rt : {"OFF", "ON"}) {
    DYNAMIC_SECTION("recursive_triggers=" << rt) {
      TwoNodes n(
          "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT);"
          "CREATE TABLE child (id INTEGER PRIMARY KEY, "
          "  parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE ON UPDATE CASCADE, "
          "  v TEXT);");
      const std::string p =
          std::string("PRAGMA foreign_keys=ON; PRAGMA recursive_triggers=") + rt + ";";
      n.shell_a(p +
                "INSERT INTO parent VALUES (1,'p1'),(2,'p2');"
                "INSERT INTO child VALUES (10,1,'a'),(11,1,'b'),(12,2,'c');");
      n.sync();
      n.shell_a(p + "DELETE FROM parent WHERE id = 1; UPDATE parent SET id = 3 WHERE id = 2;");
      CHECK(n.a.query_int("SELECT count(*) FROM child") == 1);
      n.sync();
      n.check_same("parent");
      n.check_same("child");
      CHECK(n.b.query_int("SELECT count(*) FROM child") == 1);
      CHECK(n.b.query_int("SELECT parent_id FROM child") == 3);
    }
  }
}

TEST_CASE("writes made while the apply flag is set are not captured", "[capture]") {
  TwoNodes n("CREATE TABLE t (id INTEGER PRIMARY KEY, u TEXT UNIQUE, v TEXT);");
  {
    Transaction tx(n.a);
    n.a.exec("INSERT INTO __harmony_mute(flag) VALUES (1)");
    n.a.exec(
        "INSERT INTO t VALUES (1, 'a', 'x'), (2, 'b', 'y'); UPDATE t SET v = 'z';"
        "INSERT OR REPLACE INTO t VALUES (3, 'a', 'w'); DELETE FROM t WHERE id = 2;");
    n.a.exec("DELETE FROM __harmony_mute");
    tx.commit();
  }
  CHECK(log_rows(n.a, "t") == 0);
  CHECK(pending_total(n.a) == 0);
  // After the flag is cleared (same transaction), capture is back.
  n.shell_a("INSERT INTO t VALUES (4, 'd', 'v');");
  CHECK(pending_total(n.a) == 1);
  // Apply path: changes applied on B are not captured again on B (no echo).
  n.sync();
  CHECK(pending_total(n.b) == 0);
  CHECK(n.b.query_int("SELECT count(*) FROM " + find_captured(n.b, "t")->log) == 0);
}

TEST_CASE("harmony_enable with 'existing' publishes the rows already there", "[capture]") {
  TempDir dir("capture");
  Db a = open_test_db(dir.file("a.db"));
  Db b = open_test_db(dir.file("b.db"));
  for (Db* db : {&a, &b}) db->exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
  a.exec("INSERT INTO t VALUES (1,'x'),(2,'y')");
  EnableOptions existing;
  existing.capture_existing_rows = true;
  CHECK(enable_table(a, "t", existing));
  CHECK(enable_table(b, "t"));
  CHECK(pending_total(a) == 2);
  CHECK(!enable_table(a, "t", existing));  // idempotent: not captured twice
  CHECK(pending_total(a) == 2);
  replicate_once(a, b);
  CHECK(same_rows(table_rows(a, "t"), table_rows(b, "t")));
  // Without it, pre-existing rows stay local (the seed's case: identical starting data).
  Db c = open_test_db(dir.file("c.db"));
  c.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); INSERT INTO t VALUES (9, 'z');");
  enable_table(c, "t");
  CHECK(pending_total(c) == 0);
}

TEST_CASE("disable refuses while changes are unpublished unless told to discard", "[capture]") {
  TwoNodes n("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE s (id PRIMARY KEY);");
  n.shell_a("INSERT INTO t VALUES (1, 'x');");
  try {
    disable_table(n.a, "t", false);
    FAIL("disable_table did not refuse");
  } catch (const Error& e) {
    CHECK_THAT(e.what(), Catch::Contains("1 unpublished change") && Catch::Contains("'discard'"));
  }
  CHECK_THROWS_WITH(disable_all(n.a, false), Catch::Contains("nothing was disabled"));
  CHECK(find_captured(n.a, "t"));
  CHECK(find_captured(n.a, "s"));
  n.sync();
  CHECK(disable_table(n.a, "t", false));  // published: allowed
  CHECK(!find_captured(n.a, "t"));
  CHECK(n.a.query_int("SELECT count(*) FROM sqlite_schema WHERE name LIKE '__harmony_trg_1%'") ==
        0);
  n.shell_a("INSERT INTO t VALUES (2, 'y');");  // plain table again: writes still work
  CHECK(!disable_table(n.a, "t", false));       // not captured: nothing to do
  n.shell_a("INSERT INTO s VALUES (5);");
  CHECK(disable_all(n.a, true) == 1);
  CHECK(captured_tables(n.a).empty());
  CHECK_THROWS_WITH(disable_table(n.a, "nope", false), Catch::Contains("no such table"));
}

TEST_CASE("changes to rows with a NULL primary key are reported, not silently dropped",
          "[capture]") {
  TwoNodes n("CREATE TABLE t (name TEXT PRIMARY KEY, v INTEGER);");  // rowid table: NULL allowed
  n.shell_a("INSERT INTO t VALUES (NULL, 1), ('a', 2);");
  auto st = n.sync();
  CHECK(st.rows == 1);
  auto status = status_json(n.a);
  REQUIRE(status["problems"].size() == 1);
  CHECK_THAT(status["problems"][0].get<std::string>(), Catch::Contains("NULL"));
}

TEST_CASE("the logged ms is the wall clock of the write", "[capture]") {
  // The trigger computes ms from julianday() in plain SQL; a wrong constant or formula would
  // give every version a wrong physical time.
  TwoNodes n(kBooks);
  const int64_t before = wall_clock_ms();
  n.shell_a("INSERT INTO Books VALUES (1, 'Dune', 'Herbert', 1965);");
  n.shell_a("UPDATE Books SET id = 2 WHERE id = 1;");
  const int64_t after = wall_clock_ms();
  auto t = find_captured(n.a, "Books");
  REQUIRE(t);
  auto s = n.a.prepare("SELECT k1, ms FROM " + t->log + " ORDER BY seq");
  std::vector<int64_t> keys;
  while (s.step()) {
    keys.push_back(s.column_int(0));
    CHECK(s.column_int(1) >= before - 1);  // julianday() keeps ms; the CAST may drop one
    CHECK(s.column_int(1) <= after);
  }
  // INSERT, then the key change: old key first (the fold turns it into a tombstone), then new.
  CHECK(keys == std::vector<int64_t>{1, 1, 2});
}

TEST_CASE("triggers of the previous release are replaced and what they logged still publishes",
          "[capture]") {
  // Upgrade path: a database captured by the previous release holds its trigger text (julianday
  // of 'now', two INSERTs per UPDATE). Those triggers keep working with this build's fold until
  // the replicator's start-up or harmony_enable installs the current ones.
  TwoNodes n(kBooks);
  auto t = find_captured(n.a, "Books");
  REQUIRE(t);
  const std::string log = t->log;
  const std::string ms = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";
  n.a.exec(fmt::format(
      "DROP TRIGGER \"__harmony_trg_{0}_upd\";"
      "CREATE TRIGGER \"__harmony_trg_{0}_upd\" AFTER UPDATE ON \"Books\"\n"
      "WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute)\nBEGIN\n"
      "  INSERT INTO {1} (k1, ms) SELECT OLD.\"id\", {2} WHERE OLD.\"id\" IS NOT NEW.\"id\";\n"
      "  INSERT INTO {1} (k1, ms) VALUES (NEW.\"id\", {2});\nEND;"
      "DROP TRIGGER \"__harmony_trg_{0}_ins\";"
      "CREATE TRIGGER \"__harmony_trg_{0}_ins\" AFTER INSERT ON \"Books\"\n"
      "WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute)\nBEGIN\n"
      "  INSERT INTO {1} (k1, ms) VALUES (NEW.\"id\", {2});\nEND;",
      t->id, log, ms));
  CHECK(!triggers_installed(n.a, *t));  // stale: start-up and harmony_enable reinstall them
  // ... and said to be outdated, not missing: every write was captured (the start-up log says
  // so instead of warning that writes were lost).
  CHECK(capture_trigger_state(n.a, *t) == TriggerState::Outdated);
  n.shell_a(
      "INSERT INTO Books VALUES (1, 'Dune', 'Herbert', 1965), (2, 'Emma', 'Austen', 1815);"
      "UPDATE Books SET id = 3 WHERE id = 2;");
  CHECK(log_rows(n.a, "Books") == 4);  // 2 inserts, old key + new key

  CHECK_FALSE(enable_table(n.a, "Books"));  // not new: a repair
  CHECK(triggers_installed(n.a, *t));
  CHECK(log_rows(n.a, "Books") == 4);  // nothing logged or lost by the reinstall
  n.shell_a(
      "UPDATE Books SET title = 'Dune Messiah' WHERE id = 1; DELETE FROM Books WHERE id = 3;");
  n.sync();
  n.check_same("Books");
  auto rows = table_rows(n.b, "Books");
  REQUIRE(rows.size() == 1);
  CHECK(std::get<Text>(rows[0][1]).bytes == "Dune Messiah");
}

TEST_CASE("a capture trigger dropped behind capture's back is missing, not outdated", "[capture]") {
  TwoNodes n(kBooks);
  auto t = find_captured(n.a, "Books");
  REQUIRE(t);
  CHECK(capture_trigger_state(n.a, *t) == TriggerState::Complete);
  n.a.exec(fmt::format("DROP TRIGGER \"__harmony_trg_{}_del\"", t->id));
  CHECK(capture_trigger_state(n.a, *t) == TriggerState::Missing);
}
