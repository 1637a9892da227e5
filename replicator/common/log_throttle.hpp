// A log line about a growing counter, at most once per interval: the line carries what happened
// since the previous one. For conditions that recur on every fold or batch while they last (a
// clock running ahead), where one line per occurrence would flood the log. Thread-safe: when
// several threads report the same counter, exactly one of them gets each line.
#pragma once
#include <cstdint>
#include <mutex>

namespace harmony {

class LogThrottle {
 public:
  explicit LogThrottle(int64_t interval_ms) : interval_ms_(interval_ms) {}

  struct Due {
    int64_t count = 0;     // occurrences since the previous line (0: no line now)
    int64_t since_ms = 0;  // time since the previous line (0 for the first line)
  };
  // `total` is the counter's current value, `now_ms` a steady clock. The first occurrence is
  // logged at once; later ones once `interval_ms` has passed since the previous line.
  Due due(int64_t total, int64_t now_ms) {
    std::lock_guard lock(mutex_);  // a log path, once per fold at most: a mutex costs nothing
    if (total <= logged_total_) return {};
    const bool first = logged_total_ == 0;
    if (!first && now_ms - logged_at_ms_ < interval_ms_) return {};
    const Due due{total - logged_total_, first ? 0 : now_ms - logged_at_ms_};
    logged_total_ = total;
    logged_at_ms_ = now_ms;
    return due;
  }

 private:
  const int64_t interval_ms_;
  std::mutex mutex_;
  int64_t logged_total_ = 0, logged_at_ms_ = 0;
};

}  // namespace harmony
