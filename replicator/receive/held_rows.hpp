// Rows that cannot be applied yet, on the consumer's side: offering the entries of
// __harmony_held (stored by replicator/wire/held_payload) to the Applier again. Both run inside the
// consumer's write transaction, after Applier::begin().
//
// Why holding is sound: apply is last-writer-wins per row on (version, origin), so applying a
// held row later, after newer or older versions of the same row arrived, ends in the same state
// as applying it on time (a newer version already here makes it a no-op).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "replicator/wire/held_payload.hpp"
#include "shared/apply.hpp"
#include "shared/held.hpp"

namespace harmony {

struct RetryResult {
  int64_t entries = 0;   // entries looked at
  int64_t applied = 0;   // rows applied now
  int64_t released = 0;  // entries with nothing left to wait for
  int64_t still_held = 0;
  int64_t dead_lettered = 0;
  int64_t max_hlc = 0;
  int64_t last_id = 0;  // where the next round goes on; 0 after the newest entry was reached
  HeldUsage change;     // what the round did to the stored usage (released: negative)
};

// Offers up to `max_entries` held entries of `stream` with ids above `after` to the applier
// again, oldest first (round by round, every entry gets its turn however many there are).
RetryResult retry_held_rows(Db& db, Applier& applier, const std::string& stream, int64_t after,
                            size_t max_entries);

}  // namespace harmony
