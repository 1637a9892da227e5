// SQL functions of libharmony, registered on each connection that loads the extension.
#pragma once
#include "shared/sqlite_api.hpp"

namespace harmony::ext {

// Registers harmony_version, harmony_enable, harmony_disable, harmony_status, harmony_checksum.
int register_functions(sqlite3* db, char** error);

}  // namespace harmony::ext
