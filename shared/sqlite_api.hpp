// Where shared/ gets the SQLite C API from. The replicator and the tests link libsqlite3 and call
// it directly. libharmony.so is built from the same sources a second time with
// HARMONY_SQLITE_EXTENSION defined (shared/CMakeLists.txt, harmony_shared_ext): then every
// sqlite3_* name is a macro through the host's sqlite3_api_routines (sqlite3ext.h), so the
// extension calls whatever SQLite the host process carries and links none of its own. The two
// flavours define the same classes differently: never link both into one binary.
#pragma once
#ifdef HARMONY_SQLITE_EXTENSION
#include <sqlite3ext.h>
// The pointer itself is defined once, by SQLITE_EXTENSION_INIT1 in extension/entry.cpp.
SQLITE_EXTENSION_INIT3
#else
#include <sqlite3.h>
#endif
