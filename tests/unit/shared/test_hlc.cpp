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
