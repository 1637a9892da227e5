// Installs/removes capture objects from the templates in sql/ (see capture.hpp). Every name
// placed into generated SQL comes from the local schema and is quoted with quote_ident.
#include "shared/capture.hpp"

#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "shared/clock.hpp"
#include "shared/names.hpp"
#include "sql_templates.hpp"

namespace harmony {
namespace {

// Wall-clock milliseconds since the Unix epoch, computed with built-in SQL only. julianday()
// without an argument is 'now' without parsing the string 'now' on every row, and the epoch
// offset is folded into one constant (2440587.5 days * 86,400,000 ms): one function call, one
// multiplication, one subtraction per captured row.
constexpr const char* kNowMsSql = "CAST(julianday() * 86400000 - 210866760000000 AS INTEGER)";

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

// The SQL that installs capture on one table: storage tables, then the trigger script.
struct CaptureSql {
  std::string storage;
  std::string triggers;
  std::vector<std::string> trigger_names;  // every trigger the script creates
};

CaptureSql render(const CapturedTable& t) {
  CaptureSql out;
  const auto pk = t.info.primary_key();
  const auto keys = key_columns(pk.size());
  std::vector<std::string> rows_keys, new_keys, old_keys, pk_cols, old_ne_new, pk_is_old;
  for (size_t i = 0; i < pk.size(); ++i) {
    const std::string col = quote_ident(pk[i]->name);
    rows_keys.push_back(keys[i] + " COLLATE " + pk[i]->collation);
    new_keys.push_back("NEW." + col);
    old_keys.push_back("OLD." + col);
    pk_cols.push_back(col);
    old_ne_new.push_back("OLD." + col + " IS NOT NEW." + col);
    pk_is_old.push_back(col + " = OLD." + col);
  }
  const std::string table = quote_ident(t.name);
  out.storage = fmt::format(fmt::runtime(sql::capture_tables), fmt::arg("log", t.log),
                            fmt::arg("rows", t.rows), fmt::arg("log_keys", join(rows_keys, ", ")),
                            fmt::arg("rows_keys", join(rows_keys, ", ")),
                            fmt::arg("key_list", join(keys, ", ")),
                            fmt::arg("dirty_index", quote_ident(names::dirty_index(t.id))),
                            fmt::arg("old_dirty_index", quote_ident(names::old_dirty_index(t.id))));
  auto trg = [&](const char* kind) { return quote_ident(names::trigger(t.id, kind)); };
  out.triggers = fmt::format(
      fmt::runtime(sql::capture_triggers), fmt::arg("table", table), fmt::arg("log", t.log),
      fmt::arg("key_list", join(keys, ", ")), fmt::arg("new_keys", join(new_keys, ", ")),
      fmt::arg("old_keys", join(old_keys, ", ")), fmt::arg("old_ne_new", join(old_ne_new, " OR ")),
      fmt::arg("now_ms", kNowMsSql), fmt::arg("trg_ins", trg("ins")),
      fmt::arg("trg_upd", trg("upd")), fmt::arg("trg_updk", trg("updk")),
      fmt::arg("trg_del", trg("del")));

  std::vector<std::string> matches, unique_cols;
  for (const auto& u : t.info.unique_indexes) {
    if (u.has_expression) continue;  // reported by capture_problems()
    std::vector<std::string> eq;
    for (size_t i = 0; i < u.columns.size(); ++i) {
      const std::string col = quote_ident(u.columns[i]);
      eq.push_back(col + " COLLATE " + u.collations[i] + " = NEW." + col);
      bool seen = false;
      for (const auto& x : unique_cols) seen = seen || same_ident(x, col);
      if (!seen) unique_cols.push_back(col);
    }
    // A partial index only conflicts on rows its predicate covers; saying so also lets the
    // lookup use that index instead of scanning the table on every write.
    if (!u.where.empty()) eq.push_back("(" + u.where + ")");
    std::string m = "(" + join(eq, " AND ") + ")";
    if (std::find(matches.begin(), matches.end(), m) == matches.end()) matches.push_back(m);
  }
  if (!matches.empty()) {
    out.triggers += fmt::format(
        fmt::runtime(sql::capture_unique_triggers), fmt::arg("table", table),
        fmt::arg("log", t.log), fmt::arg("key_list", join(keys, ", ")),
        fmt::arg("pk_cols", join(pk_cols, ", ")), fmt::arg("unique_match", join(matches, " OR ")),
        fmt::arg("unique_cols", join(unique_cols, ", ")),
        fmt::arg("pk_is_old", join(pk_is_old, " AND ")), fmt::arg("now_ms", kNowMsSql),
        fmt::arg("trg_bins", trg("bins")), fmt::arg("trg_bupd", trg("bupd")));
  } else {
    out.triggers += fmt::format("DROP TRIGGER IF EXISTS {}; DROP TRIGGER IF EXISTS {};",
                                trg("bins"), trg("bupd"));
  }
  for (const char* kind : {"ins", "upd", "del"})
    out.trigger_names.push_back(names::trigger(t.id, kind));
  if (!matches.empty())
    for (const char* kind : {"bins", "bupd"})
      out.trigger_names.push_back(names::trigger(t.id, kind));
  return out;
}

// Number of key columns (k1..kn) of one of our storage tables; 0 when it does not exist.
int64_t storage_key_count(Db& db, const std::string& table) {
  auto s =
      db.prepare("SELECT count(*) FROM pragma_table_info(?1, 'main') WHERE name GLOB 'k[0-9]*'");
  s.bind(1, table);
  s.step();
  return s.column_int(0);
}

void install_objects(Db& db, const CapturedTable& t) {
  if (auto why = ineligibility(t.info)) throw Error(*why);
  const auto n = static_cast<int64_t>(t.key_count());
  // Storage left from a table of the same name with a different primary key (DROP TABLE, then
  // CREATE TABLE): its keys mean nothing for the new table, so start over.
  for (const auto& storage : {names::log_table(t.id), names::rows_table(t.id)}) {
    int64_t have = storage_key_count(db, storage);
    if (have != 0 && have != n) {
      db.exec("DROP TABLE IF EXISTS " + quote_ident(names::log_table(t.id)));
      db.exec("DROP TABLE IF EXISTS " + quote_ident(names::rows_table(t.id)));
      break;
    }
  }
  const CaptureSql sql = render(t);
  db.exec(sql.storage);
  db.exec(sql.triggers);
}

void drop_objects(Db& db, int64_t id) {
  for (const char* kind : {"ins", "upd", "updk", "del", "bins", "bupd"})
    db.exec("DROP TRIGGER IF EXISTS " + quote_ident(names::trigger(id, kind)));
  db.exec("DROP TABLE IF EXISTS " + quote_ident(names::log_table(id)));
  db.exec("DROP TABLE IF EXISTS " + quote_ident(names::rows_table(id)));
}

// Brings registered names up to date after renames. A dropped table's entry whose name is now
// used by a live captured table is removed with its objects (its table and changes are gone).
void sync_registry(Db& db) {
  auto entries = capture_entries(db);
  for (const auto& e : entries) {
    if (!e.table.empty()) continue;
    for (const auto& live : entries)
      if (!live.table.empty() && same_ident(live.table, e.registered)) {
        drop_objects(db, e.id);
        auto d = db.prepare("DELETE FROM __harmony_tables WHERE id = ?1");
        d.bind(1, e.id).run();
        break;
      }
  }
  for (const auto& e : entries) {
    if (e.table.empty() || e.table == e.registered) continue;
    auto u = db.prepare("UPDATE __harmony_tables SET name = ?1 WHERE id = ?2");
    u.bind(1, e.table).bind(2, e.id).run();
  }
}

}  // namespace

void ensure_base_schema(Db& db) {
  bool have_meta = db.query_int(
                       "SELECT count(*) FROM sqlite_schema WHERE type='table' AND name IN "
                       "('__harmony_meta','__harmony_tables','__harmony_mute',"
                       "'__harmony_positions','__harmony_dead_letters','__harmony_held',"
                       "'__harmony_conflicts')") == 7;
  if (!have_meta) db.exec(sql::base_schema);
  auto format = meta_get_int(db, "format", 0);
  if (format > kStorageFormat)
    throw Error(fmt::format(
        "this database was set up by a newer harmonylite (storage format {}, this build knows {}); "
        "upgrade libharmony/harmonylite",
        format, kStorageFormat));
  if (format != kStorageFormat) meta_set(db, "format", kStorageFormat);
  ensure_node_id(db);
}

namespace {

// Logs every row present as a change (the fold gives each a new version, so it is published
// and wins over older versions elsewhere); returns the number of rows.
int64_t log_every_row(Db& db, const CapturedTable& t) {
  std::vector<std::string> cols;
  for (const auto* c : t.info.primary_key()) cols.push_back(quote_ident(c->name));
  auto keys = key_columns(cols.size());
  db.exec(fmt::format("INSERT INTO {} ({}, ms) SELECT {}, {} FROM {}", t.log, join(keys, ", "),
                      join(cols, ", "), kNowMsSql, quote_ident(t.name)));
  return db.changes();
}

}  // namespace

bool enable_table(Db& db, const std::string& name, const EnableOptions& options) {
  if (auto why = ineligibility(db, name)) throw Error(*why);
  ensure_base_schema(db);
  sync_registry(db);
  TableInfo info = describe_table(db, name);
  auto existing = registry_id(db, info.name);
  int64_t id;
  if (existing) {
    id = *existing;
    // Keep the schema's spelling (the table may have been recreated with another case).
    auto u = db.prepare("UPDATE __harmony_tables SET name = ?1 WHERE id = ?2 AND name != ?1");
    u.bind(1, info.name).bind(2, id).run();
  } else {
    auto s = db.prepare("INSERT INTO __harmony_tables(name, enabled_at_ms) VALUES (?1, ?2)");
    s.bind(1, info.name).bind(2, wall_clock_ms()).run();
    id = sqlite3_last_insert_rowid(db.handle());
  }
  CapturedTable t = make_captured(id, std::move(info));
  install_objects(db, t);
  // Only a table captured just now: a repair (stale triggers after DDL) must not republish the
  // whole table. Re-capturing a captured table's rows is capture_existing_rows(), on request.
  if (!existing && options.capture_existing_rows) log_every_row(db, t);
  return !existing;
}

int64_t capture_existing_rows(Db& db, const std::string& name) {
  enable_table(db, name);
  auto t = find_captured(db, name);
  if (!t) throw Error(fmt::format("no such table: \"{}\"", name));  // enable_table would throw
  return log_every_row(db, *t);
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
  auto keys = join(key_columns(t.key_count()), ", ");
  return db.query_int(fmt::format(
      "SELECT count(*) FROM (SELECT {0} FROM {1} WHERE weak IS NULL UNION SELECT {0} FROM {2} "
      "WHERE dirty)",
      keys, t.log, t.rows));
}

TriggerState capture_trigger_state(Db& db, const CapturedTable& t) {
  // Every trigger we would create now must be in the schema with exactly the SQL we would use
  // (SQLite stores CREATE TRIGGER verbatim and rewrites it on RENAME COLUMN/TABLE into the same
  // text we generate), and no other trigger of ours may remain on the table (e.g. the UNIQUE
  // triggers after DROP INDEX).
  const CaptureSql want = render(t);
  std::set<std::string> present;
  bool differs = false;
  auto s = db.prepare(
      "SELECT name, sql FROM sqlite_schema WHERE type = 'trigger' AND "
      "name LIKE '\\_\\_harmony\\_trg\\_' || ?1 || '\\_%' ESCAPE '\\'");
  s.bind(1, t.id);
  while (s.step()) {
    const std::string name = s.column_text(0);
    present.insert(name);
    if (std::find(want.trigger_names.begin(), want.trigger_names.end(), name) ==
        want.trigger_names.end())
      differs = true;  // one of ours that should not be there
    else if (want.triggers.find(s.column_text(1) + ";") == std::string::npos)
      differs = true;  // stale text
  }
  // The row triggers decide whether a write can have gone uncaptured.
  for (const char* kind : {"ins", "upd", "del"})
    if (!present.count(names::trigger(t.id, kind))) return TriggerState::Missing;
  if (differs || present.size() != want.trigger_names.size()) return TriggerState::Outdated;
  return TriggerState::Complete;
}

bool disable_table(Db& db, const std::string& name, bool discard_pending) {
  if (has_registry(db)) sync_registry(db);
  auto id = registry_id(db, name);
  if (!id) {
    if (table_kind(db, name) == TableKind::Missing)
      throw Error(fmt::format("no such table: \"{}\"", name));
    return false;  // not captured: nothing to do
  }
  if (auto t = find_captured(db, name); t && t->id == *id && !discard_pending) {
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
  if (!has_registry(db)) return 0;
  sync_registry(db);
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
  for (const auto& e : capture_entries(db)) {
    drop_objects(db, e.id);
    auto s = db.prepare("DELETE FROM __harmony_tables WHERE id = ?1");
    s.bind(1, e.id).run();
    ++n;
  }
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
