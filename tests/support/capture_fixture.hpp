// Shared fixture of the [capture] tests: two databases A and B with the same schema and capture
// enabled through the real shared/ code, writes to A through the stock sqlite3 shell, and
// by-hand replication A -> B (tests/support/replicate.hpp) with exact content comparison, and
// writes stamped with test-chosen times where the order of versions matters.
#pragma once
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "shared/capture.hpp"
#include "shared/outbox.hpp"
#include "shared/status.hpp"
#include "tests/support/db_fixture.hpp"
#include "tests/support/replicate.hpp"
#include "tests/support/support.hpp"

namespace harmony::test {

inline int64_t pending_total(Db& db) {
  return total_pending(db, captured_tables(db));
}

struct TwoNodes {
  TempDir dir{"capture"};
  std::string path_a = dir.file("a.db");
  std::string path_b = dir.file("b.db");
  Db a, b;

  // `schema` runs on both; then capture is enabled on `tables` (or every eligible table).
  explicit TwoNodes(const std::string& schema, const std::vector<std::string>& tables = {}) {
    a = open_test_db(path_a);
    b = open_test_db(path_b);
    for (Db* db : {&a, &b}) {
      db->exec("PRAGMA journal_mode=WAL");
      db->exec(schema);
      ensure_base_schema(*db);
      if (tables.empty())
        enable_all(*db);
      else
        for (const auto& t : tables) enable_table(*db, t);
    }
  }
  void shell_a(const std::string& sql) { shell_ok(path_a, sql); }
  void shell_b(const std::string& sql) { shell_ok(path_b, sql); }
  // A (or B) writes `sql` one ms of `clock` after the previous stamped write, whatever the wall
  // clock says: the later of two stamped writes always gets the higher version.
  void write_a(const std::string& sql) {
    shell_a(sql);
    clock.stamp(a);
  }
  void write_b(const std::string& sql) {
    shell_b(sql);
    clock.stamp(b);
  }
  WriteClock clock;
  ReplicateStats sync() { return replicate_once(a, b); }
  // A and B hold identical rows in `table` (checksum and row by row, bit-exact).
  void check_same(const std::string& table) {
    auto ra = table_rows(a, table);
    auto rb = table_rows(b, table);
    std::string dump = "A:\n";
    for (const auto& r : ra) dump += "  " + show(r) + "\n";
    dump += "B:\n";
    for (const auto& r : rb) dump += "  " + show(r) + "\n";
    INFO("table " << table << "\n" << dump);
    CHECK(same_rows(ra, rb));
    CHECK(table_checksum(a, table) == table_checksum(b, table));
  }
};

}  // namespace harmony::test
