// The operator's view of held rows (__harmony_held): `-held` lists them, `-drop-held <id>|all`
// gives up on them, moving them to __harmony_dead_letters (payload kept, reason prefixed with
// "dropped by the operator"), for when their cause will never go away (a table this node is
// never going to have, a forged message). Both work on the database alone, also while the
// replicator runs (one short write transaction).
#pragma once
#include <string>

#include "replicator/config/config.hpp"

namespace harmony {

// Prints every held entry: id, stream, sequence, origin, table, rows, kind, age, reason.
// Exit code 0.
int run_list_held(const Config& config);
// `which`: an entry id, or "all". Exit code 0 when something was moved, 1 otherwise.
int run_drop_held(const Config& config, const std::string& which);

}  // namespace harmony
