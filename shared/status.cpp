// Status JSON, the capture problems it reports, and content checksums (see status.hpp).
#include "shared/status.hpp"

#include <cstring>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harmony_version.hpp"
#include "shared/digest.hpp"
#include "shared/meta_store.hpp"
#include "shared/names.hpp"

namespace harmony {

std::string dump_json(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::vector<std::string> capture_problems(Db& db) {
  std::vector<std::string> out;
  for (const auto& [id, name] : dropped_captured_tables(db)) {
    (void)id;
    out.push_back(fmt::format(
        "table \"{}\" was dropped (or recreated without a usable primary key) after "
        "harmony_enable: nothing of it is captured. Recreate it and run harmony_enable('{}'), or "
        "run harmony_disable('{}')",
        name, name, name));
  }
  for (const auto& t : captured_tables(db)) {
    if (!triggers_installed(db, t))
      out.push_back(fmt::format(
          "table \"{}\": capture triggers are missing or out of date (a UNIQUE index was added or "
          "dropped, the table was recreated, or libharmony was upgraded): some writes may not be "
          "captured. Run "
          "harmony_enable('{}') to repair (the replicator does this by itself)",
          t.name, t.name));
    for (const auto& u : t.info.unique_indexes)
      if (u.has_expression)
        out.push_back(fmt::format(
            "table \"{}\": UNIQUE index \"{}\" is on an expression; a row that INSERT OR REPLACE "
            "removes through it is captured only with PRAGMA recursive_triggers=ON",
            t.name, u.name));
  }
  if (int64_t lost = meta_get_int(db, "null_key_changes", 0); lost > 0)
    out.push_back(fmt::format(
        "{} change(s) to rows whose primary key is NULL were not replicated (a NULL key cannot "
        "identify a row across nodes; declare the key columns NOT NULL)",
        lost));
  return out;
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
