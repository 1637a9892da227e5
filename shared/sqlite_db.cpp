// Implementation of the RAII SQLite wrappers declared in sqlite_db.hpp.
#include "shared/sqlite_db.hpp"

#include <cstring>
#include <list>
#include <utility>

#include <fmt/format.h>

namespace harmony {

bool values_identical(const Value& a, const Value& b) {
  if (a.index() != b.index()) return false;
  if (auto da = std::get_if<double>(&a)) {
    double db = std::get<double>(b);
    return std::memcmp(da, &db, sizeof(double)) == 0;
  }
  return a == b;
}

// A list, so statements handed out stay where they are while others are added.
struct Db::StatementCache {
  std::list<std::pair<std::string, Stmt>> kept;
};

Db::Db() = default;
Db::Db(sqlite3* h, bool owned) : db_(h), owned_(owned) {}

Db Db::open(const std::string& path, int flags) {
  sqlite3* h = nullptr;
  int rc = sqlite3_open_v2(path.c_str(), &h, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = h ? sqlite3_errmsg(h) : sqlite3_errstr(rc);
    sqlite3_close_v2(h);
    throw SqliteError(rc, fmt::format("cannot open database {}: {}", path, msg));
  }
  sqlite3_extended_result_codes(h, 1);
  return Db(h, true);
}

Db::Db(Db&& other) noexcept
    : db_(other.db_), owned_(other.owned_), cache_(std::move(other.cache_)) {
  other.db_ = nullptr;
}

Db& Db::operator=(Db&& other) noexcept {
  if (this != &other) {
    cache_.reset();  // its statements before their connection
    if (owned_) sqlite3_close_v2(db_);
    db_ = other.db_;
    owned_ = other.owned_;
    cache_ = std::move(other.cache_);
    other.db_ = nullptr;
  }
  return *this;
}

Db::~Db() {
  cache_.reset();  // its statements before their connection
  if (owned_) sqlite3_close_v2(db_);
}

CachedStmt Db::cached(std::string_view sql) {
  if (!cache_) cache_ = std::make_unique<StatementCache>();
  for (auto& [text, stmt] : cache_->kept)
    if (text == sql) return CachedStmt(stmt);
  if (cache_->kept.size() >= kMaxCachedStatements) return CachedStmt(prepare(sql));
  Stmt s = prepare(sql);
  cache_->kept.emplace_back(std::string(sql), std::move(s));
  return CachedStmt(cache_->kept.back().second);
}

void Db::fail(int rc, std::string_view context) const {
  throw SqliteError(sqlite3_extended_errcode(db_) ? sqlite3_extended_errcode(db_) : rc,
                    fmt::format("{}: {}", context, sqlite3_errmsg(db_)));
}

void Db::exec(std::string_view sql) {
  std::string copy(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, copy.c_str(), nullptr, nullptr, &err);
  if (rc != SQLITE_OK) {
    std::string msg = err ? err : sqlite3_errstr(rc);
    sqlite3_free(err);
    int code = sqlite3_extended_errcode(db_);
    throw SqliteError(code ? code : rc, msg);
  }
}

Stmt Db::prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &s, nullptr);
  if (rc != SQLITE_OK) fail(rc, fmt::format("cannot prepare [{}]", sql.substr(0, 200)));
  return Stmt(db_, s);
}

std::optional<Value> Db::query_value(std::string_view sql) {
  Stmt s = prepare(sql);
  if (!s.step()) return std::nullopt;
  return s.column(0);
}

int64_t Db::query_int(std::string_view sql, int64_t fallback) {
  auto v = query_value(sql);
  if (!v) return fallback;
  if (auto i = std::get_if<int64_t>(&*v)) return *i;
  return fallback;
}

std::string Db::filename() const {
  const char* f = sqlite3_db_filename(db_, "main");
  return f ? f : "";
}

Stmt& Stmt::operator=(Stmt&& o) noexcept {
  if (this != &o) {
    sqlite3_finalize(stmt_);
    db_ = o.db_;
    stmt_ = o.stmt_;
    o.stmt_ = nullptr;
  }
  return *this;
}

static void check_bind(sqlite3* db, int rc) {
  if (rc != SQLITE_OK) throw SqliteError(rc, fmt::format("bind failed: {}", sqlite3_errmsg(db)));
}

Stmt& Stmt::bind(int index, const Value& v) {
  int rc = std::visit(
      [&](const auto& x) -> int {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, Null>)
          return sqlite3_bind_null(stmt_, index);
        else if constexpr (std::is_same_v<T, int64_t>)
          return sqlite3_bind_int64(stmt_, index, x);
        else if constexpr (std::is_same_v<T, double>)
          return sqlite3_bind_double(stmt_, index, x);
        else if constexpr (std::is_same_v<T, Text>)
          return sqlite3_bind_text64(stmt_, index, x.bytes.data(), x.bytes.size(), SQLITE_TRANSIENT,
                                     SQLITE_UTF8);
        else
          return sqlite3_bind_blob64(stmt_, index, x.bytes.data(), x.bytes.size(),
                                     SQLITE_TRANSIENT);
      },
      v);
  check_bind(db_, rc);
  return *this;
}

Stmt& Stmt::bind(int index, int64_t v) {
  check_bind(db_, sqlite3_bind_int64(stmt_, index, v));
  return *this;
}

Stmt& Stmt::bind(int index, std::string_view text) {
  check_bind(db_, sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                      SQLITE_UTF8));
  return *this;
}

Stmt& Stmt::bind_null(int index) {
  check_bind(db_, sqlite3_bind_null(stmt_, index));
  return *this;
}

bool Stmt::step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  int code = sqlite3_extended_errcode(db_);
  std::string msg = sqlite3_errmsg(db_);
  sqlite3_reset(stmt_);
  throw SqliteError(code ? code : rc, msg);
}

void Stmt::run() {
  while (step()) {
  }
}

void Stmt::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Value Stmt::column(int i) const {
  switch (sqlite3_column_type(stmt_, i)) {
    case SQLITE_INTEGER:
      return sqlite3_column_int64(stmt_, i);
    case SQLITE_FLOAT:
      return sqlite3_column_double(stmt_, i);
    case SQLITE_TEXT: {
      auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
      return Text{std::string(p, sqlite3_column_bytes(stmt_, i))};
    }
    case SQLITE_BLOB: {
      auto p = static_cast<const char*>(sqlite3_column_blob(stmt_, i));
      int n = sqlite3_column_bytes(stmt_, i);
      return Blob{n ? std::string(p, n) : std::string()};
    }
    default:
      return Null{};
  }
}

std::string Stmt::column_text(int i) const {
  auto p = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, i));
  return p ? std::string(p, sqlite3_column_bytes(stmt_, i)) : std::string();
}

Transaction::Transaction(Db& db, Kind kind, std::string savepoint_name)
    : db_(db), kind_(kind), name_(std::move(savepoint_name)) {
  // BEGIN and COMMIT run every transaction: kept prepared (Db::cached), not parsed each time.
  switch (kind_) {
    case Kind::Deferred:
      db_.cached("BEGIN DEFERRED")->run();
      break;
    case Kind::Immediate:
      db_.cached("BEGIN IMMEDIATE")->run();
      break;
    case Kind::Savepoint:
      db_.exec("SAVEPOINT " + quote_ident(name_));
      break;
  }
}

Transaction::~Transaction() {
  if (!open_) return;
  try {
    rollback();
  } catch (...) {
    // Destructors must not throw; a failed rollback leaves SQLite to roll back on close.
  }
}

void Transaction::commit() {
  if (!open_) return;
  if (kind_ == Kind::Savepoint)
    db_.exec("RELEASE " + quote_ident(name_));
  else
    db_.cached("COMMIT")->run();
  open_ = false;
}

void Transaction::rollback() {
  if (!open_) return;
  open_ = false;
  if (kind_ == Kind::Savepoint) {
    db_.exec("ROLLBACK TO " + quote_ident(name_) + "; RELEASE " + quote_ident(name_));
  } else if (db_.in_transaction()) {
    db_.cached("ROLLBACK")->run();
  }
}

bool storage_trouble(const SqliteError& e) {
  switch (e.code() & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_NOMEM:
      return true;
    default:
      return false;
  }
}

bool is_transient(const SqliteError& e) {
  return e.busy() || storage_trouble(e);
}

std::string quote_ident(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

std::string quote_literal(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out.push_back('\'');
  for (char c : text) {
    if (c == '\'') out.push_back('\'');
    out.push_back(c);
  }
  out.push_back('\'');
  return out;
}

}  // namespace harmony
