// The publisher's side of the database: collect every pending change into a Batch (values read
// at that moment, in the same transaction as the fold, so a batch is a consistent snapshot of
// committed state) and, after JetStream acknowledged it, clear the dirty flags.
#pragma once
#include <cstdint>
#include <vector>

#include "shared/batch.hpp"
#include "shared/capture.hpp"
#include "shared/hlc.hpp"

namespace harmony {

// Inside a write transaction: folds the logs, then reads up to `max_rows` dirty rows with their
// current values, the oldest versions first across all tables (rows in version order). Allocates
// the batch id from __harmony_meta.
// Returns a batch with no rows when nothing is pending. `max_drift_ms`: fold_all's drift bound.
Batch collect_pending(Db& db, const std::vector<CapturedTable>& tables, uint64_t node,
                      size_t max_rows, int64_t max_drift_ms = kDefaultMaxClockDriftMs);

// After the ack: clears `dirty` for each row whose version is still the one published (a row
// changed again since then keeps its flag and goes out in a later batch). Returns rows cleared.
int64_t mark_published(Db& db, const Batch& batch);

// Total pending changes over all captured tables.
int64_t total_pending(Db& db, const std::vector<CapturedTable>& tables);

}  // namespace harmony
