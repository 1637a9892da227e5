// RAII wrappers for sqlite3* and sqlite3_stmt*, plus the few helpers every module needs:
// exec, prepared statements bound from harmony::Value, transaction guards, which errors are
// transient, and identifier quoting.
#pragma once
#include <sqlite3.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "shared/error.hpp"
#include "shared/value.hpp"

namespace harmony {

class Stmt;
class CachedStmt;

// Owns or borrows a connection. The extension borrows the host's handle; the replicator owns its
// own.
class Db {
 public:
  static Db open(const std::string& path, int flags = SQLITE_OPEN_READWRITE);
  static Db borrow(sqlite3* handle) { return Db(handle, false); }
  Db();
  Db(Db&& other) noexcept;
  Db& operator=(Db&& other) noexcept;
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  ~Db();

  sqlite3* handle() const { return db_; }
  void exec(std::string_view sql);
  Stmt prepare(std::string_view sql);
  // The statement for `sql`, prepared once per connection and kept until the Db is closed or
  // moved from, for the fixed SQL run every transaction (BEGIN/COMMIT, the clock, stream
  // positions): parsing those each time was a third of applying a 1-row batch
  // (docs/performance.md). `sql` must be one of a few constants, not built from data: the cache
  // keeps at most kMaxCachedStatements and prepares the rest per call. SQLite re-prepares a kept
  // statement after a schema change (prepare_v3); each use is reset when the CachedStmt ends, so
  // none stays active between uses (holding a read snapshot, or blocking a DETACH).
  CachedStmt cached(std::string_view sql);
  // Runs a query expected to return one value (or none): returns nullopt when there is no row.
  std::optional<Value> query_value(std::string_view sql);
  int64_t query_int(std::string_view sql, int64_t fallback = 0);
  int64_t changes() const { return sqlite3_changes64(db_); }
  std::string errmsg() const { return sqlite3_errmsg(db_); }
  bool in_transaction() const { return sqlite3_get_autocommit(db_) == 0; }
  void set_busy_timeout(int ms) { sqlite3_busy_timeout(db_, ms); }
  std::string filename() const;
  [[noreturn]] void fail(int rc, std::string_view context) const;

 private:
  struct StatementCache;
  Db(sqlite3* h, bool owned);
  // Its statements are finalized before the connection is closed (~Db, move assignment).
  sqlite3* db_ = nullptr;
  bool owned_ = false;
  std::unique_ptr<StatementCache> cache_;
};

// Kept statements: a handful of constant SQL texts (Transaction, shared/meta_store.cpp).
inline constexpr size_t kMaxCachedStatements = 16;

class Stmt {
 public:
  Stmt() = default;
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), stmt_(s) {}
  Stmt(Stmt&& o) noexcept : db_(o.db_), stmt_(o.stmt_) { o.stmt_ = nullptr; }
  Stmt& operator=(Stmt&& o) noexcept;
  Stmt(const Stmt&) = delete;
  Stmt& operator=(const Stmt&) = delete;
  ~Stmt() { sqlite3_finalize(stmt_); }

  explicit operator bool() const { return stmt_ != nullptr; }
  sqlite3_stmt* get() const { return stmt_; }
  Stmt& bind(int index, const Value& v);
  Stmt& bind(int index, int64_t v);
  Stmt& bind(int index, std::string_view text);
  Stmt& bind_null(int index);
  // Steps once: true when a row is available, false when done. Throws on error.
  bool step();
  // Steps to completion, for statements without result rows.
  void run();
  void reset();  // reset + clear bindings
  int column_count() const { return sqlite3_column_count(stmt_); }
  Value column(int i) const;
  int64_t column_int(int i) const { return sqlite3_column_int64(stmt_, i); }
  std::string column_text(int i) const;
  bool column_is_null(int i) const { return sqlite3_column_type(stmt_, i) == SQLITE_NULL; }
  std::string column_name(int i) const { return sqlite3_column_name(stmt_, i); }
  std::string sql() const { return sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : ""; }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// One use of a statement kept by Db::cached: reset, bindings cleared, when it ends. Holds a
// statement the Db owns (or, beyond the cache's size, one of its own), so it must not outlive it;
// one use of the same SQL at a time (a second would rebind the first's statement).
class CachedStmt {
 public:
  explicit CachedStmt(Stmt& kept) : stmt_(&kept) {}
  explicit CachedStmt(Stmt&& own) : own_(std::move(own)), stmt_(&own_) {}
  CachedStmt(const CachedStmt&) = delete;
  CachedStmt& operator=(const CachedStmt&) = delete;
  ~CachedStmt() { stmt_->reset(); }
  Stmt* operator->() const { return stmt_; }
  Stmt& operator*() const { return *stmt_; }

 private:
  Stmt own_;
  Stmt* stmt_;
};

// Rolls back on destruction unless commit() was called; works as BEGIN or as a SAVEPOINT.
class Transaction {
 public:
  enum class Kind { Deferred, Immediate, Savepoint };
  Transaction(Db& db, Kind kind = Kind::Immediate, std::string savepoint_name = "harmony_sp");
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();
  void rollback();

 private:
  Db& db_;
  Kind kind_;
  std::string name_;
  bool open_ = true;
};

// True for failures of the storage rather than of the statement: a full disk (SQLITE_FULL), an
// I/O error, out of memory. Nothing was written; the same transaction can succeed later.
bool storage_trouble(const SqliteError& e);
// True for errors that are not the statement's fault: a lock held by another connection
// (busy) or storage_trouble. The caller retries the whole transaction; treating the statement
// as bad (dead-lettering a row, giving up) would lose what only waits for a lock or for space.
bool is_transient(const SqliteError& e);

// Quotes an identifier for SQL: "name" with embedded quotes doubled. Every generated
// statement uses this for table/column names, including names received from the network.
std::string quote_ident(std::string_view name);
// Quotes a string literal: 'text' with embedded quotes doubled (used only in DDL we generate).
std::string quote_literal(std::string_view text);

}  // namespace harmony
