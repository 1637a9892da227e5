// A worker thread for tests of the publisher and consumer loops: runs a body with its own stop
// flag, and on destruction sets the flag and joins, so no test leaves a loop running.
#pragma once
#include <atomic>
#include <thread>

namespace harmony::test {

class Runner {
 public:
  template <typename F>
  explicit Runner(F body) : thread_([this, body]() mutable { body(stop_); }) {}
  ~Runner() {
    stop_ = true;
    thread_.join();
  }
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace harmony::test
