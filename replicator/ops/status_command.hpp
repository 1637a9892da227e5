// `harmonylite -status`: one table of the whole cluster. Asks every node on the anti-entropy
// subjects (<prefix>-sync.all, SyncKind::Status, authenticated with the cluster key) for what it
// already counts: address, health, applied position and lag per stream, pending and held rows,
// conflicts, dead letters, clock skew. Nodes this database has received rows from (the origins
// in __harmony_rows_*) or that a peer sees clock samples from, but that did not answer, are
// listed as not answering, with the last write seen from them. `-json` prints the same as JSON.
// Exit code 0 when every known node answered and is healthy, 1 when one is unhealthy or not
// answering, 2 when NATS cannot be reached, 3 when no node answered.
#pragma once
#include "replicator/config/config.hpp"

namespace harmony {

int run_status(const Config& config, bool json);

}  // namespace harmony
