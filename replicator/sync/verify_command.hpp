// `harmonylite -verify`: compares this node's content digests with every peer that answers on
// NATS, pulls what this node lacks or holds older (the same repair as a round), and prints per
// table: rows, digest, peers compared, differences, repaired. Exit code 0 when every peer agreed
// with this node, 1 when a difference was found (even if repaired), 3 when no peer answered.
#pragma once
#include "replicator/config/config.hpp"

namespace harmony {

int run_verify(const Config& config);

}  // namespace harmony
