// Entry point of libharmony.so: `.load ./libharmony` in the sqlite3 shell, or
// sqlite3_load_extension(db, "path/libharmony", nullptr, &err) from an application.
// Only this file sees sqlite3ext.h; everything else calls the system libsqlite3 directly,
// which is why we refuse to load into a host that carries a different copy of SQLite.
#include <sqlite3ext.h>
SQLITE_EXTENSION_INIT1

#include "extension/functions.hpp"

extern "C" {
#ifdef _WIN32
__declspec(dllexport)
#endif
    int sqlite3_harmony_init(sqlite3* db, char** error, const sqlite3_api_routines* api) {
  SQLITE_EXTENSION_INIT2(api);
  if (reinterpret_cast<const void*>(api->libversion) != harmony::ext::linked_sqlite_identity()) {
    *error = api->mprintf(
        "libharmony must be loaded by a program that uses the system libsqlite3 (this host "
        "carries its own SQLite %s; libharmony is linked to %s)",
        api->libversion(), harmony::ext::linked_sqlite_version());
    return SQLITE_ERROR;
  }
  return harmony::ext::register_functions(db, error);
}
}
