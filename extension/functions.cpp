// SQL API of the extension. Each function converts C++ exceptions into a SQL error naming the
// problem: nothing throws across the C ABI.
//   harmony_version()              -> '0.1.0'
//   harmony_enable(T [, 'existing'])  -> tables newly enabled (T may be '*')
//   harmony_disable(T [, 'discard'])  -> tables disabled; refuses while changes are unpublished
//   harmony_status()               -> JSON: version, node_id, hlc, pending, tables, ...
//   harmony_checksum([T])          -> order-independent content checksum (hex)
#include "extension/functions.hpp"

#include <string>

#include <fmt/format.h>

#include "harmony_version.hpp"
#include "shared/capture.hpp"
#include "shared/status.hpp"

namespace harmony::ext {
namespace {

std::string text_arg(sqlite3_context* ctx, sqlite3_value* v, const char* fn, const char* what) {
  if (sqlite3_value_type(v) != SQLITE_TEXT) {
    throw Error(fmt::format("{}: {} must be text (a table name, or '*')", fn, what));
  }
  return std::string(reinterpret_cast<const char*>(sqlite3_value_text(v)),
                     static_cast<size_t>(sqlite3_value_bytes(v)));
  (void)ctx;
}

// Runs `body` inside a savepoint so a failure leaves nothing half-installed.
template <typename F>
void guarded(sqlite3_context* ctx, F&& body) {
  sqlite3* handle = sqlite3_context_db_handle(ctx);
  Db db = Db::borrow(handle);
  try {
    Transaction tx(db, Transaction::Kind::Savepoint, "harmony_ext");
    body(db);
    tx.commit();
  } catch (const std::exception& e) {
    sqlite3_result_error(ctx, e.what(), -1);
  }
}

void fn_version(sqlite3_context* ctx, int, sqlite3_value**) {
  sqlite3_result_text(ctx, build::kVersion, -1, SQLITE_STATIC);
}

void fn_enable(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  guarded(ctx, [&](Db& db) {
    std::string table = text_arg(ctx, argv[0], "harmony_enable", "the first argument");
    EnableOptions opts;
    if (argc > 1) {
      std::string mode = text_arg(ctx, argv[1], "harmony_enable", "the second argument");
      if (mode == "existing")
        opts.capture_existing_rows = true;
      else if (!mode.empty())
        throw Error(fmt::format(
            "harmony_enable: unknown option '{}'; use 'existing' to publish the rows already in "
            "the table",
            mode));
    }
    ensure_base_schema(db);
    int n = table == "*" ? enable_all(db, opts) : (enable_table(db, table, opts) ? 1 : 0);
    sqlite3_result_int(ctx, n);
  });
}

void fn_disable(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  guarded(ctx, [&](Db& db) {
    std::string table = text_arg(ctx, argv[0], "harmony_disable", "the first argument");
    bool discard = false;
    if (argc > 1) {
      std::string mode = text_arg(ctx, argv[1], "harmony_disable", "the second argument");
      if (mode == "discard")
        discard = true;
      else
        throw Error(fmt::format(
            "harmony_disable: unknown option '{}'; use 'discard' to drop unpublished changes",
            mode));
    }
    bool set_up =
        db.query_int("SELECT count(*) FROM sqlite_schema WHERE name='__harmony_tables'") > 0;
    int n = 0;
    if (!set_up) {
      if (table != "*" && table_kind(db, table) == TableKind::Missing)
        throw Error(fmt::format("no such table: \"{}\"", table));
    } else {
      n = table == "*" ? disable_all(db, discard) : (disable_table(db, table, discard) ? 1 : 0);
    }
    sqlite3_result_int(ctx, n);
  });
}

void fn_status(sqlite3_context* ctx, int, sqlite3_value**) {
  guarded(ctx, [&](Db& db) {
    std::string s = dump_json(status_json(db));
    sqlite3_result_text(ctx, s.c_str(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
  });
}

void fn_checksum(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  guarded(ctx, [&](Db& db) {
    std::string sum =
        argc == 0 ? database_checksum(db)
                  : table_checksum(db, text_arg(ctx, argv[0], "harmony_checksum", "the argument"));
    sqlite3_result_text(ctx, sum.c_str(), static_cast<int>(sum.size()), SQLITE_TRANSIENT);
  });
}

}  // namespace

const void* linked_sqlite_identity() {
  return reinterpret_cast<const void*>(&sqlite3_libversion);
}
const char* linked_sqlite_version() {
  return sqlite3_libversion();
}

int register_functions(sqlite3* db, char** error) {
  struct Def {
    const char* name;
    int nargs;
    int flags;
    void (*fn)(sqlite3_context*, int, sqlite3_value**);
  };
  // DIRECTONLY: functions that change the schema or read private state cannot be smuggled into
  // triggers or views; harmony_version is harmless anywhere.
  const int direct = SQLITE_UTF8 | SQLITE_DIRECTONLY;
  const Def defs[] = {
      {"harmony_version", 0, SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, fn_version},
      {"harmony_enable", 1, direct, fn_enable},
      {"harmony_enable", 2, direct, fn_enable},
      {"harmony_disable", 1, direct, fn_disable},
      {"harmony_disable", 2, direct, fn_disable},
      {"harmony_status", 0, direct, fn_status},
      {"harmony_checksum", 0, direct, fn_checksum},
      {"harmony_checksum", 1, direct, fn_checksum},
  };
  for (const auto& d : defs) {
    int rc = sqlite3_create_function_v2(db, d.name, d.nargs, d.flags, nullptr, d.fn, nullptr,
                                        nullptr, nullptr);
    if (rc != SQLITE_OK) {
      *error = sqlite3_mprintf("libharmony: cannot register %s: %s", d.name, sqlite3_errmsg(db));
      return rc;
    }
  }
  return SQLITE_OK;
}

}  // namespace harmony::ext
