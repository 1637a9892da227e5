// Entry point of libharmony.so: `.load ./libharmony` in the sqlite3 shell,
// sqlite3_load_extension(db, "path/libharmony", nullptr, &err) from C, load_extension() from
// Python, db.loadExtension() from better-sqlite3. Every SQLite call of the extension goes through
// the host's sqlite3_api_routines (shared/sqlite_api.hpp), defined here, so the extension works
// with whatever SQLite the host carries, provided it is new enough (kMinimumSqlite).
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "extension/functions.hpp"

namespace {

// SQLite 3.37.0 (2021-11-27): the newest routine the extension calls is sqlite3_changes64, which
// an older host's api table does not have (reading it would run past the end of the table).
// The SQL it generates needs less (sqlite_schema: 3.33.0, DIRECTONLY/INNOCUOUS: 3.31.0).
constexpr int kMinimumSqlite = 3037000;
constexpr const char* kMinimumSqliteText = "3.37.0";

}  // namespace

extern "C" {
__attribute__((visibility("default"))) int sqlite3_harmony_init(sqlite3* db, char** error,
                                                                const sqlite3_api_routines* api) {
  // Only libversion_number, libversion and mprintf are used before the version is known good:
  // all three are in every api table since extensions exist (3.3.13).
  if (api->libversion_number() < kMinimumSqlite) {
    *error = api->mprintf(
        "libharmony needs SQLite %s or newer; this host runs SQLite %s (upgrade the SQLite "
        "library the program uses)",
        kMinimumSqliteText, api->libversion());
    return SQLITE_ERROR;
  }
  // Schema inspection reads declared collations with sqlite3_table_column_metadata, which a
  // SQLite built without SQLITE_ENABLE_COLUMN_METADATA leaves out of the table (a null entry).
  if (api->table_column_metadata == nullptr) {
    *error = api->mprintf(
        "libharmony needs a SQLite built with SQLITE_ENABLE_COLUMN_METADATA; this host's SQLite "
        "%s lacks sqlite3_table_column_metadata",
        api->libversion());
    return SQLITE_ERROR;
  }
  SQLITE_EXTENSION_INIT2(api);
  return harmony::ext::register_functions(db, error);
}
}
