// Coming from HarmonyLite: a database that still carries HarmonyLite's change capture (its
// `__harmonylite__*` tables, index and triggers, built here from HarmonyLite's trigger scripts
// as ../shared/reference/harmonylite.md §2 gives them) is reported at start-up with what to do,
// and `-cleanup` removes them, leaving the application's tables and rows.
#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "tests/support/cluster.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// HarmonyLite's db/global_change_log_script.tmpl and db/table_change_log_script.tmpl rendered
// for Books(id, title, author, publication_year): the global table, the per-table change log
// with its state index, and the insert/update/delete triggers.
std::string harmonylite_capture_sql() {
  std::string sql =
      "CREATE TABLE IF NOT EXISTS __harmonylite___change_log_global (id INTEGER PRIMARY KEY "
      "AUTOINCREMENT, change_table_id INTEGER, table_name TEXT);"
      "CREATE TABLE IF NOT EXISTS __harmonylite__schema_version(id INTEGER PRIMARY KEY "
      "CHECK(id=1), schema_hash TEXT NOT NULL, updated_at INTEGER NOT NULL, harmonylite_version "
      "TEXT);"
      "CREATE TABLE IF NOT EXISTS __harmonylite__Books_change_log (id INTEGER PRIMARY KEY "
      "AUTOINCREMENT, val_id INTEGER, val_title TEXT, val_author TEXT, val_publication_year "
      "INTEGER, type TEXT, created_at INTEGER, state INTEGER);"
      "CREATE INDEX IF NOT EXISTS __harmonylite__Books_change_log_state_index ON "
      "__harmonylite__Books_change_log (state);";
  for (const auto& [op, target] :
       {std::pair{"delete", "OLD"}, std::pair{"insert", "NEW"}, std::pair{"update", "NEW"}})
    sql += fmt::format(
        "CREATE TRIGGER IF NOT EXISTS __harmonylite__Books_change_log_on_{0} AFTER {0} ON Books "
        "WHEN (SELECT COUNT(*) FROM pragma_function_list WHERE name='harmonylite_version') < 1 "
        "BEGIN INSERT INTO __harmonylite__Books_change_log(val_id, val_title, val_author, "
        "val_publication_year, type, created_at, state) VALUES({1}.id, {1}.title, {1}.author, "
        "{1}.publication_year, '{0}', CAST((strftime('%s','now') || "
        "substr(strftime('%f','now'),4)) as INT), 0); INSERT INTO "
        "__harmonylite___change_log_global (change_table_id, table_name) VALUES "
        "(last_insert_rowid(), 'Books'); END;",
        op, target);
  return sql;
}

}  // namespace

TEST_CASE("HarmonyLite's triggers are reported at start-up and removed by -cleanup",
          "[migrating]") {
  ClusterOptions o;
  o.nodes = 1;
  o.schema +=
      harmonylite_capture_sql() + "INSERT INTO Books (title, author) VALUES ('Dune', 'Herbert');";
  o.extra_config = "[snapshot]\nenabled = false\n";
  TestCluster c(o);
  const char* objects = "SELECT count(*) FROM sqlite_schema WHERE name GLOB '__harmonylite__*'";
  REQUIRE(c.query_int(0, objects) == 7);  // 3 tables, 1 index, 3 triggers
  c.start(0);
  REQUIRE(c.wait_ready(0));
  INFO(c.log(0));
  CHECK(c.log(0).find("still carries HarmonyLite's change capture: 3 trigger(s)") !=
        std::string::npos);
  CHECK(c.log(0).find("-cleanup") != std::string::npos);
  REQUIRE(c.stop(0) == 0);

  auto r = run_command({harmonylite_path(), "-config", c.config(0), "-cleanup"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("removed HarmonyLite's 3 trigger(s) and 3 table(s)") != std::string::npos);
  CHECK(c.query_int(0, objects) == 0);
  CHECK(c.query_text(0, "SELECT title FROM Books") == "Dune");
  // The application's writes no longer go through HarmonyLite's triggers.
  c.exec(0, "PRAGMA trusted_schema = OFF; INSERT INTO Books (title, author) VALUES ('x', 'y');");
  CHECK(c.query_int(0, "SELECT count(*) FROM Books") == 2);
}
