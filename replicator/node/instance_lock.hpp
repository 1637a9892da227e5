// One replicator per database file (issue 15 case 7): an exclusive flock on
// `<db>-harmonylite.lock`, held for the life of the process. Two replicators on one file would
// each run a publisher on the same change logs and split the application's writes between two
// streams. The kernel drops a flock when its process exits or dies, so no stale lock outlives a
// crash; the file itself stays (removing it would let a third process lock a new inode while a
// second still holds the old one).
#pragma once
#include <string>

namespace harmony {

class InstanceLock {
 public:
  // Takes the lock for `db_path` and writes our pid into the file. Throws harmony::Error naming
  // the database, the lock file and the holder's pid (as written in the file) when another
  // process holds it, or naming what went wrong when the file cannot be opened.
  explicit InstanceLock(const std::string& db_path);
  ~InstanceLock();
  InstanceLock(const InstanceLock&) = delete;
  InstanceLock& operator=(const InstanceLock&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
  int fd_ = -1;
};

// The lock file of a database: next to it, so every process that opens the file by any path
// to the same directory finds the same lock.
std::string instance_lock_path(const std::string& db_path);

}  // namespace harmony
