// Held rows as they are stored: what an Applier held of a batch becomes entries of
// __harmony_held, each a one-table batch in the wire encoding (so a retry decodes it exactly as
// it decodes a message). The consumer stores what a received message could not apply yet, a
// restore what the snapshot's schema cannot take of this node's own unpublished rows: one way
// to build the entries for both.
#pragma once
#include <vector>

#include "shared/apply.hpp"
#include "shared/held.hpp"

namespace harmony {

// Stores what `apply` held of `batch` (received at `where`; the origin is batch.origin_node).
// Returns what was stored.
HeldUsage store_held_rows(Db& db, const Batch& batch, const std::vector<HeldRows>& held,
                          const MessageRef& where);

}  // namespace harmony
