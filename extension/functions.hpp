// SQL functions of libharmony, registered on each connection that loads the extension.
#pragma once
#include <sqlite3.h>

namespace harmony::ext {

// Registers harmony_version, harmony_enable, harmony_disable, harmony_status, harmony_checksum.
int register_functions(sqlite3* db, char** error);
// Address of sqlite3_libversion in the libsqlite3 we are linked to, to detect a foreign host.
const void* linked_sqlite_identity();
const char* linked_sqlite_version();

}  // namespace harmony::ext
