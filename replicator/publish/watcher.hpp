// Wakes the publisher when the database changes: inotify on the database's directory,
// filtered to the database file and its -wal. Without inotify (or on any error) it degrades to
// the polling interval and says so in the log.
#pragma once
#include <chrono>
#include <string>

namespace harmony {

class ChangeWatcher {
 public:
  explicit ChangeWatcher(const std::string& db_path);
  ~ChangeWatcher();
  ChangeWatcher(const ChangeWatcher&) = delete;
  ChangeWatcher& operator=(const ChangeWatcher&) = delete;

  // Blocks until the database or its WAL was written, `timeout` passed, or wake() was called.
  // Returns true when a file event (or wake) arrived, false on timeout.
  bool wait(std::chrono::milliseconds timeout);
  void wake();  // thread-safe
  bool using_inotify() const { return inotify_fd_ >= 0; }

 private:
  std::string db_name_, wal_name_;
  int inotify_fd_ = -1;
  int wake_fd_ = -1;
};

}  // namespace harmony
