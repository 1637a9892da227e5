// shared/app_triggers.cpp: which tables an application trigger writes, whether it is muted while
// the replicator applies, and which of them make a replicated table diverge (issue 15 case 8).
#include <catch2/catch.hpp>

#include "shared/app_triggers.hpp"
#include "shared/capture.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {
using Targets = std::vector<std::pair<std::string, bool>>;
Targets targets(const std::string& sql) {
  return parse_trigger_writes(sql).targets;
}
}  // namespace

TEST_CASE("trigger bodies: the four writing statements, quoting, comments", "[app_triggers]") {
  CHECK(targets("CREATE TRIGGER t AFTER INSERT ON o BEGIN INSERT INTO audit(x) VALUES (1); END") ==
        Targets{{"audit", false}});
  CHECK(targets("CREATE TRIGGER t AFTER DELETE ON o FOR EACH ROW BEGIN "
                "INSERT OR IGNORE INTO a VALUES (1); REPLACE INTO \"b c\" VALUES (2);"
                "UPDATE OR REPLACE [d] SET x = 1; DELETE FROM `e` WHERE 1;"
                "SELECT raise(IGNORE); INSERT INTO A VALUES (3) ON CONFLICT DO UPDATE SET x = 2;"
                "END") == Targets{{"a", false}, {"b c", false}, {"d", false}, {"e", false}});
  // Comments and strings that look like statements write nothing; "begin" as a name is a name.
  CHECK(targets("CREATE TRIGGER \"begin\" AFTER UPDATE OF x, y ON begin -- INSERT INTO no\n"
                "BEGIN /* DELETE FROM no2; */ SELECT 'UPDATE no3 SET'; UPDATE x SET y = 1; END") ==
        Targets{{"x", false}});
  CHECK(targets("CREATE VIEW v AS SELECT 1").empty());
  CHECK(targets("CREATE TRIGGER t AFTER INSERT ON o BEGIN").empty());  // truncated: nothing
}

TEST_CASE("trigger guards: only NOT EXISTS of __harmony_mute without an OR", "[app_triggers]") {
  const std::string body = " BEGIN INSERT INTO audit VALUES (1); END";
  CHECK(targets("CREATE TRIGGER t AFTER INSERT ON o WHEN NOT EXISTS (SELECT 1 FROM "
                "__harmony_mute)" +
                body) == Targets{{"audit", true}});
  CHECK(targets("CREATE TRIGGER t AFTER INSERT ON o WHEN new.x > 0 AND NOT exists(select * from "
                "\"__HARMONY_MUTE\")" +
                body) == Targets{{"audit", true}});
  CHECK(targets("CREATE TRIGGER t AFTER INSERT ON o WHEN EXISTS (SELECT 1 FROM __harmony_mute)" +
                body) == Targets{{"audit", false}});
  CHECK(targets("CREATE TRIGGER t AFTER INSERT ON o WHEN new.x OR NOT EXISTS (SELECT 1 FROM "
                "__harmony_mute)" +
                body) == Targets{{"audit", false}});
  // In the statement itself; one unguarded write to the same table is enough to diverge.
  CHECK(targets("CREATE TRIGGER t AFTER INSERT ON o BEGIN INSERT INTO audit SELECT 1 WHERE NOT "
                "EXISTS (SELECT 1 FROM __harmony_mute); END") == Targets{{"audit", true}});
  CHECK(targets("CREATE TRIGGER t AFTER INSERT ON o BEGIN INSERT INTO audit SELECT 1 WHERE NOT "
                "EXISTS (SELECT 1 FROM __harmony_mute); DELETE FROM audit; END") ==
        Targets{{"audit", false}});
}

TEST_CASE("app_trigger_writes: triggers on captured tables, ours skipped", "[app_triggers]") {
  TempDir dir("apptrg");
  Db db = Db::open(dir.file("t.db"), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  CHECK(app_trigger_writes(db).empty());  // no registry yet
  db.exec(
      "CREATE TABLE orders (id INTEGER PRIMARY KEY); CREATE TABLE audit (id INTEGER PRIMARY KEY "
      "AUTOINCREMENT, o INTEGER); CREATE TABLE local_log (id INTEGER PRIMARY KEY, o INTEGER);"
      "CREATE TABLE other (id INTEGER PRIMARY KEY);"
      "CREATE TRIGGER a1 AFTER INSERT ON orders BEGIN INSERT INTO audit (o) VALUES (new.id); "
      "INSERT INTO local_log (o) VALUES (new.id); END;"
      "CREATE TRIGGER a2 AFTER INSERT ON other BEGIN INSERT INTO audit (o) VALUES (new.id); END;");
  enable_table(db, "orders");
  enable_table(db, "audit");
  db.exec(
      "CREATE TRIGGER a3 AFTER DELETE ON orders WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute) "
      "BEGIN DELETE FROM audit WHERE o = old.id; END;");
  const auto w = app_trigger_writes(db);
  REQUIRE(w.size() == 3);  // a2 is on a table not captured; capture's own triggers skipped
  CHECK((w[0].trigger == "a1" && w[0].source == "orders" && w[0].target == "audit"));
  CHECK(w[0].diverges());
  CHECK((w[1].target == "local_log" && !w[1].target_captured && !w[1].diverges()));
  CHECK((w[2].trigger == "a3" && w[2].guarded && !w[2].diverges()));
  const auto warnings = app_trigger_warnings(db);
  REQUIRE(warnings.size() == 1);
  CHECK_THAT(warnings[0], Catch::Contains("trigger a1 on replicated table orders writes replicated "
                                          "table audit") &&
                              Catch::Contains("WHEN NOT EXISTS (SELECT 1 FROM __harmony_mute)") &&
                              Catch::Contains("exclude_tables"));
}
