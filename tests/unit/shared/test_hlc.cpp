// The hybrid logical clock's arithmetic (shared/hlc.hpp): versions increase, never overflow
// (saturate at the ceiling instead of wrapping to negative numbers), and the bounds that
// decide which clocks may be stored or received.
#include <catch2/catch.hpp>

#include <limits>

#include "shared/hlc.hpp"

using namespace harmony;

namespace {
constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();
const int64_t kNowMs = 1'750'000'000'000;  // a June 2025 wall clock
}  // namespace

TEST_CASE("hlc_next is strictly increasing and follows the wall clock", "[hlc]") {
  CHECK(hlc_next(0, kNowMs) == hlc_from_ms(kNowMs));
  const int64_t ahead = hlc_from_ms(kNowMs + 1000) + 5;
  CHECK(hlc_next(ahead, kNowMs) == ahead + 1);  // clock ahead of the wall: logical increment
  CHECK(next_version(0, kNowMs, ahead) == ahead + 1);
}

TEST_CASE("hlc_next and next_version saturate at INT64_MAX instead of wrapping", "[hlc]") {
  CHECK(hlc_next(kInt64Max, kNowMs) == kInt64Max);
  CHECK(hlc_next(kInt64Max - 1, kNowMs) == kInt64Max);
  CHECK(hlc_saturated(hlc_next(kInt64Max, kNowMs)));
  CHECK_FALSE(hlc_saturated(hlc_next(0, kNowMs)));
  CHECK(next_version(0, kNowMs, kInt64Max) == kInt64Max);
  CHECK(next_version(kInt64Max, kNowMs, std::nullopt) == kInt64Max);
  CHECK(hlc_after(kInt64Max) == kInt64Max);
  // A wall clock beyond every plausible one does not overflow the shift either.
  CHECK(hlc_from_ms(kInt64Max) == hlc_from_ms(kMaxHlcMs));
  CHECK(hlc_from_ms(-5) == 0);
}

TEST_CASE("a stored clock must lie in the range versions are issued from", "[hlc]") {
  CHECK(hlc_storable(0));
  CHECK(hlc_storable(hlc_from_ms(kNowMs)));
  CHECK(hlc_storable(hlc_from_ms(kMaxHlcMs - 1) + 65535));
  CHECK_FALSE(hlc_storable(hlc_from_ms(kMaxHlcMs)));
  CHECK_FALSE(hlc_storable(kInt64Max));
  CHECK_FALSE(hlc_storable(-1));
  // From the largest storable clock, increments never reach the ceiling in practice.
  CHECK(hlc_next(hlc_from_ms(kMaxHlcMs) - 1, kNowMs) < kInt64Max);
}

TEST_CASE("a received clock above the plausible maximum is refused", "[hlc]") {
  CHECK(hlc_plausible(hlc_from_ms(kNowMs), kNowMs));
  CHECK_FALSE(hlc_plausible(kInt64Max, kNowMs));
  CHECK_FALSE(hlc_plausible(hlc_from_ms(kMaxHlcMs), kMaxHlcMs + kMaxClockAheadMs));
  CHECK_FALSE(hlc_plausible(-1, kNowMs));
  CHECK_FALSE(hlc_plausible(hlc_from_ms(kNowMs + kMaxClockAheadMs + 1), kNowMs));
}

TEST_CASE("node ids are 1 to 2^63-1", "[hlc]") {
  CHECK_FALSE(node_id_valid(0));
  CHECK(node_id_valid(1));
  CHECK(node_id_valid(static_cast<uint64_t>(kInt64Max)));
  CHECK_FALSE(node_id_valid(static_cast<uint64_t>(kInt64Max) + 1));
  CHECK_FALSE(node_id_valid(std::numeric_limits<uint64_t>::max()));
}

// Issue 15 case 6: the drift bound. A received version may be at most `bound` ahead of the wall
// clock; a node issues no fresh version beyond wall clock + bound.
TEST_CASE("hlc_plausible takes the drift bound, capped at the hard limit", "[hlc][clock]") {
  CHECK(hlc_plausible(hlc_from_ms(kNowMs + 60'000), kNowMs, 60'000));
  CHECK(hlc_plausible(hlc_from_ms(kNowMs + 60'000) + 65535, kNowMs, 60'000));
  CHECK_FALSE(hlc_plausible(hlc_from_ms(kNowMs + 60'001), kNowMs, 60'000));
  CHECK_FALSE(hlc_plausible(hlc_from_ms(kNowMs + 120'000), kNowMs, kDefaultMaxClockDriftMs));
  // A bound beyond the hard limit (a malformed value) is the hard limit.
  CHECK_FALSE(hlc_plausible(hlc_from_ms(kNowMs + kMaxClockAheadMs + 1), kNowMs, kInt64Max));
  CHECK_FALSE(hlc_plausible(hlc_from_ms(kNowMs + 1), kNowMs, -5));  // negative: no lead at all
  CHECK(kDefaultMaxClockDriftMs == 60'000);
}

TEST_CASE("hlc_issue_limit is the last version of wall clock + bound", "[hlc][clock]") {
  const int64_t limit = hlc_issue_limit(kNowMs, 60'000);
  CHECK(hlc_physical_ms(limit) == kNowMs + 60'000);
  CHECK(hlc_physical_ms(limit + 1) == kNowMs + 60'001);
  CHECK(hlc_plausible(limit, kNowMs, 60'000));
  CHECK_FALSE(hlc_plausible(limit + 1, kNowMs, 60'000));
  // Malformed inputs stay in range: no overflow, never negative.
  CHECK(hlc_storable(hlc_issue_limit(kInt64Max, kInt64Max)));
  CHECK(hlc_issue_limit(-5, -5) == hlc_from_ms(1) - 1);
}

TEST_CASE("next_version keeps a dragged clock within the bound but exceeds the row's previous",
          "[hlc][clock]") {
  const int64_t limit = hlc_issue_limit(kNowMs, 60'000);
  const int64_t day_ahead = hlc_from_ms(kNowMs + 24LL * 3600 * 1000);
  // A clock a day ahead issues at the limit, not a day ahead.
  CHECK(next_version(day_ahead, kNowMs, std::nullopt, limit) == limit);
  // Within the bound the clock counts as before.
  const int64_t near = hlc_from_ms(kNowMs + 1000);
  CHECK(next_version(near, kNowMs, std::nullopt, limit) == near + 1);
  // The wall clock still leads when it is ahead of the clock.
  CHECK(next_version(0, kNowMs, std::nullopt, limit) == hlc_from_ms(kNowMs));
  // A row whose previous version is beyond the bound: its new version must exceed it.
  CHECK(next_version(day_ahead, kNowMs, day_ahead, limit) == day_ahead + 1);
  // Without a limit (the default) nothing changes.
  CHECK(next_version(day_ahead, kNowMs, std::nullopt) == day_ahead + 1);
}
