// File helpers of the snapshot stores, progress logging and ADR-20 identifiers (see
// store_files.hpp and object_store.hpp).
#include "replicator/snapshot/store_files.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/snapshot/transfer_status.hpp"

namespace harmony {

namespace {

using namespace std::chrono_literals;

constexpr auto kProgressEvery = 2s;
constexpr auto kTickEvery = 1s;

double mb(uint64_t bytes) {
  return static_cast<double>(bytes) / (1024.0 * 1024.0);
}

}  // namespace

void write_all(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw LocalWriteError(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void require_free_space(const std::string& dir, uint64_t needed, const std::string& what,
                        const std::string& why) {
  struct statvfs st {};
  if (::statvfs(dir.c_str(), &st) != 0) return;  // unknown: the write itself will tell
  const uint64_t free_bytes = static_cast<uint64_t>(st.f_bavail) * st.f_frsize;
  if (free_bytes >= needed) return;
  throw LocalWriteError(
      fmt::format("not enough free space in {} {}: {:.1f} MB free, {:.1f} MB needed ({}); free "
                  "some space there and try again",
                  what, dir, mb(free_bytes), mb(needed), why));
}

void fsync_dir(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY));
  if (d.ok()) ::fsync(d.get());
}

namespace {
// Opens `src` for reading without following a symlink. Before the destination is created, so
// a source that cannot be read leaves nothing behind.
int open_source(const std::string& src) {
  const int fd = ::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw Error(fmt::format("cannot read {}: {}", src, std::strerror(errno)));
  return fd;
}

// Reads `in` (the file `src`) in 1 MiB chunks, handing each to `chunk`.
template <typename Chunk>
void read_chunks(Fd& in, const std::string& src, TransferProgress& progress, Chunk&& chunk) {
  std::vector<char> buf(1 << 20);
  while (true) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("cannot read {}: {}", src, std::strerror(errno)));
    }
    if (n == 0) break;
    chunk(buf.data(), static_cast<size_t>(n));
    progress.add(static_cast<uint64_t>(n));
  }
}
}  // namespace

// Copies src to dst (created/truncated, fsynced) while hashing; returns size and hex SHA-256.
std::pair<uint64_t, Sha256Digest> copy_hashed(const std::string& src, const std::string& dst,
                                              TransferProgress& progress) {
  Fd in(open_source(src));
  // A new file only: an existing one (or a symlink planted at the name) is not written through.
  Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.ok())
    throw LocalWriteError(fmt::format("cannot create {}: {}", dst, std::strerror(errno)));
  Sha256 h;
  uint64_t size = 0;
  read_chunks(in, src, progress, [&](const char* data, size_t n) {
    h.update(data, n);
    write_all(out.get(), data, n, dst);
    size += n;
  });
  if (::fsync(out.get()) != 0 || !out.close())
    throw LocalWriteError(fmt::format("cannot write {}: {}", dst, std::strerror(errno)));
  return {size, h.finish()};
}

struct PipelinedFileWriter::State {
  std::string path;
  std::unique_ptr<Fd> out;
  std::mutex mu;
  std::condition_variable changed;
  std::deque<std::vector<char>> queue;
  size_t queued_bytes = 0;
  bool closing = false;
  std::string error;  // the writer thread's failure, reported by write() and finish()
  uint64_t size = 0;
  Sha256 hash;
  std::thread thread;

  void run() {
    while (true) {
      std::vector<char> chunk;
      {
        std::unique_lock lk(mu);
        changed.wait(lk, [&] { return !queue.empty() || closing; });
        if (queue.empty()) return;
        chunk = std::move(queue.front());
        queue.pop_front();
      }
      try {
        if (error.empty()) {
          hash.update(chunk.data(), chunk.size());
          write_all(out->get(), chunk.data(), chunk.size(), path);
          size += chunk.size();
        }
      } catch (const Error& e) {
        std::lock_guard lk(mu);
        error = e.what();
      }
      {
        std::lock_guard lk(mu);
        queued_bytes -= chunk.size();
      }
      changed.notify_all();
    }
  }
};

PipelinedFileWriter::PipelinedFileWriter(std::string path) : state_(std::make_unique<State>()) {
  state_->path = std::move(path);
  state_->out = std::make_unique<Fd>(
      ::open(state_->path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!state_->out->ok())
    throw LocalWriteError(fmt::format("cannot create {}: {}", state_->path, std::strerror(errno)));
  state_->thread = std::thread([s = state_.get()] { s->run(); });
}

PipelinedFileWriter::~PipelinedFileWriter() {
  {
    std::lock_guard lk(state_->mu);
    state_->closing = true;
    state_->queue.clear();
  }
  state_->changed.notify_all();
  if (state_->thread.joinable()) state_->thread.join();
}

void PipelinedFileWriter::write(const char* data, size_t size) {
  if (size == 0) return;
  std::unique_lock lk(state_->mu);
  // One chunk larger than the bound still goes through (alone), so nothing waits forever.
  state_->changed.wait(lk, [&] {
    return !state_->error.empty() || state_->queued_bytes == 0 ||
           state_->queued_bytes + size <= kQueueBytes;
  });
  if (!state_->error.empty()) throw LocalWriteError(state_->error);
  state_->queue.emplace_back(data, data + size);
  state_->queued_bytes += size;
  lk.unlock();
  state_->changed.notify_all();
}

std::pair<uint64_t, Sha256Digest> PipelinedFileWriter::finish() {
  {
    std::lock_guard lk(state_->mu);
    state_->closing = true;
  }
  state_->changed.notify_all();
  state_->thread.join();
  if (!state_->error.empty()) throw LocalWriteError(state_->error);
  if (!state_->out->close())
    throw LocalWriteError(fmt::format("cannot write {}: {}", state_->path, std::strerror(errno)));
  return {state_->size, state_->hash.finish()};
}

std::pair<uint64_t, Sha256Digest> copy_pipelined(const std::string& src, const std::string& dst,
                                                 TransferProgress& progress) {
  Fd in(open_source(src));
  PipelinedFileWriter out(dst);
  read_chunks(in, src, progress, [&](const char* data, size_t n) { out.write(data, n); });
  return out.finish();
}

void ensure_private_dir(const std::string& dir, const std::string& what) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 && errno == ENOENT) {
    std::error_code ec;
    std::filesystem::path parent = std::filesystem::path(dir).parent_path();
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
      throw Error(fmt::format("cannot create {} {}: {}", what, dir, std::strerror(errno)));
  }
  check_private_dir(dir, what);
}

void check_private_dir(const std::string& dir, const std::string& what) {
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    throw Error(fmt::format("cannot use {} {}: {}", what, dir, std::strerror(errno)));
  if (!S_ISDIR(st.st_mode)) throw Error(fmt::format("{} {} is not a directory", what, dir));
  if (st.st_uid != ::geteuid())
    throw Error(fmt::format(
        "{} {} is owned by uid {}, not by this process's uid {}: refusing to use it (another "
        "user could replace the snapshots in it)",
        what, dir, st.st_uid, ::geteuid()));
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    throw Error(fmt::format(
        "{} {} is writable by group or others (mode {:04o}): refusing to use it (they could "
        "replace the snapshots in it); run chmod go-w {}",
        what, dir, st.st_mode & 07777, dir));
}

std::string hex_of(const Sha256Digest& d) {
  return to_hex(d.data(), d.size());
}

std::string rfc3339_utc(int64_t ms) {
  std::time_t secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
  return fmt::format("{}.{:03d}Z", buf, static_cast<int>(ms % 1000));
}

std::string base64url(const void* data, size_t size) {
  std::string out(4 * ((size + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          static_cast<const unsigned char*>(data), static_cast<int>(size));
  out.resize(static_cast<size_t>(n));
  for (char& c : out) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return out;
}

std::string new_nuid() {
  static constexpr char kAlphabet[] =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  unsigned char raw[22];
  if (RAND_bytes(raw, sizeof raw) != 1) throw Error("no random bytes for a nuid");
  std::string out;
  for (unsigned char b : raw) out += kAlphabet[b % 62];
  return out;
}

TransferProgress::TransferProgress(std::string what, uint64_t total_bytes,
                                   std::function<void()> on_tick)
    : what_(std::move(what)),
      total_(total_bytes),
      on_tick_(std::move(on_tick)),
      started_(std::chrono::steady_clock::now()),
      last_log_(started_) {
  snapshot_step_begin(what_, total_);
}

TransferProgress::~TransferProgress() {
  snapshot_step_end();
}

std::string transfer_progress_text(const std::string& what, uint64_t done_bytes,
                                   uint64_t total_bytes, double elapsed_seconds) {
  const double pct =
      total_bytes ? 100.0 * static_cast<double>(done_bytes) / static_cast<double>(total_bytes)
                  : 100.0;
  const double rate = elapsed_seconds > 0 ? mb(done_bytes) / elapsed_seconds : 0.0;
  std::string eta;
  if (total_bytes > done_bytes && rate > 0)
    eta = fmt::format(", ETA {:.0f} s", mb(total_bytes - done_bytes) / rate);
  return fmt::format("{}: {:.0f}% ({:.1f} of {:.1f} MB, {:.0f} MB/s{})", what, pct, mb(done_bytes),
                     mb(total_bytes), rate, eta);
}

void TransferProgress::add(uint64_t bytes) {
  done_ += bytes;
  snapshot_step_progress(done_);
  if (const double limit = snapshot_test_rate_limit(); limit > 0)
    std::this_thread::sleep_until(started_ + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                                 std::chrono::duration<double>(mb(done_) / limit)));
  auto now = std::chrono::steady_clock::now();
  if (now - last_log_ >= kProgressEvery) {
    last_log_ = now;
    spdlog::info(transfer_progress_text(what_, done_, total_,
                                        std::chrono::duration<double>(now - started_).count()));
  }
  if (on_tick_ && now - last_tick_ >= kTickEvery) {
    last_tick_ = now;
    on_tick_();
  }
}

double TransferProgress::mb_per_s() const {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  return secs > 0 ? mb(done_) / secs : 0.0;
}

void TransferProgress::finish() {
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  spdlog::info("{}: {:.1f} MB in {:.2f} s ({:.0f} MB/s)", what_, mb(done_), secs, mb_per_s());
}

}  // namespace harmony
