// Held rows of the consumer (see held_rows.hpp).
#include "replicator/receive/held_rows.hpp"

#include <fmt/format.h>

#include "replicator/wire/codec.hpp"
#include "shared/clock.hpp"

namespace harmony {

namespace {

// The rows of one table entry of `batch`, as a batch of their own.
Batch one_table_batch(const Batch& batch, const HeldRows& held) {
  Batch out;
  out.origin_node = batch.origin_node;
  out.batch_id = batch.batch_id;
  out.tables.push_back(batch.tables[held.table_entry]);
  out.rows.reserve(held.rows.size());
  for (size_t i : held.rows) {
    RowChange r = batch.rows[i];
    r.table = 0;
    out.rows.push_back(std::move(r));
  }
  return out;
}

}  // namespace

int64_t store_held_rows(Db& db, const Batch& batch, const std::vector<HeldRows>& held,
                        const MessageRef& where) {
  int64_t rows = 0;
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
    e.payload = encode_batch(one_table_batch(batch, h), true);
    store_held(db, e);
    rows += e.rows;
  }
  return rows;
}

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
      forget_held(db, e.id);
      ++out.dead_lettered;
      continue;
    }
    std::vector<HeldRows> still;
    ApplyStats st = applier.apply(b, where, still);
    out.applied += st.applied;
    out.dead_lettered += st.dead_lettered;
    out.max_hlc = std::max(out.max_hlc, st.max_hlc);
    if (still.empty()) {
      forget_held(db, e.id);
      ++out.released;
      continue;
    }
    // One table entry in, at most one entry out.
    e.kind = still.front().kind;
    e.reason = still.front().reason;
    e.rows = static_cast<int64_t>(still.front().rows.size());
    ++e.attempts;
    if (e.rows != static_cast<int64_t>(b.rows.size()))
      e.payload = encode_batch(one_table_batch(b, still.front()), true);
    update_held(db, e);
    out.still_held += e.rows;
  }
  return out;
}

}  // namespace harmony
