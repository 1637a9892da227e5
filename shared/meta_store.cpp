// Node-local state in __harmony_meta and __harmony_positions (see meta_store.hpp).
#include "shared/meta_store.hpp"

#include <fmt/format.h>

#include "shared/error.hpp"
#include "shared/hlc.hpp"

namespace harmony {

namespace {

// Node ids stay below 2^53 so JSON readers (and any tool reading the status) keep them exact.
constexpr uint64_t kNodeIdLimit = uint64_t{1} << 53;

}  // namespace

// The clock, the tombstone horizon and the stream position are read and written every applied
// transaction: these statements are kept prepared (Db::cached) rather than parsed per call.
std::optional<Value> meta_get(Db& db, const std::string& key) {
  auto s = db.cached("SELECT value FROM __harmony_meta WHERE key = ?1");
  s->bind(1, key);
  if (!s->step()) return std::nullopt;
  return s->column(0);
}

void meta_set(Db& db, const std::string& key, const Value& value) {
  auto s = db.cached(
      "INSERT INTO __harmony_meta(key, value) VALUES (?1, ?2) "
      "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  s->bind(1, key).bind(2, value).run();
}

int64_t meta_get_int(Db& db, const std::string& key, int64_t fallback) {
  auto v = meta_get(db, key);
  if (!v) return fallback;
  if (auto i = std::get_if<int64_t>(&*v)) return *i;
  return fallback;
}

uint64_t node_id(Db& db) {
  return static_cast<uint64_t>(meta_get_int(db, "node_id", 0));
}

void set_node_id(Db& db, uint64_t id) {
  meta_set(db, "node_id", static_cast<int64_t>(id));
}

void ensure_node_id(Db& db) {
  if (meta_get(db, "node_id")) return;
  uint64_t id = 0;
  while (id == 0) {
    sqlite3_randomness(sizeof(id), &id);
    id &= kNodeIdLimit - 1;
  }
  set_node_id(db, id);
}

int64_t load_clock(Db& db) {
  const int64_t hlc = meta_get_int(db, "hlc", 0);
  // Refused, not clamped: rows may carry versions up to this clock, and a clamped clock would
  // issue versions below them (local writes would silently lose to stale rows), while adopting
  // it would make every later version saturate at the ceiling (or wrap, before hlc_next
  // saturated). Only tampering or a hostile snapshot can store such a clock: received versions
  // beyond hlc_plausible are refused before they reach the clock.
  if (!hlc_storable(hlc))
    throw Error(fmt::format(
        "the stored clock (__harmony_meta key 'hlc' = {}) is outside the range harmonylite issues "
        "(0 to {} ms of physical time, year ~6400): refusing to issue versions from it, they "
        "could not be ordered after the versions already stored. The database was modified "
        "outside harmonylite; restore it from a trusted copy or snapshot",
        hlc, kMaxHlcMs));
  return hlc;
}

void store_clock(Db& db, int64_t hlc) {
  meta_set(db, "hlc", hlc);
}

std::map<std::string, uint64_t> load_positions(Db& db) {
  std::map<std::string, uint64_t> out;
  auto s = db.prepare("SELECT stream, seq FROM __harmony_positions");
  while (s.step()) out[s.column_text(0)] = static_cast<uint64_t>(s.column_int(1));
  return out;
}

void store_position(Db& db, const std::string& stream, uint64_t seq) {
  auto s = db.cached(
      "INSERT INTO __harmony_positions(stream, seq) VALUES (?1, ?2) "
      "ON CONFLICT(stream) DO UPDATE SET seq = excluded.seq");
  s->bind(1, stream).bind(2, static_cast<int64_t>(seq)).run();
}

}  // namespace harmony
