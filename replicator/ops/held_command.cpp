// -held and -drop-held (see held_command.hpp).
#include "replicator/ops/held_command.hpp"

#include <unistd.h>

#include <cstdio>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/common/database.hpp"
#include "shared/clock.hpp"
#include "shared/dead_letters.hpp"
#include "shared/held.hpp"

namespace harmony {

namespace {

// A database without harmonylite's tables holds nothing.
bool has_held_table(Db& db) {
  return db.query_int(
             "SELECT count(*) FROM sqlite_schema WHERE type='table' AND "
             "name='__harmony_held'") > 0;
}

void require_database(const Config& config) {
  if (access(config.db_path.c_str(), R_OK) != 0)
    throw Error(fmt::format("database {} does not exist or is not readable", config.db_path));
}

}  // namespace

int run_list_held(const Config& config) {
  require_database(config);
  Db db = Db::open(config.db_path, SQLITE_OPEN_READONLY);
  db.set_busy_timeout(2000);
  if (!has_held_table(db)) {
    std::printf("no held rows\n");
    return 0;
  }
  auto s = db.prepare(
      "SELECT id, stream, seq, origin_node, table_name, row_count, kind, at_ms, attempts, reason "
      "FROM __harmony_held ORDER BY id");
  const int64_t now = wall_clock_ms();
  int64_t entries = 0, rows = 0;
  std::printf("%-6s %-24s %-8s %-6s %-20s %-6s %-10s %-8s %s\n", "id", "stream", "seq", "origin",
              "table", "rows", "kind", "age_s", "reason");
  while (s.step()) {
    ++entries;
    rows += s.column_int(5);
    std::printf("%-6lld %-24s %-8lld %-6lld %-20s %-6lld %-10s %-8lld %s\n",
                static_cast<long long>(s.column_int(0)), s.column_text(1).c_str(),
                static_cast<long long>(s.column_int(2)), static_cast<long long>(s.column_int(3)),
                s.column_text(4).c_str(), static_cast<long long>(s.column_int(5)),
                s.column_text(6).c_str(), static_cast<long long>((now - s.column_int(7)) / 1000),
                s.column_text(9).c_str());
  }
  std::printf("%lld held entr%s, %lld row(s)\n", static_cast<long long>(entries),
              entries == 1 ? "y" : "ies", static_cast<long long>(rows));
  return 0;
}

int run_drop_held(const Config& config, const std::string& which) {
  int64_t id = 0;
  if (which != "all") {
    try {
      size_t used = 0;
      id = std::stoll(which, &used);
      if (used != which.size() || id <= 0) throw std::invalid_argument(which);
    } catch (const std::exception&) {
      throw Error(
          fmt::format("-drop-held takes an entry id (see -held) or \"all\", not \"{}\"", which));
    }
  }
  require_database(config);
  Db db = open_database(config.db_path);
  if (!has_held_table(db)) {
    spdlog::info("{} holds no rows", config.db_path);
    return 1;
  }
  int64_t entries = 0, rows = 0;
  Transaction tx(db);
  auto s = db.prepare(
      std::string("SELECT id, stream, seq, origin_node, batch_id, table_name, reason, row_count, "
                  "payload FROM __harmony_held") +
      (id ? " WHERE id = ?1" : "") + " ORDER BY id");
  if (id) s.bind(1, id);
  std::vector<int64_t> ids;
  while (s.step()) {
    const std::string payload = s.column_text(8);
    DeadLetter d;
    d.stream = s.column_text(1);
    d.seq = static_cast<uint64_t>(s.column_int(2));
    d.origin = static_cast<uint64_t>(s.column_int(3));
    d.batch_id = static_cast<uint64_t>(s.column_int(4));
    d.table = s.column_text(5);
    d.reason = "dropped by the operator (-drop-held) while held: " + s.column_text(6);
    d.payload = payload;
    record_dead_letter(db, d, wall_clock_ms());
    ids.push_back(s.column_int(0));
    rows += s.column_int(7);
    ++entries;
  }
  forget_held_ids(db, ids);
  tx.commit();
  if (entries == 0) {
    spdlog::warn("no held entry {} in {} (see -held)", which, config.db_path);
    return 1;
  }
  spdlog::info("moved {} held entr{} ({} row(s)) of {} to __harmony_dead_letters", entries,
               entries == 1 ? "y" : "ies", rows, config.db_path);
  return 0;
}

}  // namespace harmony
