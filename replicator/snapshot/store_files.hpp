// File helpers of the snapshot stores (directory store and JetStream object store): a file
// descriptor that closes itself, complete writes, fsync of a directory, a hashing copy, atomic
// replacement of a small text file, and the text forms ADR-20 uses (hex digests, RFC 3339
// times). Internal to replicator/*snapshot_store*.cpp and nats_object_store.cpp.
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
// Copies src to dst (created/truncated, fsynced) while hashing; returns size and SHA-256.
std::pair<uint64_t, Sha256Digest> copy_hashed(const std::string& src, const std::string& dst,
                                              TransferProgress& progress);
// Replaces `path` with `text` through a fsynced temporary file and a rename.
void write_text_atomically(const std::string& path, const std::string& text);
std::string hex_of(const Sha256Digest& d);
// "2024-01-02T03:04:05.678Z" for Unix milliseconds.
std::string rfc3339_utc(int64_t ms);

}  // namespace harmony
