// The conflict log (see conflict_log.hpp).
#include "shared/conflict_log.hpp"

#include <cmath>
#include <limits>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace harmony {

const char* to_string(ConflictKind kind) {
  switch (kind) {
    case ConflictKind::Overwritten:
      return "overwritten";
    case ConflictKind::Removed:
      return "removed";
    case ConflictKind::Discarded:
      return "discarded";
    case ConflictKind::Unique:
      return "unique";
  }
  return "unknown";
}

bool concurrent(const LocalVersion& local, const Version& incoming, uint64_t self) {
  if (local.version.node != self || incoming.node == self) return false;
  if (local.dirty) return true;
  const int64_t apart =
      hlc_physical_ms(local.version.hlc) - hlc_physical_ms(incoming.hlc);  // both >= 0, no overflow
  return std::abs(apart) <= kConcurrentWithinMs;
}

namespace {

nlohmann::json to_json(const Value& v) {
  if (is_null(v)) return nullptr;
  if (const auto* i = std::get_if<int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v)) {
    if (std::isfinite(*d)) return *d;
    return fmt::format("{}", *d);  // JSON has no Inf/NaN
  }
  if (const auto* b = std::get_if<Blob>(&v)) {
    std::string hex;
    hex.reserve(b->bytes.size() * 2);
    for (unsigned char c : b->bytes) hex += fmt::format("{:02x}", c);
    return nlohmann::json{{"blob", hex}};
  }
  return std::get<Text>(v).bytes;
}

// Text from a peer need not be UTF-8: replace invalid bytes instead of throwing.
std::string dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

std::string values_json_array(const std::vector<Value>& values) {
  nlohmann::json a = nlohmann::json::array();
  for (const auto& v : values) a.push_back(to_json(v));
  return dump(a);
}

std::string values_json_object(const std::vector<std::string>& columns,
                               const std::vector<Value>& values) {
  nlohmann::json o = nlohmann::json::object();
  for (size_t i = 0; i < columns.size() && i < values.size(); ++i)
    o[columns[i]] = to_json(values[i]);
  return dump(o);
}

void record_conflict(Db& db, const ConflictRecord& r, int64_t now_ms) {
  auto s = db.prepare(
      "INSERT INTO __harmony_conflicts (at_ms, table_name, kind, key, loser_values, loser_hlc, "
      "loser_node, winner_hlc, winner_node, winner_deleted) "
      "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
  s.bind(1, now_ms).bind(2, r.table).bind(3, std::string_view(to_string(r.kind))).bind(4, r.key);
  if (r.values.empty())
    s.bind_null(5);
  else
    s.bind(5, r.values);
  s.bind(6, r.loser.hlc)
      .bind(7, static_cast<int64_t>(r.loser.node))
      .bind(8, r.winner.hlc)
      .bind(9, static_cast<int64_t>(r.winner.node))
      .bind(10, int64_t{r.winner_deleted ? 1 : 0});
  s.run();
}

int64_t prune_conflicts(Db& db, int64_t now_ms, const ConflictLimits& limits) {
  // ids only grow (INTEGER PRIMARY KEY, rows only appended), so the newest max_rows are the
  // highest ids; both conditions use the key or a full scan of a table bounded by max_rows.
  auto s = db.prepare(
      "DELETE FROM __harmony_conflicts WHERE id <= (SELECT max(id) FROM __harmony_conflicts) - ?1 "
      "OR at_ms < ?2");
  // max_age 0: no age limit (INT64_MIN is below every at_ms).
  s.bind(1, limits.max_rows)
      .bind(2, limits.max_age_ms > 0 ? now_ms - limits.max_age_ms
                                     : std::numeric_limits<int64_t>::min());
  s.run();
  return db.changes();
}

int64_t conflict_count(Db& db) {
  return db.query_int("SELECT count(*) FROM __harmony_conflicts");
}

}  // namespace harmony
