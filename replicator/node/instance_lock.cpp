// The per-database instance lock (see instance_lock.hpp).
#include "replicator/node/instance_lock.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include <fmt/format.h>

#include "replicator/common/database.hpp"
#include "shared/error.hpp"

namespace harmony {

namespace {

// The pid the holder wrote, or "" when the file holds none (it may be between open and write).
std::string holder_pid(int fd) {
  char buf[32] = {};  // a decimal pid and a newline
  const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
  if (n <= 0) return "";
  std::string_view s(buf, static_cast<size_t>(n));
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  if (s.empty() || s.size() > 10) return "";
  for (char c : s)
    if (c < '0' || c > '9') return "";  // not ours to quote: a planted or damaged file
  return std::string(s);
}

}  // namespace

std::string instance_lock_path(const std::string& db_path) {
  // The resolved path when the database exists, so a second path to the same file (a symlink,
  // another relative spelling) finds the same lock.
  char resolved[PATH_MAX];
  if (::realpath(db_path.c_str(), resolved) != nullptr)
    return std::string(resolved) + "-harmonylite.lock";
  return db_path + "-harmonylite.lock";
}

InstanceLock::InstanceLock(const std::string& db_path) : path_(instance_lock_path(db_path)) {
  // The database's own trouble first: its messages say what to do, a lock file error would not.
  check_database_path(db_path);
  // O_NOFOLLOW: a planted symlink must not make us truncate another file; O_CLOEXEC: the
  // embedded nats-server child must not inherit (and so keep holding) the lock.
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    const int err = errno;
    throw Error(fmt::format("cannot open the lock file {} of database {}: {}", path_, db_path,
                            err == ELOOP ? "it is a symbolic link" : std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != ::geteuid()) {
    ::close(fd_);
    fd_ = -1;
    throw Error(fmt::format(
        "the lock file {} of database {} is not a regular file owned by this user (uid {}); "
        "remove it if no harmonylite runs on that database",
        path_, db_path, ::geteuid()));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    const std::string pid = holder_pid(fd_);
    ::close(fd_);
    fd_ = -1;
    if (err == EWOULDBLOCK)
      throw Error(fmt::format(
          "another harmonylite ({}) is already replicating database {} (it holds {}); one "
          "replicator per database file: stop that one first, or give this one another db_path",
          pid.empty() ? "pid unknown" : "pid " + pid, db_path, path_));
    throw Error(
        fmt::format("cannot lock {} for database {}: {}", path_, db_path, std::strerror(err)));
  }
  // Ours now: record our pid for the message a second replicator prints.
  const std::string text = fmt::format("{}\n", ::getpid());
  if (::ftruncate(fd_, 0) != 0 ||
      ::pwrite(fd_, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) {
    // The lock is held all the same; only the pid in a second replicator's message is missing.
  }
}

InstanceLock::~InstanceLock() {
  // Closing the only descriptor releases the flock; the file stays (see instance_lock.hpp).
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace harmony
