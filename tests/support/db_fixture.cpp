// Test databases and test-chosen write times (see db_fixture.hpp).
#include "tests/support/db_fixture.hpp"

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include "shared/capture.hpp"
#include "shared/hlc.hpp"
#include "shared/status.hpp"

namespace harmony::test {

// Long enough for a publisher or consumer transaction to finish, under ASan too (where a read
// without it once failed with "database is locked").
constexpr int kReaderBusyTimeoutMs = 5000;

Db open_reader(const std::string& db_path) {
  Db db = Db::open(db_path);
  db.set_busy_timeout(kReaderBusyTimeoutMs);
  return db;
}

std::string make_captured_db(const TempDir& dir, const std::string& name, uint64_t node,
                             const std::string& schema, const std::vector<std::string>& tables) {
  std::string path = dir.file(name);
  Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec(schema);
  ensure_base_schema(db);
  set_node_id(db, node);
  if (tables.empty())
    enable_all(db);
  else
    for (const auto& t : tables) enable_table(db, t);
  return path;
}

void shell_ok(const std::string& db_path, const std::string& sql) {
  CommandResult r = sqlite_shell(db_path, sql);
  INFO("sqlite3 " << db_path << " <<< " << sql << "\n" << r.output);
  REQUIRE(r.exit_code == 0);
}

int64_t query_int(const std::string& db_path, const std::string& sql) {
  return open_reader(db_path).query_int(sql, -1);
}

std::string query_text(const std::string& db_path, const std::string& sql) {
  auto v = open_reader(db_path).query_value(sql);
  if (!v) return "<none>";
  if (auto t = std::get_if<Text>(&*v)) return t->bytes;
  if (auto i = std::get_if<int64_t>(&*v)) return std::to_string(*i);
  return "<other>";
}

void WriteClock::stamp(Db& db) {
  if (last_ms_ == 0) last_ms_ = wall_clock_ms() - kStartBehindWallClockMs;
  ++last_ms_;
  for (const auto& t : captured_tables(db))
    db.prepare(fmt::format("UPDATE {} SET ms = ?1", t.log)).bind(1, last_ms_).run();
}

void WriteClock::stamp(const std::string& db_path) {
  Db db = Db::open(db_path);
  stamp(db);
}

}  // namespace harmony::test
