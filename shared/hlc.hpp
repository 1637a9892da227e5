// Hybrid logical clock versions. A version is (hlc, node): hlc packs wall-clock milliseconds in
// the high bits and a 16-bit logical counter in the low bits, so it stays strictly increasing
// when the wall clock stalls or goes backwards. Ties between nodes break on the node id.
#pragma once
#include <algorithm>
#include <compare>
#include <cstdint>
#include <limits>
#include <optional>

#include "shared/clock.hpp"

namespace harmony {

inline constexpr int kHlcLogicalBits = 16;
// The drift bound (config `max_clock_drift`): a node issues no version whose physical part is
// beyond its wall clock + bound, and holds received rows beyond it until they are plausible.
// One minute by default: NTP keeps hosts within milliseconds, so a minute only trips on a clock
// that is really wrong, and it limits how long a node that runs ahead wins every conflict.
inline constexpr int64_t kDefaultMaxClockDriftMs = 60'000;
// The hard sanity limit: the largest drift bound a config may set, and the bound for what has no
// configured one (a snapshot's clock). A version further ahead than a day is corrupt or a clock
// that is badly wrong; accepting it would drag every later local version into the far future.
inline constexpr int64_t kMaxClockAheadMs = 24LL * 3600 * 1000;
// Largest physical part we accept (year ~6400); keeps (ms << 16) + counters far from overflow.
inline constexpr int64_t kMaxHlcMs = int64_t{1} << 46;
// The largest version there is. Versions saturate here instead of wrapping to negative numbers
// (a wrapped version would lose every conflict and be refused by every peer as implausible).
inline constexpr int64_t kHlcCeiling = std::numeric_limits<int64_t>::max();

// Node ids any node can have: 1 .. 2^63-1. The config and the -node-id flag accept no more, and
// SQLite stores a node id as a signed 64-bit integer, so a larger origin would be recorded as a
// negative node and break the tie-break order. 0 means "no node" (the config's "use the stored
// id"). Generated ids are smaller still (below 2^53, shared/meta_store.cpp).
inline constexpr uint64_t kMaxNodeId = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
inline bool node_id_valid(uint64_t id) {
  return id >= 1 && id <= kMaxNodeId;
}

inline int64_t hlc_from_ms(int64_t ms) {
  return std::clamp<int64_t>(ms, 0, kMaxHlcMs) << kHlcLogicalBits;
}
inline int64_t hlc_physical_ms(int64_t hlc) {
  return hlc >> kHlcLogicalBits;
}

// `v + 1`, saturating at kHlcCeiling instead of overflowing (signed overflow is undefined).
inline int64_t hlc_after(int64_t v) {
  return v < kHlcCeiling ? v + 1 : kHlcCeiling;
}

// The next local version after `last` (the highest version this database has issued or seen).
// Never overflows: a `last` at kHlcCeiling gives kHlcCeiling again (hlc_saturated reports it).
// The clock a database stores is kept below that by load_clock (shared/meta_store.cpp), which
// refuses a clock beyond hlc_storable, so saturation only shows for a corrupt database.
inline int64_t hlc_next(int64_t last, int64_t wall_ms) {
  return std::max(hlc_after(last), hlc_from_ms(wall_ms));
}

// The version folding gives a changed row: the next local version, and above the row's own
// previous version when it has one (a version received from a peer may be ahead of our clock
// only for that row). The one rule used by fold_all and by a restore's in-memory fold.
//
// `limit` (hlc_issue_limit) bounds what the clock contributes: a clock dragged or left ahead of
// wall clock + drift bound issues no fresh version beyond it. The row's own previous version
// still wins over the limit: a new version must exceed it, or peers holding the previous one
// would skip the write (divergence) - such versions are beyond the bound only because that row
// already was, and peers hold them exactly as they hold the previous one (the fold counts them).
inline int64_t next_version(int64_t last, int64_t wall_ms, std::optional<int64_t> previous,
                            int64_t limit = kHlcCeiling) {
  const int64_t next = std::max(std::min(hlc_after(last), limit), hlc_from_ms(wall_ms));
  return previous ? std::max(next, hlc_after(*previous)) : next;
}

// The highest version a node may issue at wall clock `now_ms` with drift bound `max_drift_ms`:
// the last one whose physical part is at most now + bound (what hlc_plausible accepts).
inline int64_t hlc_issue_limit(int64_t now_ms, int64_t max_drift_ms) {
  const int64_t ms = std::clamp<int64_t>(now_ms, 0, kMaxHlcMs) +
                     std::clamp<int64_t>(max_drift_ms, 0, kMaxClockAheadMs);
  // Below kMaxHlcMs even for an absurd wall clock: the fold stores the limit as its clock, and
  // load_clock refuses a clock at kMaxHlcMs.
  return ms + 1 >= kMaxHlcMs ? hlc_from_ms(kMaxHlcMs) - 1 : hlc_from_ms(ms + 1) - 1;
}

// True when a version has reached the ceiling: the next one cannot be larger.
inline bool hlc_saturated(int64_t hlc) {
  return hlc == kHlcCeiling;
}

// True when a database may keep `hlc` as its clock: not negative and its physical part below
// kMaxHlcMs. Unlike hlc_plausible it does not compare with the wall clock: a stored clock may
// be ahead of a wall clock that was stepped back, but never beyond year ~6400, and from any
// clock in range 2^46 * 2^16 increments remain before the ceiling.
inline bool hlc_storable(int64_t hlc) {
  return hlc >= 0 && hlc_physical_ms(hlc) < kMaxHlcMs;
}

// True when a version can be a version at all: not negative, below the largest physical part.
inline bool hlc_well_formed(int64_t hlc) {
  return hlc >= 0 && hlc_physical_ms(hlc) < kMaxHlcMs;
}

// True when a received hlc is plausible: well formed, its physical part at most `max_drift_ms`
// (the drift bound, capped at the hard limit kMaxClockAheadMs) ahead of our wall clock.
inline bool hlc_plausible(int64_t hlc, int64_t wall_ms, int64_t max_drift_ms = kMaxClockAheadMs) {
  return hlc_well_formed(hlc) &&
         hlc_physical_ms(hlc) <= wall_ms + std::clamp<int64_t>(max_drift_ms, 0, kMaxClockAheadMs);
}

struct Version {
  int64_t hlc = 0;
  uint64_t node = 0;
  // Last-writer-wins order: higher hlc wins; equal hlc -> higher node id wins.
  auto operator<=>(const Version&) const = default;
};

}  // namespace harmony
