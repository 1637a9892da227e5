// Held rows as they are stored (see held_payload.hpp).
#include "replicator/wire/held_payload.hpp"

#include "replicator/wire/codec.hpp"
#include "shared/clock.hpp"

namespace harmony {

HeldUsage store_held_rows(Db& db, const Batch& batch, const std::vector<HeldRows>& held,
                          const MessageRef& where) {
  HeldUsage stored;
  for (const auto& h : held) {
    HeldEntry e;
    e.at_ms = wall_clock_ms();
    e.stream = where.stream;
    e.seq = where.seq;
    e.origin = batch.origin_node;
    e.batch_id = batch.batch_id;
    e.table = batch.tables[h.table_entry].name;
    e.kind = h.kind;
    e.reason = h.reason;
    e.rows = static_cast<int64_t>(h.rows.size());
    e.payload = encode_batch(held_rows_batch(batch, h.table_entry, h.rows), true);
    stored += store_held(db, e);
  }
  return stored;
}

}  // namespace harmony
