// Held rows of the consumer (see held_rows.hpp).
#include "replicator/receive/held_rows.hpp"

#include <fmt/format.h>

#include "replicator/wire/codec.hpp"

namespace harmony {

RetryResult retry_held_rows(Db& db, Applier& applier, const std::string& stream, int64_t after,
                            size_t max_entries) {
  RetryResult out;
  auto entries = load_held(db, stream, after, max_entries);
  if (entries.size() == max_entries) out.last_id = entries.back().id;
  for (auto& e : entries) {
    ++out.entries;
    const MessageRef where{e.stream, e.seq};
    Batch b;
    try {
      b = decode_batch(e.payload);
    } catch (const DecodeError& err) {
      // Written by this program, so only a damaged file gets here: keep the bytes for a person.
      applier.dead_letter(where, e.origin, e.batch_id, e.table,
                          fmt::format("held rows cannot be read back: {}", err.what()), e.payload);
      out.change += forget_held(db, e);
      ++out.dead_lettered;
      continue;
    }
    std::vector<HeldRows> still;
    ApplyStats st = applier.apply(b, where, still);
    // This node's own unpublished rows, held at a restore: what applied now goes out.
    if (e.seq == kRestoredOwnRowsSeq && st.applied > 0) mark_own_rows_pending(db, b, e.origin);
    out.applied += st.applied;
    out.dead_lettered += st.dead_lettered;
    out.max_hlc = std::max(out.max_hlc, st.max_hlc);
    if (still.empty()) {
      out.change += forget_held(db, e);
      ++out.released;
      continue;
    }
    // One table entry in, at most one entry out.
    const HeldUsage was{0, e.rows, held_bytes(e)};
    e.kind = still.front().kind;
    e.reason = still.front().reason;
    e.rows = static_cast<int64_t>(still.front().rows.size());
    ++e.attempts;
    if (e.rows != static_cast<int64_t>(b.rows.size()))
      e.payload =
          encode_batch(held_rows_batch(b, still.front().table_entry, still.front().rows), true);
    out.change += update_held(db, e, was);
    out.still_held += e.rows;
  }
  return out;
}

}  // namespace harmony
