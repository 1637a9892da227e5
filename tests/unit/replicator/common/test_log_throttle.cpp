// LogThrottle (replicator/common/log_throttle.hpp): a recurring condition gives one log line per
// interval with the count since the previous line, never one line per occurrence.
#include <catch2/catch.hpp>

#include <atomic>
#include <thread>
#include <vector>

#include "replicator/common/log_throttle.hpp"

using harmony::LogThrottle;

TEST_CASE("a counter growing on every fold is logged once per interval with what it missed",
          "[log]") {
  LogThrottle throttle(30'000);
  // A node with its clock ahead: 1 occurrence per 100 ms fold for 2 minutes.
  int lines = 0;
  int64_t reported = 0;
  for (int64_t fold = 1; fold <= 1200; ++fold) {
    const auto due = throttle.due(fold, 1'000'000 + fold * 100);
    if (due.count > 0) {
      ++lines;
      reported += due.count;
    }
  }
  CHECK(lines == 4);  // the first at once (0.1 s), then at 30.1, 60.1 and 90.1 s
  CHECK(reported <= 1200);
  CHECK(reported >= 1200 - 300);  // at most one interval's worth not yet reported
  // Nothing new: no line, however long it has been.
  CHECK(throttle.due(reported, 10'000'000).count == 0);
}

TEST_CASE("the first occurrence is logged at once, with no interval", "[log]") {
  LogThrottle throttle(30'000);
  const auto due = throttle.due(3, 5'000);
  CHECK(due.count == 3);
  CHECK(due.since_ms == 0);
  CHECK(throttle.due(4, 5'001).count == 0);
  const auto later = throttle.due(9, 35'000);
  CHECK(later.count == 6);
  CHECK(later.since_ms == 30'000);
}

TEST_CASE("threads reporting the same counter get each line once", "[log]") {
  LogThrottle throttle(30'000);
  std::atomic<int> lines{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (throttle.due(7, 1'000).count > 0) ++lines;
    });
  for (auto& t : threads) t.join();
  CHECK(lines == 1);
}
