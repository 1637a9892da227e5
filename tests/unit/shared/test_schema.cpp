// Capture and the schema: which tables can be captured (and the messages when not), identifiers
// that need quoting, and DDL after enabling (ADD COLUMN, RENAME COLUMN/TABLE, DROP TABLE, new
// UNIQUE indexes): app writes keep working and capture stays correct, or harmony_status() says
// what is wrong. Never a silent stop.
#include "tests/support/capture_fixture.hpp"

#include "shared/schema.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {
std::string enable_error(Db& db, const std::string& table) {
  try {
    enable_table(db, table);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("identifiers that need quoting are captured and replicated", "[capture][schema]") {
  const std::string schema =
      "CREATE TABLE \"my table\" (\"the id\" INTEGER PRIMARY KEY, \"va\"\"lue\" TEXT, "
      "  [select] TEXT, \"Ünï\" TEXT);"
      "CREATE TABLE \"we\"\"ird'name\" (\"k\"\"1\" TEXT, \"order\" INTEGER, v, "
      "  PRIMARY KEY (\"k\"\"1\", \"order\")) WITHOUT ROWID;"
      "CREATE TABLE \"select\" (\"from\" INTEGER PRIMARY KEY, \"where\" TEXT UNIQUE);"
      "CREATE TABLE \"Ünïcødé Täble ✓\" (\"ключ\" TEXT PRIMARY KEY NOT NULL, \"значение\");"
      "CREATE TABLE MixedCase (Id INTEGER PRIMARY KEY, Val TEXT);"
      "CREATE TABLE \"semi;colon -- dash\" (id INTEGER PRIMARY KEY, \"a]b\" TEXT);";
  TwoNodes n(schema);
  CHECK(captured_tables(n.a).size() == 6);
  n.shell_a(
      "PRAGMA trusted_schema=OFF;"
      "INSERT INTO \"my table\" VALUES (1, 'q\"uote', 'kw', 'ü');"
      "INSERT INTO \"we\"\"ird'name\" VALUES ('a''b', 1, x'00'), ('c', 2, NULL);"
      "INSERT INTO \"select\" VALUES (1, 'x'), (2, 'y');"
      "REPLACE INTO \"select\" VALUES (3, 'x');"
      "INSERT INTO \"Ünïcødé Täble ✓\" VALUES ('ключ', 'значение'), ('Ключ', 'case');"
      "INSERT INTO mixedcase VALUES (1, 'lower-case name'); INSERT INTO MIXEDCASE VALUES (2, 'u');"
      "UPDATE MixedCase SET ID = 3 WHERE id = 2;"
      "INSERT INTO \"semi;colon -- dash\" VALUES (1, 'v');");
  auto st = n.sync();
  CHECK(st.apply.dead_lettered == 0);
  for (const char* t :
       {"my table", "we\"ird'name", "select", "Ünïcødé Täble ✓", "MixedCase", "semi;colon -- dash"})
    n.check_same(t);
  CHECK(n.b.query_int("SELECT count(*) FROM \"select\"") == 2);
  // Names are matched like SQLite matches them: ASCII case-insensitively, other letters exactly.
  CHECK(!enable_table(n.a, "mixedcase"));
  CHECK(!enable_table(n.a, "MY TABLE"));
  CHECK(find_captured(n.a, "MIXEDCASE")->name == "MixedCase");
  CHECK_THAT(enable_error(n.a, "üNÏcødé täble ✓"), Catch::Contains("no such table"));
}

TEST_CASE("tables without a declared primary key are refused with a clear message",
          "[capture][schema]") {
  TempDir dir("schema");
  Db db = open_test_db(dir.file("s.db"));
  auto reversed = [](void*, int n1, const void* a, int n2, const void* b) {
    return -std::string_view(static_cast<const char*>(a), static_cast<size_t>(n1))
                .compare(std::string_view(static_cast<const char*>(b), static_cast<size_t>(n2)));
  };
  REQUIRE(sqlite3_create_collation(db.handle(), "my_collation", SQLITE_UTF8, nullptr, reversed) ==
          SQLITE_OK);
  db.exec(
      "CREATE TABLE logs (at INTEGER, msg TEXT);"
      "CREATE TABLE ok (id INTEGER PRIMARY KEY);"
      "CREATE TABLE odd (id INT PRIMARY KEY COLLATE my_collation);");
  auto msg = enable_error(db, "logs");
  CHECK_THAT(msg, Catch::Contains("\"logs\"") && Catch::Contains("no PRIMARY KEY"));
  std::vector<std::string> skipped;
  CHECK(enable_all(db, {}, &skipped) == 1);  // only "ok"
  REQUIRE(skipped.size() == 2);
  CHECK_THAT(skipped[0], Catch::Contains("logs"));
  CHECK_THAT(skipped[1], Catch::Contains("collation"));
  // Writes to the refused table still work, and nothing was installed on it.
  db.exec("INSERT INTO logs VALUES (1, 'x')");
  CHECK(db.query_int("SELECT count(*) FROM sqlite_schema WHERE type='trigger' AND "
                     "tbl_name='logs'") == 0);
}

TEST_CASE("virtual tables, FTS5 shadow tables, views, sqlite_* and our own objects",
          "[capture][schema]") {
  TempDir dir("schema");
  Db db = open_test_db(dir.file("s.db"));
  db.exec(
      "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
      "CREATE VIRTUAL TABLE notes_fts USING fts5(body, content='notes', content_rowid='id');"
      "CREATE VIRTUAL TABLE docs USING fts5(title, body);"
      "CREATE VIRTUAL TABLE places USING rtree(id, minx, maxx);"
      "CREATE VIEW v AS SELECT * FROM notes;"
      "CREATE TABLE seq (id INTEGER PRIMARY KEY AUTOINCREMENT);"
      "INSERT INTO seq DEFAULT VALUES; ANALYZE;");
  std::vector<std::string> skipped;
  CHECK(enable_all(db, {}, &skipped) == 2);  // notes and seq
  std::vector<std::string> names;
  for (const auto& t : captured_tables(db)) names.push_back(t.name);
  CHECK(names == std::vector<std::string>{"notes", "seq"});
  CHECK_THAT(enable_error(db, "docs"), Catch::Contains("virtual table"));
  CHECK_THAT(enable_error(db, "docs_data"), Catch::Contains("shadow table"));
  CHECK_THAT(enable_error(db, "docs_content"), Catch::Contains("shadow table"));
  CHECK_THAT(enable_error(db, "notes_fts_idx"), Catch::Contains("shadow table"));
  CHECK_THAT(enable_error(db, "places"), Catch::Contains("virtual table"));
  CHECK_THAT(enable_error(db, "places_node"), Catch::Contains("shadow table"));
  CHECK_THAT(enable_error(db, "v"), Catch::Contains("view"));
  CHECK_THAT(enable_error(db, "sqlite_sequence"), Catch::Contains("internal"));
  CHECK_THAT(enable_error(db, "sqlite_stat1"), Catch::Contains("internal"));
  CHECK_THAT(enable_error(db, "SQLITE_SCHEMA"), Catch::Contains("internal"));
  CHECK_THAT(enable_error(db, "__harmony_meta"), Catch::Contains("internal"));
  CHECK_THAT(enable_error(db, "__harmony_log_1"), Catch::Contains("internal"));
  CHECK_THAT(enable_error(db, "__HARMONY_rows_1"), Catch::Contains("internal"));
  CHECK_THAT(enable_error(db, "__harmonylite__Books_change_log"), Catch::Contains("internal"));
  // FTS5 kept working on a captured content table, from a plain shell.
  shell_ok(dir.file("s.db"),
           "INSERT INTO notes VALUES (1, 'hello world');"
           "INSERT INTO notes_fts(rowid, body) VALUES (1, 'hello world');"
           "INSERT INTO docs VALUES ('t', 'b');");
  CHECK(pending_total(db) == 1);
}

TEST_CASE("ALTER TABLE ADD COLUMN after enabling: writes and capture continue",
          "[capture][schema]") {
  TwoNodes n("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT);");
  n.shell_a("INSERT INTO t VALUES (1, 'x');");
  n.sync();
  for (const auto& p : {n.path_a, n.path_b})
    shell_ok(p, "ALTER TABLE t ADD COLUMN b INTEGER DEFAULT 7; ALTER TABLE t ADD COLUMN c TEXT;");
  n.shell_a("INSERT INTO t VALUES (2, 'y', 8, 'new'); UPDATE t SET c = 'set' WHERE id = 1;");
  CHECK(triggers_installed(n.a, *find_captured(n.a, "t")));
  n.sync();
  n.check_same("t");
  CHECK(status_json(n.a)["problems"].empty());
}

TEST_CASE("RENAME COLUMN after enabling, also of a primary key column", "[capture][schema]") {
  TwoNodes n(
      "CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT UNIQUE, b TEXT);"
      "CREATE TABLE c (x TEXT, y INTEGER, v, PRIMARY KEY (x, y)) WITHOUT ROWID;");
  n.shell_a("INSERT INTO t VALUES (1, 'p', 'q'); INSERT INTO c VALUES ('k', 1, 'v');");
  n.sync();
  for (const auto& p : {n.path_a, n.path_b})
    shell_ok(p,
             "ALTER TABLE t RENAME COLUMN b TO bee; ALTER TABLE t RENAME COLUMN id TO ident;"
             "ALTER TABLE t RENAME COLUMN a TO \"a a\"; ALTER TABLE c RENAME COLUMN y TO \"Y 2\";");
  for (const char* t : {"t", "c"}) {
    auto ct = find_captured(n.a, t);
    REQUIRE(ct);
    CHECK(triggers_installed(n.a, *ct));  // SQLite rewrote our triggers with the new names
  }
  n.shell_a(
      "INSERT INTO t VALUES (2, 'r', 's'); UPDATE t SET ident = 10 WHERE ident = 1;"
      "REPLACE INTO t VALUES (3, 'r', 'replaced 2');"
      "UPDATE c SET \"Y 2\" = 5; INSERT INTO c VALUES ('k', 6, 'w');");
  auto st = n.sync();
  CHECK(st.apply.dead_lettered == 0);
  n.check_same("t");
  n.check_same("c");
  CHECK(show(*n.b.query_value(
            "SELECT group_concat(ident) FROM (SELECT ident FROM t ORDER BY 1)")) == "'3,10'");
  CHECK(status_json(n.a)["problems"].empty());
}

TEST_CASE("DROP TABLE after enabling is reported, other tables keep replicating",
          "[capture][schema]") {
  TwoNodes n(
      "CREATE TABLE gone (id INTEGER PRIMARY KEY, v TEXT);"
      "CREATE TABLE kept (id INTEGER PRIMARY KEY, v TEXT);");
  n.shell_a("INSERT INTO gone VALUES (1, 'x'); INSERT INTO kept VALUES (1, 'y');");
  n.sync();
  n.shell_a("INSERT INTO gone VALUES (2, 'pending'); DROP TABLE gone;");
  n.shell_a("INSERT INTO kept VALUES (2, 'z');");
  auto status = status_json(n.a);
  INFO(status.dump());
  bool listed = false;
  for (const auto& t : status["tables"])
    if (t["name"] == "gone") listed = t.value("dropped", false);
  CHECK(listed);
  REQUIRE(status["problems"].size() == 1);
  CHECK_THAT(status["problems"][0].get<std::string>(),
             Catch::Contains("\"gone\" was dropped") && Catch::Contains("harmony_disable('gone')"));
  auto st = n.sync();
  CHECK(st.rows == 1);
  n.check_same("kept");

  // Recreated under the same name: writes work; the missing triggers are reported, and
  // harmony_enable repairs capture.
  n.shell_a(
      "CREATE TABLE gone (id INTEGER PRIMARY KEY, v TEXT, extra); "
      "INSERT INTO gone VALUES (5, 'new', 1);");
  auto t = find_captured(n.a, "gone");
  REQUIRE(t);
  CHECK(!triggers_installed(n.a, *t));
  status = status_json(n.a);
  REQUIRE(status["problems"].size() == 1);
  CHECK_THAT(status["problems"][0].get<std::string>(), Catch::Contains("missing or out of date"));
  CHECK(!enable_table(n.a, "gone"));  // same registry entry, triggers reinstalled
  CHECK(triggers_installed(n.a, *find_captured(n.a, "gone")));
  CHECK(status_json(n.a)["problems"].empty());
  n.shell_a("INSERT INTO gone VALUES (6, 'captured', 2);");
  {
    // Row 6 goes out; so does a tombstone for row 2, logged just before the DROP and absent
    // from the new table. Row 5, written while the triggers were missing, does not.
    Transaction tx(n.a);
    Batch batch = collect_pending(n.a, {*find_captured(n.a, "gone")}, node_id(n.a), 1000);
    REQUIRE(batch.rows.size() == 2);
    CHECK(values_identical(batch.rows[0].key[0], Value{int64_t{2}}));
    CHECK(batch.rows[0].deleted);
    CHECK(values_identical(batch.rows[1].key[0], Value{int64_t{6}}));
    CHECK(!batch.rows[1].deleted);
  }

  // Recreated with a different primary key: the old change log cannot be reused.
  n.shell_a("DROP TABLE gone; CREATE TABLE gone (a TEXT, b TEXT, PRIMARY KEY (a, b));");
  CHECK(!enable_table(n.a, "gone"));
  n.shell_a("INSERT INTO gone VALUES ('x', 'y');");
  CHECK(total_pending(n.a, {*find_captured(n.a, "gone")}) == 1);
  {
    Transaction tx(n.a);
    collect_pending(n.a, captured_tables(n.a), node_id(n.a), 1000);  // must not throw
  }
  // Recreated without a primary key: reported as dropped; disable cleans up.
  n.shell_a("DROP TABLE gone; CREATE TABLE gone (v); INSERT INTO gone VALUES (1);");
  CHECK(!find_captured(n.a, "gone"));
  CHECK(dropped_captured_tables(n.a).size() == 1);
  CHECK(disable_table(n.a, "gone", false));
  CHECK(status_json(n.a)["problems"].empty());
}

TEST_CASE("a UNIQUE index created after enabling is detected and covered after repair",
          "[capture][schema]") {
  TwoNodes n("CREATE TABLE u (id INTEGER PRIMARY KEY, email TEXT, nick TEXT UNIQUE);");
  n.shell_a("INSERT INTO u VALUES (1, 'a', 'n1'), (2, 'b', 'n2');");
  n.sync();
  for (const auto& p : {n.path_a, n.path_b}) shell_ok(p, "CREATE UNIQUE INDEX ue ON u(email);");
  CHECK(!triggers_installed(n.a, *find_captured(n.a, "u")));
  auto problems = status_json(n.a)["problems"];
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0].get<std::string>(), Catch::Contains("UNIQUE index was added"));
  CHECK(!enable_table(n.a, "u"));
  CHECK(triggers_installed(n.a, *find_captured(n.a, "u")));
  n.shell_a("INSERT OR REPLACE INTO u VALUES (3, 'a', 'n3');");  // removes row 1 through ue
  n.sync();
  n.check_same("u");
  CHECK(n.b.query_int("SELECT count(*) FROM u") == 2);
  // Dropping the index makes the triggers stale too (they would block DROP COLUMN).
  n.shell_a("DROP INDEX ue;");
  CHECK(!triggers_installed(n.a, *find_captured(n.a, "u")));
  enable_table(n.a, "u");
  n.shell_a("ALTER TABLE u DROP COLUMN email;");
  CHECK(triggers_installed(n.a, *find_captured(n.a, "u")));
  // A UNIQUE index on an expression is reported (REPLACE through it needs recursive_triggers).
  n.shell_a("CREATE UNIQUE INDEX ux ON u(lower(nick));");
  enable_table(n.a, "u");
  problems = status_json(n.a)["problems"];
  REQUIRE(problems.size() == 1);
  CHECK_THAT(problems[0].get<std::string>(), Catch::Contains("\"ux\" is on an expression"));
}

TEST_CASE("RENAME TABLE after enabling keeps capturing under the new name", "[capture][schema]") {
  TwoNodes n("CREATE TABLE old_name (id INTEGER PRIMARY KEY, v TEXT);");
  n.shell_a("INSERT INTO old_name VALUES (1, 'x');");
  n.sync();
  for (const auto& p : {n.path_a, n.path_b})
    shell_ok(p, "ALTER TABLE old_name RENAME TO new_name;");
  n.shell_a("INSERT INTO new_name VALUES (2, 'y');");
  auto tables = captured_tables(n.a);
  REQUIRE(tables.size() == 1);
  CHECK(tables[0].name == "new_name");
  CHECK(triggers_installed(n.a, tables[0]));
  CHECK(status_json(n.a)["problems"].empty());
  n.sync();
  n.check_same("new_name");
  // A new table with the old name is a different table.
  for (const auto& p : {n.path_a, n.path_b})
    shell_ok(p, "CREATE TABLE old_name (id INTEGER PRIMARY KEY, w TEXT);");
  CHECK(enable_table(n.a, "old_name"));
  CHECK(enable_table(n.b, "old_name"));
  CHECK(captured_tables(n.a).size() == 2);
  n.shell_a("INSERT INTO old_name VALUES (1, 'o'); INSERT INTO new_name VALUES (3, 'z');");
  n.sync();
  n.check_same("new_name");
  n.check_same("old_name");
}

TEST_CASE("NOCASE and RTRIM primary keys behave as in the source table", "[capture][schema]") {
  TwoNodes n(
      "CREATE TABLE n (k TEXT COLLATE NOCASE PRIMARY KEY, v INTEGER);"
      "CREATE TABLE r (k TEXT COLLATE RTRIM PRIMARY KEY, v INTEGER) WITHOUT ROWID;");
  n.shell_a(
      "INSERT INTO n VALUES ('Key', 1); UPDATE n SET k = 'KEY' WHERE k = 'key';"
      "INSERT INTO r VALUES ('a', 1); UPDATE r SET k = 'a  ', v = 2 WHERE k = 'a';");
  n.sync();
  n.check_same("n");
  n.check_same("r");
  n.shell_a("DELETE FROM n WHERE k = 'kEy'; DELETE FROM r WHERE k = 'a';");
  n.sync();
  n.check_same("n");
  n.check_same("r");
  CHECK(n.b.query_int("SELECT count(*) FROM n") == 0);
}

TEST_CASE("partial UNIQUE indexes: REPLACE through them is captured, lookups use the index",
          "[capture][schema]") {
  CHECK(index_predicate("CREATE UNIQUE INDEX pu ON p(code) WHERE active=1") == "active=1");
  CHECK(index_predicate("CREATE UNIQUE INDEX \"a(b\" ON \"t)\"(\"c)\" COLLATE NOCASE, "
                        "lower('x)')) -- (\n  where  (x = ')') AND y IN (1, 2) ;") ==
        "(x = ')') AND y IN (1, 2)");
  CHECK(index_predicate("CREATE UNIQUE INDEX i ON t(a, b)").empty());
  CHECK(index_predicate("CREATE INDEX [where] ON t([where]) /* WHERE */").empty());
  CHECK(index_predicate("").empty());
  CHECK(index_predicate("CREATE UNIQUE INDEX i ON t(\"unterminated").empty());
  CHECK(index_predicate("CREATE UNIQUE INDEX i ON t(a) WHERE").empty());
  CHECK(index_predicate("CREATE UNIQUE INDEX i ON t(a) /* unterminated").empty());

  for (const char* rt : {"OFF", "ON"}) {
    DYNAMIC_SECTION("recursive_triggers=" << rt) {
      TwoNodes n(
          "CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT, active INTEGER);"
          "CREATE UNIQUE INDEX pu ON p(code) WHERE active = 1;");
      const std::string pre = std::string("PRAGMA recursive_triggers=") + rt + ";";
      n.shell_a(pre + "INSERT INTO p VALUES (1, 'x', 1), (2, 'x', 0), (3, 'y', 1);");
      n.sync();
      // Row 1 holds 'x' under the index predicate: replaced. Row 2 ('x', inactive) stays.
      n.shell_a(pre + "INSERT OR REPLACE INTO p VALUES (4, 'x', 1);");
      n.sync();
      n.check_same("p");
      CHECK(show(*n.b.query_value("SELECT group_concat(id) FROM (SELECT id FROM p ORDER BY id)")) ==
            "'2,3,4'");
    }
  }
  // The "might be replaced" lookup carries the index predicate, so SQLite can use the index.
  TempDir dir("schema");
  Db db = open_test_db(dir.file("p.db"));
  db.exec(
      "CREATE TABLE p (id INTEGER PRIMARY KEY, code TEXT, active INTEGER);"
      "CREATE UNIQUE INDEX pu ON p(code) WHERE active = 1;");
  enable_table(db, "p");
  auto sql = db.query_value(
      "SELECT sql FROM sqlite_schema WHERE name LIKE '__harmony_trg_%_bins' ESCAPE '\\'");
  REQUIRE(sql);
  CHECK_THAT(show(*sql), Catch::Contains("(active = 1)"));
  auto plan = db.prepare(
      "EXPLAIN QUERY PLAN SELECT id FROM p WHERE (\"code\" COLLATE BINARY = ?1 AND "
      "(active = 1))");
  REQUIRE(plan.step());
  CHECK_THAT(plan.column_text(3), Catch::Contains("USING INDEX pu"));
  // Renaming a column used by the predicate keeps the triggers current.
  db.exec("ALTER TABLE p RENAME COLUMN active TO enabled");
  CHECK(triggers_installed(db, *find_captured(db, "p")));
}

TEST_CASE("table and column names that look like SQL keep capture intact", "[capture][schema]") {
  // (Names with control characters, e.g. a newline, are refused on the wire since issue 14:
  // replicator/wire/codec.cpp. These keep the SQL keywords and quoting that matter here.)
  TwoNodes n(
      "CREATE TABLE \"x END; \" (\"END;\" INTEGER PRIMARY KEY, \" END;\" TEXT UNIQUE, "
      "\"CREATE TRIGGER \"\"\" TEXT);");
  auto t = find_captured(n.a, "x END; ");
  REQUIRE(t);
  CHECK(triggers_installed(n.a, *t));
  n.shell_a(
      "INSERT INTO \"x END; \" VALUES (1, 'a', 'b'); REPLACE INTO \"x END; \" VALUES (2, "
      "'a', 'c');");
  n.sync();
  n.check_same("x END; ");
  CHECK(n.b.query_int("SELECT count(*) FROM \"x END; \"") == 1);
}
