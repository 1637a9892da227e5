// Hybrid logical clock versions. A version is (hlc, node): hlc packs wall-clock milliseconds in
// the high bits and a 16-bit logical counter in the low bits, so it stays strictly increasing
// when the wall clock stalls or goes backwards. Ties between nodes break on the node id.
#pragma once
#include <algorithm>
#include <compare>
#include <cstdint>
#include <optional>

#include "shared/clock.hpp"

namespace harmony {

inline constexpr int kHlcLogicalBits = 16;
// Versions whose physical part is further ahead of our wall clock than this are rejected as
// corrupt: accepting them would drag every later local version into the far future.
inline constexpr int64_t kMaxClockAheadMs = 24LL * 3600 * 1000;
// Largest physical part we accept (year ~6400); keeps (ms << 16) + counters far from overflow.
inline constexpr int64_t kMaxHlcMs = int64_t{1} << 46;

inline int64_t hlc_from_ms(int64_t ms) {
  return ms << kHlcLogicalBits;
}
inline int64_t hlc_physical_ms(int64_t hlc) {
  return hlc >> kHlcLogicalBits;
}

// The next local version after `last` (the highest version this database has issued or seen).
inline int64_t hlc_next(int64_t last, int64_t wall_ms) {
  return std::max(last + 1, hlc_from_ms(wall_ms));
}

// The version folding gives a changed row: the next local version, and above the row's own
// previous version when it has one (a version received from a peer may be ahead of our clock
// only for that row). The one rule used by fold_all and by a restore's in-memory fold.
inline int64_t next_version(int64_t last, int64_t wall_ms, std::optional<int64_t> previous) {
  const int64_t next = hlc_next(last, wall_ms);
  return previous ? std::max(next, *previous + 1) : next;
}

// True when a version can be a version at all: not negative, below the largest physical part.
inline bool hlc_well_formed(int64_t hlc) {
  return hlc >= 0 && hlc_physical_ms(hlc) < kMaxHlcMs;
}

// True when a received hlc is plausible: well formed, not absurdly far in the future.
inline bool hlc_plausible(int64_t hlc, int64_t wall_ms) {
  return hlc_well_formed(hlc) && hlc_physical_ms(hlc) <= wall_ms + kMaxClockAheadMs;
}

struct Version {
  int64_t hlc = 0;
  uint64_t node = 0;
  // Last-writer-wins order: higher hlc wins; equal hlc -> higher node id wins.
  auto operator<=>(const Version&) const = default;
};

}  // namespace harmony
