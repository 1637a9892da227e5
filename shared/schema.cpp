// Table introspection through PRAGMA table_list / table_xinfo / index_list / index_xinfo and
// sqlite3_table_column_metadata (for collations). See schema.hpp.
#include "shared/schema.hpp"

#include <algorithm>

#include <fmt/format.h>

#include "shared/digest.hpp"
#include "shared/names.hpp"

namespace harmony {

bool same_ident(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

static std::string ascii_lower(std::string s) {
  for (auto& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}
static std::string ascii_upper(std::string s) {
  for (auto& c : s)
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  return s;
}

std::vector<const ColumnInfo*> TableInfo::primary_key() const {
  std::vector<const ColumnInfo*> pk;
  for (const auto& c : columns)
    if (c.pk_position > 0) pk.push_back(&c);
  std::sort(pk.begin(), pk.end(), [](auto* a, auto* b) { return a->pk_position < b->pk_position; });
  return pk;
}

std::vector<const ColumnInfo*> TableInfo::replicated_columns() const {
  std::vector<const ColumnInfo*> out;
  for (const auto& c : columns)
    if (!c.generated) out.push_back(&c);
  return out;
}

const ColumnInfo* TableInfo::column(std::string_view n) const {
  for (const auto& c : columns)
    if (same_ident(c.name, n)) return &c;
  return nullptr;
}

std::string TableInfo::schema_hash() const {
  std::vector<std::string> parts;
  for (const auto* c : replicated_columns())
    parts.push_back(fmt::format("{}:{}:{}:{}", ascii_lower(c->name), ascii_upper(c->decl_type),
                                c->not_null ? 1 : 0, c->pk_position));
  std::sort(parts.begin(), parts.end());
  Sha256 h;
  h.update(ascii_lower(name));
  for (const auto& p : parts) {
    h.update("|");
    h.update(p);
  }
  auto d = h.finish();
  return to_hex(d.data(), 16);  // 128 bits is plenty to tell schemas apart
}

TableKind table_kind(Db& db, const std::string& name) {
  auto s = db.prepare(
      "SELECT type FROM pragma_table_list WHERE schema = 'main' AND name = ?1 COLLATE NOCASE");
  s.bind(1, name);
  if (!s.step()) return TableKind::Missing;
  std::string type = s.column_text(0);
  if (type == "view") return TableKind::View;
  if (type == "virtual") return TableKind::Virtual;
  if (type == "shadow") return TableKind::Shadow;
  return TableKind::Table;
}

std::vector<std::string> list_tables(Db& db) {
  std::vector<std::string> out;
  auto s = db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY rowid");
  while (s.step()) out.push_back(s.column_text(0));
  return out;
}

TableInfo describe_table(Db& db, const std::string& name) {
  TableInfo t;
  {
    auto s = db.prepare(
        "SELECT name, wr, strict FROM pragma_table_list WHERE schema = 'main' AND "
        "name = ?1 COLLATE NOCASE");
    s.bind(1, name);
    if (!s.step()) throw Error(fmt::format("no such table: {}", name));
    t.name = s.column_text(0);  // canonical spelling from the schema
    t.without_rowid = s.column_int(1) != 0;
    t.strict = s.column_int(2) != 0;
  }
  {
    auto s = db.prepare(
        "SELECT name, type, \"notnull\", pk, hidden, dflt_value FROM pragma_table_xinfo(?1, "
        "'main')");
    s.bind(1, t.name);
    while (s.step()) {
      ColumnInfo c;
      c.name = s.column_text(0);
      c.decl_type = s.column_text(1);
      c.not_null = s.column_int(2) != 0;
      c.pk_position = static_cast<int>(s.column_int(3));
      int hidden = static_cast<int>(s.column_int(4));
      if (hidden == 1) continue;  // hidden columns of virtual tables
      c.generated = hidden == 2 || hidden == 3;
      if (!s.column_is_null(5)) c.default_sql = s.column_text(5);
      const char* type = nullptr;
      const char* coll = nullptr;
      int nn = 0, pk = 0, autoinc = 0;
      if (sqlite3_table_column_metadata(db.handle(), "main", t.name.c_str(), c.name.c_str(), &type,
                                        &coll, &nn, &pk, &autoinc) == SQLITE_OK &&
          coll) {
        c.collation = coll;
      } else {
        c.collation = "BINARY";
      }
      t.columns.push_back(std::move(c));
    }
  }
  std::vector<std::pair<std::string, std::string>> index_names;  // name, predicate
  {
    auto s = db.prepare(
        "SELECT l.name, CASE WHEN l.partial THEN (SELECT sql FROM sqlite_schema s WHERE "
        "s.type = 'index' AND s.name = l.name) END FROM pragma_index_list(?1, 'main') l "
        "WHERE l.\"unique\" = 1 AND l.origin != 'pk'");
    s.bind(1, t.name);
    while (s.step()) index_names.emplace_back(s.column_text(0), index_predicate(s.column_text(1)));
  }
  for (const auto& [idx, where] : index_names) {
    UniqueIndex u;
    u.name = idx;
    u.where = where;
    auto s = db.prepare(
        "SELECT cid, name, coll FROM pragma_index_xinfo(?1, 'main') WHERE key = 1 ORDER BY seqno");
    s.bind(1, idx);
    while (s.step()) {
      if (s.column_int(0) < 0) {
        u.has_expression = true;  // -2: expression, -1: rowid
      } else {
        u.cids.push_back(static_cast<int>(s.column_int(0)));
        u.columns.push_back(s.column_text(1));
        u.collations.push_back(s.column_is_null(2) ? "BINARY" : s.column_text(2));
      }
    }
    if (u.has_expression) {
      u.columns.clear();
      u.collations.clear();
      u.cids.clear();
    }
    t.unique_indexes.push_back(std::move(u));
  }
  return t;
}

std::string index_predicate(std::string_view sql) {
  // Skip to the end of the first parenthesised group (the indexed columns), honouring quotes
  // and comments; what follows is either nothing or "WHERE <predicate>".
  size_t i = 0;
  int depth = 0;
  bool opened = false;
  while (i < sql.size()) {
    const char c = sql[i];
    if (c == '\'' || c == '"' || c == '`' || c == '[') {
      const char close = c == '[' ? ']' : c;
      ++i;
      while (i < sql.size()) {
        if (sql[i] == close) {
          if (close != ']' && i + 1 < sql.size() && sql[i + 1] == close) {
            i += 2;  // doubled quote inside a quoted name or string
            continue;
          }
          break;
        }
        ++i;
      }
      i = std::min(i + 1, sql.size());  // past the closing quote (an unterminated one ends it all)
      continue;
    }
    if (c == '-' && i + 1 < sql.size() && sql[i + 1] == '-') {
      while (i < sql.size() && sql[i] != '\n') ++i;
      continue;
    }
    if (c == '/' && i + 1 < sql.size() && sql[i + 1] == '*') {
      const size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
      continue;
    }
    ++i;
    if (c == '(') {
      ++depth;
      opened = true;
    } else if (c == ')' && --depth == 0 && opened) {
      break;
    }
  }
  auto is_space = [](char ch) { return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'; };
  while (i < sql.size()) {  // whitespace and comments before WHERE
    if (is_space(sql[i])) {
      ++i;
    } else if (sql.substr(i, 2) == "--") {
      while (i < sql.size() && sql[i] != '\n') ++i;
    } else if (sql.substr(i, 2) == "/*") {
      const size_t end = sql.find("*/", i + 2);
      i = end == std::string_view::npos ? sql.size() : end + 2;
    } else {
      break;
    }
  }
  if (sql.size() - i < 6 || !same_ident(sql.substr(i, 5), "WHERE") || !is_space(sql[i + 5]))
    return "";
  std::string_view pred = sql.substr(i + 5);
  while (!pred.empty() && (is_space(pred.front()) || pred.front() == ';')) pred.remove_prefix(1);
  while (!pred.empty() && (is_space(pred.back()) || pred.back() == ';')) pred.remove_suffix(1);
  return std::string(pred);
}

std::optional<std::string> ineligibility(Db& db, const std::string& name) {
  if (names::is_reserved(name))
    return fmt::format(
        "table \"{}\" is internal (sqlite_* or harmonylite's own objects) and is never captured",
        name);
  switch (table_kind(db, name)) {
    case TableKind::Missing:
      return fmt::format("no such table: \"{}\" (check the name; table names are case-insensitive)",
                         name);
    case TableKind::View:
      return fmt::format("\"{}\" is a view; only ordinary tables can be captured", name);
    case TableKind::Virtual:
      return fmt::format(
          "\"{}\" is a virtual table (FTS5, R*Tree, ...); capture the ordinary table that feeds it "
          "instead",
          name);
    case TableKind::Shadow:
      return fmt::format(
          "\"{}\" is a shadow table of a virtual table; it is rebuilt by its virtual table on each "
          "node",
          name);
    case TableKind::Table:
      break;
  }
  return ineligibility(describe_table(db, name));
}

static bool builtin_collation(const std::string& c) {
  return same_ident(c, "BINARY") || same_ident(c, "NOCASE") || same_ident(c, "RTRIM");
}

std::optional<std::string> ineligibility(const TableInfo& t) {
  const auto pk = t.primary_key();
  if (pk.empty())
    return fmt::format(
        "table \"{}\" has no PRIMARY KEY: rows cannot be identified across nodes (rowids are "
        "node-local). Declare a primary key, e.g. recreate it with `id INTEGER PRIMARY KEY`",
        t.name);
  for (const auto* c : pk)
    if (!builtin_collation(c->collation))
      return fmt::format(
          "table \"{}\": primary key column \"{}\" uses collation {} which harmonylite cannot "
          "reproduce in its own tables; only BINARY, NOCASE and RTRIM are supported for keys",
          t.name, c->name, c->collation);
  return std::nullopt;
}

}  // namespace harmony
