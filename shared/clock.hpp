// The wall clock: milliseconds since the Unix epoch. One definition for versions (hlc.hpp), the
// registry's enabled_at, dead letters, health and metrics, so every timestamp harmonylite
// writes or reports comes from the same clock. Also the test hook that skews it.
#pragma once
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <string>

namespace harmony {

// Test hook, not a setting: HARMONY_TEST_CLOCK_OFFSET_MS=<signed integer ms> shifts this
// process's wall clock, so integration tests run a node whose clock is skewed without touching
// the host's clock. Read once per process. Offsets beyond a year either way, or text that is not
// a whole integer, are ignored (the hook is for skews of minutes to days).
inline int64_t test_clock_offset_ms() {
  static const int64_t offset = [] {
    constexpr int64_t kMaxTestOffsetMs = 366LL * 24 * 3600 * 1000;  // a year
    const char* text = std::getenv("HARMONY_TEST_CLOCK_OFFSET_MS");
    if (!text || !*text) return int64_t{0};
    char* end = nullptr;
    const long long v = std::strtoll(text, &end, 10);
    if (*end != '\0' || v < -kMaxTestOffsetMs || v > kMaxTestOffsetMs) return int64_t{0};
    return static_cast<int64_t>(v);
  }();
  return offset;
}

inline int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
             .count() +
         test_clock_offset_ms();
}

}  // namespace harmony
