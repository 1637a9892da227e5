// SQL API of the extension. Each function converts C++ exceptions into a SQL error naming the
// problem: nothing throws across the C ABI.
//   harmony_version()              -> '0.1.0'
//   harmony_enable(T [, 'existing'])  -> tables newly enabled, or with 'existing' the rows
//                                        captured (T may be '*')
//   harmony_disable(T [, 'discard'])  -> tables disabled; refuses while changes are unpublished
//   harmony_status()               -> JSON: version, node_id, hlc, pending, tables, ...
//   harmony_checksum([T])          -> order-independent content checksum (hex)
#include "extension/functions.hpp"

#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "harmony_version.hpp"
#include "shared/capture.hpp"
#include "shared/names.hpp"
#include "shared/status.hpp"

namespace harmony::ext {
namespace {

const char* type_name(int type) {
  switch (type) {
    case SQLITE_INTEGER:
      return "an integer";
    case SQLITE_FLOAT:
      return "a real";
    case SQLITE_BLOB:
      return "a blob";
    case SQLITE_NULL:
      return "NULL";
    default:
      return "text";
  }
}

std::string text_arg(sqlite3_value* v, const char* fn, const char* what, const char* expected) {
  const int type = sqlite3_value_type(v);
  if (type != SQLITE_TEXT)
    throw Error(
        fmt::format("{}: {} must be text ({}), not {}", fn, what, expected, type_name(type)));
  return std::string(reinterpret_cast<const char*>(sqlite3_value_text(v)),
                     static_cast<size_t>(sqlite3_value_bytes(v)));
}

// Installing or removing capture writes to the database: say so plainly when it cannot.
void require_writable(Db& db, const char* fn) {
  if (sqlite3_db_readonly(db.handle(), "main") == 1)
    throw Error(fmt::format(
        "{}: the database is read-only (opened with -readonly or SQLITE_OPEN_READONLY, or the "
        "file or its directory is not writable); capture can only be changed on a writable "
        "database",
        fn));
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
    std::string table =
        text_arg(argv[0], "harmony_enable", "the first argument", "a table name, or '*'");
    EnableOptions opts;
    if (argc > 1) {
      std::string mode = text_arg(argv[1], "harmony_enable", "the second argument", "'existing'");
      if (mode == "existing")
        opts.capture_existing_rows = true;
      else if (!mode.empty())
        throw Error(fmt::format(
            "harmony_enable: unknown option '{}'; use 'existing' to publish the rows already in "
            "the table",
            mode));
    }
    require_writable(db, "harmony_enable");
    ensure_base_schema(db);
    if (opts.capture_existing_rows) {
      // 'existing' answers in rows, not tables: the rows are what the caller asked to publish,
      // and a table captured before (by the replicator, or an earlier call) still has rows
      // written before capture reached it.
      int64_t rows = 0;
      if (table != "*") {
        rows = capture_existing_rows(db, table);
      } else {
        for (const auto& name : list_tables(db))
          if (!names::is_reserved(name) && !ineligibility(db, name))
            rows += capture_existing_rows(db, name);
      }
      sqlite3_result_int64(ctx, rows);
      return;
    }
    int n = table == "*" ? enable_all(db, opts) : (enable_table(db, table, opts) ? 1 : 0);
    sqlite3_result_int(ctx, n);
  });
}

void fn_disable(sqlite3_context* ctx, int argc, sqlite3_value** argv) {
  guarded(ctx, [&](Db& db) {
    std::string table =
        text_arg(argv[0], "harmony_disable", "the first argument", "a table name, or '*'");
    bool discard = false;
    if (argc > 1) {
      std::string mode = text_arg(argv[1], "harmony_disable", "the second argument", "'discard'");
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
      require_writable(db, "harmony_disable");
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
    std::string sum = argc == 0 ? database_checksum(db)
                                : table_checksum(db, text_arg(argv[0], "harmony_checksum",
                                                              "the argument", "a table name"));
    sqlite3_result_text(ctx, sum.c_str(), static_cast<int>(sum.size()), SQLITE_TRANSIENT);
  });
}

}  // namespace

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
