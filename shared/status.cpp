// Status JSON and content checksums (see status.hpp).
#include "shared/status.hpp"

#include <cstring>

#include <fmt/format.h>

#include "harmony_version.hpp"
#include "shared/apply.hpp"
#include "shared/digest.hpp"
#include "shared/fold.hpp"
#include "shared/names.hpp"

namespace harmony {

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

nlohmann::json status_json(Db& db) {
  nlohmann::json out;
  out["version"] = build::kVersion;
  bool set_up =
      db.query_int(
          "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name='__harmony_meta'") > 0;
  if (!set_up) {
    out["node_id"] = nullptr;
    out["hlc"] = 0;
    out["pending"] = 0;
    out["tables"] = nlohmann::json::array();
    out["dead_letters"] = 0;
    out["positions"] = nlohmann::json::object();
    out["problems"] = nlohmann::json::array();
    return out;
  }
  out["node_id"] = node_id(db);
  out["hlc"] = load_clock(db);
  int64_t total = 0;
  auto tables = nlohmann::json::array();
  for (const auto& t : captured_tables(db)) {
    int64_t pending = pending_changes(db, t);
    total += pending;
    tables.push_back(
        {{"name", t.name}, {"pending", pending}, {"triggers", triggers_installed(db, t)}});
  }
  for (const auto& [id, name] : dropped_captured_tables(db))
    tables.push_back({{"name", name}, {"pending", 0}, {"triggers", false}, {"dropped", true}});
  out["pending"] = total;
  out["tables"] = std::move(tables);
  out["dead_letters"] = db.query_int("SELECT count(*) FROM __harmony_dead_letters");
  nlohmann::json positions = nlohmann::json::object();
  for (const auto& [stream, seq] : load_positions(db)) positions[stream] = seq;
  out["positions"] = std::move(positions);
  out["problems"] = capture_problems(db);  // empty when capture is complete
  return out;
}

namespace {

// Feeds one value with its storage class into the hash, so 1, 1.0, '1' and x'31' all differ.
void hash_value(Sha256& h, const Value& v) {
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Null>) {
          h.update("N", 1);
        } else if constexpr (std::is_same_v<T, int64_t>) {
          h.update("I", 1);
          h.update(&x, sizeof x);
        } else if constexpr (std::is_same_v<T, double>) {
          h.update("R", 1);
          h.update(&x, sizeof x);
        } else {
          h.update(std::is_same_v<T, Text> ? "T" : "B", 1);
          uint64_t n = x.bytes.size();
          h.update(&n, sizeof n);
          h.update(x.bytes);
        }
      },
      v);
}

// Order-independent accumulator: the sum (mod 2^64, per lane) of per-row digests.
struct Accumulator {
  uint64_t lanes[4] = {0, 0, 0, 0};
  uint64_t rows = 0;
  void add(const Sha256Digest& d) {
    for (int i = 0; i < 4; ++i) {
      uint64_t x;
      std::memcpy(&x, d.data() + 8 * i, 8);
      lanes[i] += x;
    }
    ++rows;
  }
  std::string hex() const {
    Sha256 h;
    h.update(lanes, sizeof lanes);
    h.update(&rows, sizeof rows);
    auto d = h.finish();
    return to_hex(d.data(), 16);
  }
};

void accumulate_table(Db& db, const std::string& table, Accumulator& acc, bool include_name) {
  TableInfo info = describe_table(db, table);
  std::vector<const ColumnInfo*> cols = info.replicated_columns();
  // Column order may differ between nodes (ADD COLUMN order); hash by lower-cased name order.
  std::sort(cols.begin(), cols.end(), [](auto* a, auto* b) {
    std::string x = a->name, y = b->name;
    for (auto& c : x) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (auto& c : y) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return x < y;
  });
  std::string select;
  for (const auto* c : cols) select += (select.empty() ? "" : ", ") + quote_ident(c->name);
  auto s = db.prepare(fmt::format("SELECT {} FROM {}", select, quote_ident(info.name)));
  Sha256 h;
  while (s.step()) {
    if (include_name) h.update(info.name);
    for (int i = 0; i < s.column_count(); ++i) hash_value(h, s.column(i));
    acc.add(h.finish());
  }
}

}  // namespace

std::string table_checksum(Db& db, const std::string& table) {
  if (table_kind(db, table) != TableKind::Table)
    throw Error(fmt::format("no such table: \"{}\"", table));
  Accumulator acc;
  accumulate_table(db, table, acc, false);
  return acc.hex();
}

std::string database_checksum(Db& db) {
  Accumulator acc;
  for (const auto& t : captured_tables(db)) accumulate_table(db, t.name, acc, true);
  return acc.hex();
}

}  // namespace harmony
