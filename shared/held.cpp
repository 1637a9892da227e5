// __harmony_held reads and writes (see held.hpp).
#include "shared/held.hpp"

namespace harmony {

namespace {

HoldKind kind_from(const std::string& s) {
  if (s == "column") return HoldKind::Column;
  if (s == "clock") return HoldKind::Clock;
  if (s == "constraint") return HoldKind::Constraint;
  return HoldKind::Table;
}

}  // namespace

const char* to_string(HoldKind kind) {
  switch (kind) {
    case HoldKind::Table:
      return "table";
    case HoldKind::Column:
      return "column";
    case HoldKind::Clock:
      return "clock";
    case HoldKind::Constraint:
      return "constraint";
  }
  return "table";
}

void store_held(Db& db, const HeldEntry& e) {
  auto s = db.prepare(
      "INSERT INTO __harmony_held(at_ms, stream, seq, origin_node, batch_id, table_name, kind, "
      "reason, row_count, attempts, payload) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, "
      "?11)");
  s.bind(1, e.at_ms).bind(2, e.stream).bind(3, static_cast<int64_t>(e.seq));
  s.bind(4, static_cast<int64_t>(e.origin)).bind(5, static_cast<int64_t>(e.batch_id));
  s.bind(6, e.table).bind(7, std::string(to_string(e.kind))).bind(8, e.reason);
  s.bind(9, e.rows).bind(10, e.attempts).bind(11, Value{Blob{e.payload}});
  s.run();
}

std::vector<HeldEntry> load_held(Db& db, const std::string& stream, int64_t after, size_t limit) {
  auto s = db.prepare(
      "SELECT id, at_ms, stream, seq, origin_node, batch_id, table_name, kind, reason, row_count, "
      "attempts, payload FROM __harmony_held WHERE stream = ?1 AND id > ?2 ORDER BY id LIMIT ?3");
  s.bind(1, stream).bind(2, after).bind(3, static_cast<int64_t>(limit));
  std::vector<HeldEntry> out;
  while (s.step()) {
    HeldEntry e;
    e.id = s.column_int(0);
    e.at_ms = s.column_int(1);
    e.stream = s.column_text(2);
    e.seq = static_cast<uint64_t>(s.column_int(3));
    e.origin = static_cast<uint64_t>(s.column_int(4));
    e.batch_id = static_cast<uint64_t>(s.column_int(5));
    e.table = s.column_text(6);
    e.kind = kind_from(s.column_text(7));
    e.reason = s.column_text(8);
    e.rows = s.column_int(9);
    e.attempts = s.column_int(10);
    e.payload = s.column_text(11);
    out.push_back(std::move(e));
  }
  return out;
}

void forget_held(Db& db, int64_t id) {
  auto s = db.prepare("DELETE FROM __harmony_held WHERE id = ?1");
  s.bind(1, id).run();
}

void update_held(Db& db, const HeldEntry& e) {
  auto s = db.prepare(
      "UPDATE __harmony_held SET kind = ?2, reason = ?3, row_count = ?4, attempts = ?5, "
      "payload = ?6 WHERE id = ?1");
  s.bind(1, e.id).bind(2, std::string(to_string(e.kind))).bind(3, e.reason).bind(4, e.rows);
  s.bind(5, e.attempts).bind(6, Value{Blob{e.payload}});
  s.run();
}

HeldSummary held_summary(Db& db, const std::string& stream) {
  const char* where = stream.empty() ? "" : " WHERE stream = ?1";
  HeldSummary out;
  {
    auto s = db.prepare(std::string("SELECT count(*), coalesce(sum(row_count), 0), "
                                    "coalesce(sum(length(payload)), 0), coalesce(min(at_ms), 0) "
                                    "FROM __harmony_held") +
                        where);
    if (!stream.empty()) s.bind(1, stream);
    if (s.step()) {
      out.entries = s.column_int(0);
      out.rows = s.column_int(1);
      out.bytes = s.column_int(2);
      out.oldest_at_ms = s.column_int(3);
    }
  }
  if (out.entries > 0) {
    auto s = db.prepare(std::string("SELECT table_name, reason FROM __harmony_held") + where +
                        " ORDER BY id LIMIT 1");
    if (!stream.empty()) s.bind(1, stream);
    if (s.step()) out.oldest_reason = s.column_text(1);
  }
  return out;
}

}  // namespace harmony
