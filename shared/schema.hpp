// Introspection of user tables: columns with declared type and collation, primary key,
// UNIQUE indexes, and whether a table can be captured at all (and if not, why not).
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "shared/sqlite_db.hpp"

namespace harmony {

struct ColumnInfo {
  std::string name;
  std::string decl_type;  // as declared ("INTEGER", "TEXT", "" ...)
  std::string collation;  // "BINARY", "NOCASE", ...
  bool not_null = false;
  int pk_position = 0;      // 1-based position in the PRIMARY KEY, 0 when not part of it
  bool generated = false;   // GENERATED ALWAYS AS ...: never written by the apply path
  std::string default_sql;  // the DEFAULT expression as written in the schema, "" when none
};

struct UniqueIndex {
  std::string name;
  std::vector<std::string> columns;     // empty when the index uses an expression
  std::vector<std::string> collations;  // the index's collation for each column
  std::vector<int> cids;                // column numbers (stable across RENAME COLUMN)
  bool has_expression = false;
  std::string where;  // predicate of a partial index (CREATE ... WHERE <where>), else empty
};

struct TableInfo {
  std::string name;
  std::vector<ColumnInfo> columns;  // declaration order
  bool without_rowid = false;
  bool strict = false;
  std::vector<UniqueIndex> unique_indexes;  // UNIQUE constraints/indexes other than the PK

  std::vector<const ColumnInfo*> primary_key() const;         // in PK order
  std::vector<const ColumnInfo*> replicated_columns() const;  // all but generated columns
  const ColumnInfo* column(std::string_view name) const;      // ASCII case-insensitive
  // Hash of what replication depends on: columns (name, type, not null), PK order.
  std::string schema_hash() const;
};

enum class TableKind { Table, View, Virtual, Shadow, Missing };

// Kind of the object `name` in the main schema (via PRAGMA table_list). Names are matched as
// SQLite matches identifiers: ASCII case-insensitively.
TableKind table_kind(Db& db, const std::string& name);

// Names of every table in main, in sqlite_schema order.
std::vector<std::string> list_tables(Db& db);

// Reads the table's structure; throws Error if it does not exist.
TableInfo describe_table(Db& db, const std::string& name);

// Why a table cannot be captured, or nullopt when it can. The text names the table and says
// what to do, e.g. "table \"logs\" has no PRIMARY KEY: ...".
std::optional<std::string> ineligibility(Db& db, const std::string& name);
// The same checks for a table already described (no PRIMARY KEY, unsupported key collation).
std::optional<std::string> ineligibility(const TableInfo& info);

// The WHERE predicate of a CREATE INDEX statement as written, or "" when it has none.
std::string index_predicate(std::string_view create_index_sql);

// ASCII case-insensitive comparison, as SQLite compares identifiers.
bool same_ident(std::string_view a, std::string_view b);

}  // namespace harmony
