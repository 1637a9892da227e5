// Installs/removes capture objects from the templates in sql/ (see capture.hpp). Every name
// placed into generated SQL comes from the local schema and is quoted with quote_ident.
#include "shared/capture.hpp"

#include <chrono>

#include <fmt/format.h>

#include "shared/names.hpp"
#include "sql_templates.hpp"

namespace harmony {
namespace {

// Wall-clock milliseconds since the Unix epoch, computed with built-in SQL only.
constexpr const char* kNowMsSql = "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)";

int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

std::vector<std::string> key_names(size_t n) {
  std::vector<std::string> out;
  for (size_t i = 1; i <= n; ++i) out.push_back("k" + std::to_string(i));
  return out;
}

bool builtin_collation(const std::string& c) {
  return same_ident(c, "BINARY") || same_ident(c, "NOCASE") || same_ident(c, "RTRIM");
}

std::vector<std::string> trigger_kinds(const TableInfo& t) {
  std::vector<std::string> kinds = {"ins", "upd", "updk", "del"};
  bool unique_cols = false;
  for (const auto& u : t.unique_indexes)
    if (!u.has_expression) unique_cols = true;
  if (unique_cols) {
    kinds.push_back("bins");
    kinds.push_back("bupd");
  }
  return kinds;
}

CapturedTable make_captured(int64_t id, TableInfo info) {
  CapturedTable c;
  c.id = id;
  c.name = info.name;
  c.info = std::move(info);
  c.log = quote_ident(names::log_table(id));
  c.rows = quote_ident(names::rows_table(id));
  return c;
}

void install_objects(Db& db, const CapturedTable& t) {
  const auto pk = t.info.primary_key();
  for (const auto* c : pk)
    if (!builtin_collation(c->collation))
      throw Error(fmt::format(
          "table \"{}\": primary key column \"{}\" uses collation {} which harmonylite cannot "
          "reproduce in its own tables; only BINARY, NOCASE and RTRIM are supported for keys",
          t.name, c->name, c->collation));
  const auto keys = key_names(pk.size());
  std::vector<std::string> rows_keys, new_keys, old_keys, pk_cols, old_ne_new, pk_is_old;
  for (size_t i = 0; i < pk.size(); ++i) {
    const std::string col = quote_ident(pk[i]->name);
    // No declared type: values are stored exactly as the source table holds them; the collation
    // makes key equality the same as in the source (e.g. NOCASE keys).
    rows_keys.push_back(keys[i] + " COLLATE " + pk[i]->collation);
    new_keys.push_back("NEW." + col);
    old_keys.push_back("OLD." + col);
    pk_cols.push_back(col);
    old_ne_new.push_back("OLD." + col + " IS NOT NEW." + col);
    pk_is_old.push_back(col + " = OLD." + col);
  }
  const std::string table = quote_ident(t.name);
  db.exec(fmt::format(fmt::runtime(sql::capture_tables), fmt::arg("log", t.log),
                      fmt::arg("rows", t.rows), fmt::arg("log_keys", join(keys, ", ")),
                      fmt::arg("rows_keys", join(rows_keys, ", ")),
                      fmt::arg("key_list", join(keys, ", ")),
                      fmt::arg("dirty_index", quote_ident(names::dirty_index(t.id)))));
  auto trg = [&](const char* kind) { return quote_ident(names::trigger(t.id, kind)); };
  db.exec(fmt::format(
      fmt::runtime(sql::capture_triggers), fmt::arg("table", table), fmt::arg("log", t.log),
      fmt::arg("key_list", join(keys, ", ")), fmt::arg("new_keys", join(new_keys, ", ")),
      fmt::arg("old_keys", join(old_keys, ", ")), fmt::arg("pk_cols", join(pk_cols, ", ")),
      fmt::arg("old_ne_new", join(old_ne_new, " OR ")), fmt::arg("now_ms", kNowMsSql),
      fmt::arg("trg_ins", trg("ins")), fmt::arg("trg_upd", trg("upd")),
      fmt::arg("trg_updk", trg("updk")), fmt::arg("trg_del", trg("del"))));

  std::vector<std::string> matches, unique_cols;
  for (const auto& u : t.info.unique_indexes) {
    if (u.has_expression) continue;  // documented limitation: see capture_unique_triggers.sql
    std::vector<std::string> eq;
    for (const auto& c : u.columns) {
      eq.push_back(quote_ident(c) + " = NEW." + quote_ident(c));
      bool seen = false;
      for (const auto& x : unique_cols) seen = seen || same_ident(x, quote_ident(c));
      if (!seen) unique_cols.push_back(quote_ident(c));
    }
    matches.push_back("(" + join(eq, " AND ") + ")");
  }
  if (!matches.empty()) {
    db.exec(fmt::format(
        fmt::runtime(sql::capture_unique_triggers), fmt::arg("table", table),
        fmt::arg("log", t.log), fmt::arg("key_list", join(keys, ", ")),
        fmt::arg("pk_cols", join(pk_cols, ", ")), fmt::arg("unique_match", join(matches, " OR ")),
        fmt::arg("unique_cols", join(unique_cols, ", ")),
        fmt::arg("pk_is_old", join(pk_is_old, " AND ")), fmt::arg("now_ms", kNowMsSql),
        fmt::arg("trg_bins", trg("bins")), fmt::arg("trg_bupd", trg("bupd"))));
  } else {
    db.exec(fmt::format("DROP TRIGGER IF EXISTS {}; DROP TRIGGER IF EXISTS {};", trg("bins"),
                        trg("bupd")));
  }
}

void drop_objects(Db& db, int64_t id) {
  for (const char* kind : {"ins", "upd", "updk", "del", "bins", "bupd"})
    db.exec("DROP TRIGGER IF EXISTS " + quote_ident(names::trigger(id, kind)));
  db.exec("DROP TABLE IF EXISTS " + quote_ident(names::log_table(id)));
  db.exec("DROP TABLE IF EXISTS " + quote_ident(names::rows_table(id)));
}

std::optional<int64_t> registry_id(Db& db, const std::string& name) {
  auto s = db.prepare("SELECT id FROM __harmony_tables WHERE name = ?1");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return s.column_int(0);
}

}  // namespace

std::optional<Value> meta_get(Db& db, const std::string& key) {
  auto s = db.prepare("SELECT value FROM __harmony_meta WHERE key = ?1");
  s.bind(1, key);
  if (!s.step()) return std::nullopt;
  return s.column(0);
}

void meta_set(Db& db, const std::string& key, const Value& value) {
  auto s = db.prepare(
      "INSERT INTO __harmony_meta(key, value) VALUES (?1, ?2) "
      "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
  s.bind(1, key).bind(2, value).run();
}

int64_t meta_get_int(Db& db, const std::string& key, int64_t fallback) {
  auto v = meta_get(db, key);
  if (!v) return fallback;
  if (auto i = std::get_if<int64_t>(&*v)) return *i;
  return fallback;
}

void ensure_base_schema(Db& db) {
  bool have_meta = db.query_int(
                       "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN "
                       "('__harmony_meta','__harmony_tables','__harmony_mute',"
                       "'__harmony_positions','__harmony_dead_letters')") == 5;
  if (!have_meta) db.exec(sql::base_schema);
  auto format = meta_get_int(db, "format", 0);
  if (format > kStorageFormat)
    throw Error(fmt::format(
        "this database was set up by a newer harmonylite (storage format {}, this build knows {}); "
        "upgrade libharmony/harmonylite",
        format, kStorageFormat));
  if (format != kStorageFormat) meta_set(db, "format", kStorageFormat);
  if (!meta_get(db, "node_id")) {
    uint64_t id = 0;
    while (id == 0) {
      sqlite3_randomness(sizeof(id), &id);
      id &= (uint64_t{1} << 53) - 1;  // JSON-safe integer, readable in any tool
    }
    meta_set(db, "node_id", static_cast<int64_t>(id));
  }
}

uint64_t node_id(Db& db) {
  return static_cast<uint64_t>(meta_get_int(db, "node_id", 0));
}

void set_node_id(Db& db, uint64_t id) {
  meta_set(db, "node_id", static_cast<int64_t>(id));
}

std::vector<CapturedTable> captured_tables(Db& db) {
  std::vector<std::pair<int64_t, std::string>> reg;
  {
    auto s = db.prepare("SELECT id, name FROM __harmony_tables ORDER BY id");
    while (s.step()) reg.emplace_back(s.column_int(0), s.column_text(1));
  }
  std::vector<CapturedTable> out;
  for (auto& [id, name] : reg) {
    if (table_kind(db, name) != TableKind::Table) continue;
    out.push_back(make_captured(id, describe_table(db, name)));
  }
  return out;
}

std::optional<CapturedTable> find_captured(Db& db, const std::string& name) {
  auto id = registry_id(db, name);
  if (!id || table_kind(db, name) != TableKind::Table) return std::nullopt;
  return make_captured(*id, describe_table(db, name));
}

std::vector<std::pair<int64_t, std::string>> dropped_captured_tables(Db& db) {
  std::vector<std::pair<int64_t, std::string>> out;
  auto s = db.prepare("SELECT id, name FROM __harmony_tables ORDER BY id");
  std::vector<std::pair<int64_t, std::string>> reg;
  while (s.step()) reg.emplace_back(s.column_int(0), s.column_text(1));
  for (auto& r : reg)
    if (table_kind(db, r.second) != TableKind::Table) out.push_back(r);
  return out;
}

bool enable_table(Db& db, const std::string& name, const EnableOptions& options) {
  if (auto why = ineligibility(db, name)) throw Error(*why);
  ensure_base_schema(db);
  TableInfo info = describe_table(db, name);
  auto existing = registry_id(db, info.name);
  int64_t id;
  if (existing) {
    id = *existing;
  } else {
    auto s = db.prepare("INSERT INTO __harmony_tables(name, enabled_at_ms) VALUES (?1, ?2)");
    s.bind(1, info.name).bind(2, wall_ms()).run();
    id = sqlite3_last_insert_rowid(db.handle());
  }
  CapturedTable t = make_captured(id, std::move(info));
  install_objects(db, t);
  if (!existing && options.capture_existing_rows) {
    std::vector<std::string> cols;
    for (const auto* c : t.info.primary_key()) cols.push_back(quote_ident(c->name));
    auto keys = key_names(cols.size());
    db.exec(fmt::format("INSERT INTO {} ({}, ms) SELECT {}, {} FROM {}", t.log, join(keys, ", "),
                        join(cols, ", "), kNowMsSql, quote_ident(t.name)));
  }
  return !existing;
}

int enable_all(Db& db, const EnableOptions& options, std::vector<std::string>* skipped) {
  int n = 0;
  for (const auto& name : list_tables(db)) {
    if (names::is_reserved(name)) continue;
    if (auto why = ineligibility(db, name)) {
      if (skipped) skipped->push_back(*why);
      continue;
    }
    if (enable_table(db, name, options)) ++n;
  }
  return n;
}

int64_t pending_changes(Db& db, const CapturedTable& t) {
  auto keys = join(key_names(t.key_count()), ", ");
  return db.query_int(fmt::format(
      "SELECT count(*) FROM (SELECT {0} FROM {1} WHERE weak IS NULL UNION SELECT {0} FROM {2} "
      "WHERE dirty)",
      keys, t.log, t.rows));
}

bool triggers_installed(Db& db, const CapturedTable& t) {
  auto kinds = trigger_kinds(t.info);
  auto s = db.prepare(
      "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger' AND name = ?1 AND tbl_name = ?2");
  for (const auto& k : kinds) {
    s.reset();
    s.bind(1, names::trigger(t.id, k)).bind(2, t.name);
    s.step();
    if (s.column_int(0) != 1) return false;
  }
  return true;
}

bool disable_table(Db& db, const std::string& name, bool discard_pending) {
  auto id = registry_id(db, name);
  if (!id) {
    if (table_kind(db, name) == TableKind::Missing)
      throw Error(fmt::format("no such table: \"{}\"", name));
    return false;  // not captured: nothing to do
  }
  if (auto t = find_captured(db, name); t && !discard_pending) {
    int64_t pending = pending_changes(db, *t);
    if (pending > 0)
      throw Error(fmt::format(
          "table \"{}\" has {} unpublished change(s) that would be lost. Let the replicator "
          "publish them (harmony_status() shows pending 0) or call harmony_disable('{}', "
          "'discard')",
          t->name, pending, t->name));
  }
  drop_objects(db, *id);
  auto s = db.prepare("DELETE FROM __harmony_tables WHERE id = ?1");
  s.bind(1, *id).run();
  return true;
}

int disable_all(Db& db, bool discard_pending) {
  std::vector<std::string> all;
  {
    auto s = db.prepare("SELECT name FROM __harmony_tables ORDER BY id");
    while (s.step()) all.push_back(s.column_text(0));
  }
  if (!discard_pending) {  // check everything first so '*' is all-or-nothing
    for (const auto& t : captured_tables(db)) {
      int64_t pending = pending_changes(db, t);
      if (pending > 0)
        throw Error(fmt::format(
            "table \"{}\" has {} unpublished change(s) that would be lost; nothing was disabled. "
            "Let the replicator publish them or call harmony_disable('*', 'discard')",
            t.name, pending));
    }
  }
  int n = 0;
  for (const auto& name : all)
    if (disable_table(db, name, true)) ++n;
  return n;
}

void remove_all_objects(Db& db) {
  std::vector<std::pair<std::string, std::string>> objects;
  auto s = db.prepare(
      "SELECT type, name FROM sqlite_schema WHERE type IN ('trigger', 'table') AND "
      "name LIKE '\\_\\_harmony\\_%' ESCAPE '\\' ORDER BY type = 'table'");
  while (s.step()) objects.emplace_back(s.column_text(0), s.column_text(1));
  for (const auto& [type, name] : objects)
    db.exec(fmt::format("DROP {} IF EXISTS {}", type == "trigger" ? "TRIGGER" : "TABLE",
                        quote_ident(name)));
}

}  // namespace harmony
