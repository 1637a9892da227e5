// File helpers of the snapshot stores (directory store and JetStream object store): a file
// descriptor that closes itself, complete writes, fsync of a directory, a hashing copy, atomic
// replacement of a small text file, the private-directory check, and the text forms ADR-20 uses
// (hex digests, RFC 3339 times). Internal to replicator/*snapshot_store*.cpp and
// nats_object_store.cpp. Files are created new (O_EXCL, never through a symlink) and 0600.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <string>
#include <utility>

#include "replicator/snapshot/object_store.hpp"
#include "shared/digest.hpp"

namespace harmony {

// A POSIX file descriptor that closes itself.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool ok() const { return fd_ >= 0; }
  // Closes now and reports failure (a delayed write error shows up here).
  bool close() {
    int fd = fd_;
    fd_ = -1;
    return fd < 0 || ::close(fd) == 0;
  }

 private:
  int fd_;
};

// Writes all of `data` to `fd`, retrying short writes; throws Error naming `path`.
void write_all(int fd, const char* data, size_t size, const std::string& path);
// fsync of a directory, so a rename inside it survives a crash. Best effort.
void fsync_dir(const std::string& dir);
// Copies src to dst while hashing; returns size and SHA-256. dst must not exist: it is created
// with O_EXCL | O_NOFOLLOW, mode 0600, and fsynced. src is not opened through a symlink.
std::pair<uint64_t, Sha256Digest> copy_hashed(const std::string& src, const std::string& dst,
                                              TransferProgress& progress);
// Creates `dir` (0700) when missing, then check_private_dir.
void ensure_private_dir(const std::string& dir, const std::string& what);
// Throws Error naming `dir` unless it is a directory owned by this process's user and not
// writable by group or others: whoever can write there can replace what we read back.
void check_private_dir(const std::string& dir, const std::string& what);
std::string hex_of(const Sha256Digest& d);
// "2024-01-02T03:04:05.678Z" for Unix milliseconds.
std::string rfc3339_utc(int64_t ms);

}  // namespace harmony
