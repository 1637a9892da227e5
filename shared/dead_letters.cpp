// Recording and pruning __harmony_dead_letters (see dead_letters.hpp).
#include "shared/dead_letters.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "shared/names.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony {

void record_dead_letter(Db& db, const DeadLetter& letter, int64_t at_ms) {
  auto s = db.prepare(
      "INSERT INTO __harmony_dead_letters(at_ms, stream, seq, origin_node, batch_id, table_name, "
      "reason, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)");
  s.bind(1, at_ms).bind(2, letter.stream).bind(3, static_cast<int64_t>(letter.seq));
  s.bind(4, static_cast<int64_t>(letter.origin)).bind(5, static_cast<int64_t>(letter.batch_id));
  if (letter.table.empty())
    s.bind_null(6);
  else
    s.bind(6, letter.table);
  s.bind(7, letter.reason);
  if (letter.payload.empty())
    s.bind_null(8);
  else
    s.bind(8, Value{Blob{std::string(letter.payload)}});
  s.run();
}

DeadLetterUsage dead_letter_usage(Db& db) {
  auto s = db.prepare(fmt::format("SELECT count(*), coalesce(sum({}), 0) FROM {}",
                                  kDeadLetterRowBytesSql, names::kDeadLetters));
  DeadLetterUsage u;
  if (s.step()) {
    u.rows = s.column_int(0);
    u.bytes = s.column_int(1);
  }
  return u;
}

PruneResult prune_dead_letters(Db& db, int64_t now_ms, const DeadLetterLimits& limits) {
  PruneResult r;
  // Age first: what has expired goes whatever the other bounds say.
  if (limits.max_age_ms > 0 && now_ms > limits.max_age_ms) {
    auto s = db.prepare(fmt::format("DELETE FROM {} WHERE at_ms < ?1", names::kDeadLetters));
    s.bind(1, now_ms - limits.max_age_ms).run();
    r.by_age = db.changes();
  }
  DeadLetterUsage u = dead_letter_usage(db);
  // The oldest by id: ids grow in the order rows were recorded (rowid = max + 1), so the newest
  // rows, the ones most likely still under investigation, are kept.
  if (const int64_t excess = u.rows - std::max<int64_t>(limits.max_rows, 0); excess > 0) {
    // LIMIT is computed here: a negative LIMIT means "no limit" to SQLite.
    auto s = db.prepare(
        fmt::format("DELETE FROM {0} WHERE id IN (SELECT id FROM {0} ORDER BY id LIMIT ?1)",
                    names::kDeadLetters));
    s.bind(1, excess).run();
    r.by_rows = db.changes();
    u = dead_letter_usage(db);
  }
  if (const int64_t excess = u.bytes - std::max<int64_t>(limits.max_bytes, 0); excess > 0) {
    // The newest id whose removal, with every older row, frees at least `excess` bytes.
    auto find = db.prepare(
        fmt::format("SELECT id FROM (SELECT id, sum({1}) OVER (ORDER BY id) AS freed FROM {0}) "
                    "WHERE freed >= ?1 ORDER BY id LIMIT 1",
                    names::kDeadLetters, kDeadLetterRowBytesSql));
    find.bind(1, excess);
    if (find.step()) {
      const int64_t last = find.column_int(0);
      auto s = db.prepare(fmt::format("DELETE FROM {} WHERE id <= ?1", names::kDeadLetters));
      s.bind(1, last).run();
      r.by_bytes = db.changes();
    }
  }
  return r;
}

}  // namespace harmony
