// File helpers of the snapshot stores (directory store and JetStream object store): a file
// descriptor that closes itself, complete writes, fsync of a directory, a hashing copy, atomic
// replacement of a small text file, the private-directory check, and the text forms ADR-20 uses
// (hex digests, RFC 3339 times). Internal to replicator/*snapshot_store*.cpp and
// nats_object_store.cpp. Files are created new (O_EXCL, never through a symlink) and 0600.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <memory>
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

// Writing a local file failed (disk full, I/O error): the fault is here, not in the snapshot or
// the store it came from.
struct LocalWriteError : Error {
  using Error::Error;
};

// Throws Error naming `dir` unless its filesystem has `needed` bytes free for this process's
// user: "not enough free space in <what> <dir>: X MB free, Y MB needed (<why>)". Checked before
// a large write so a full disk is reported up front, with the figures, instead of half-way
// through as ENOSPC.
void require_free_space(const std::string& dir, uint64_t needed, const std::string& what,
                        const std::string& why);

// Writes all of `data` to `fd`, retrying short writes; throws LocalWriteError naming `path`.
void write_all(int fd, const char* data, size_t size, const std::string& path);
// fsync of a directory, so a rename inside it survives a crash. Best effort.
void fsync_dir(const std::string& dir);
// Copies src to dst while hashing; returns size and SHA-256. dst must not exist: it is created
// with O_EXCL | O_NOFOLLOW, mode 0600, and fsynced. src is not opened through a symlink. A
// failure to create or write dst throws LocalWriteError, one to read src Error.
std::pair<uint64_t, Sha256Digest> copy_hashed(const std::string& src, const std::string& dst,
                                              TransferProgress& progress);
// A download written to a new local file by a thread of its own that hashes while it writes, so
// receiving the next chunk overlaps hashing and writing the previous ones. Queued bytes are
// bounded (kQueueBytes): write() waits while the queue is full. The file is not fsynced: a
// download is scratch, verified and then copied into the database (whose commit is durable) and
// removed; flushing it to the disk first would only add a second write of the whole snapshot.
class PipelinedFileWriter {
 public:
  // Creates `path` (O_EXCL | O_NOFOLLOW, 0600; an existing file is an error). Throws
  // LocalWriteError.
  explicit PipelinedFileWriter(std::string path);
  ~PipelinedFileWriter();  // stops the thread; the file stays (the caller removes it)
  PipelinedFileWriter(const PipelinedFileWriter&) = delete;
  PipelinedFileWriter& operator=(const PipelinedFileWriter&) = delete;
  // Queues a copy of `data`. Throws LocalWriteError when the thread failed to write.
  void write(const char* data, size_t size);
  // Waits for everything queued, closes the file; size and SHA-256 of all that was written.
  std::pair<uint64_t, Sha256Digest> finish();

  // 32 MiB: a few hundred milliseconds of a disk stalling at 100 MB/s before the receiver
  // waits, small beside the 128 MiB nats.c may buffer for the receiver itself.
  static constexpr size_t kQueueBytes = 32 * 1024 * 1024;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Copies src to the new file dst through a PipelinedFileWriter (reading here, hashing and
// writing on the writer's thread; dst not fsynced: for downloads). Read failures throw Error,
// write failures LocalWriteError.
std::pair<uint64_t, Sha256Digest> copy_pipelined(const std::string& src, const std::string& dst,
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
