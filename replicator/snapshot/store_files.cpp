// File helpers of the snapshot stores, progress logging and ADR-20 identifiers (see
// store_files.hpp and object_store.hpp).
#include "replicator/snapshot/store_files.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

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
      throw Error(fmt::format("cannot write {}: {}", path, std::strerror(errno)));
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
}

void fsync_dir(const std::string& dir) {
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY));
  if (d.ok()) ::fsync(d.get());
}

// Copies src to dst (created/truncated, fsynced) while hashing; returns size and hex SHA-256.
std::pair<uint64_t, Sha256Digest> copy_hashed(const std::string& src, const std::string& dst,
                                              TransferProgress& progress) {
  Fd in(::open(src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in.ok()) throw Error(fmt::format("cannot read {}: {}", src, std::strerror(errno)));
  // A new file only: an existing one (or a symlink planted at the name) is not written through.
  Fd out(::open(dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.ok()) throw Error(fmt::format("cannot create {}: {}", dst, std::strerror(errno)));
  Sha256 h;
  std::vector<char> buf(1 << 20);
  uint64_t size = 0;
  while (true) {
    ssize_t n = ::read(in.get(), buf.data(), buf.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(fmt::format("cannot read {}: {}", src, std::strerror(errno)));
    }
    if (n == 0) break;
    h.update(buf.data(), static_cast<size_t>(n));
    write_all(out.get(), buf.data(), static_cast<size_t>(n), dst);
    size += static_cast<uint64_t>(n);
    progress.add(static_cast<uint64_t>(n));
  }
  if (::fsync(out.get()) != 0 || !out.close())
    throw Error(fmt::format("cannot write {}: {}", dst, std::strerror(errno)));
  return {size, h.finish()};
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
      last_log_(started_) {}

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
