// The wall clock: milliseconds since the Unix epoch. One definition for versions (hlc.hpp), the
// registry's enabled_at, dead letters, health and metrics, so every timestamp harmonylite
// writes or reports comes from the same clock.
#pragma once
#include <chrono>
#include <cstdint>

namespace harmony {

inline int64_t wall_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace harmony
