// RemoteSnapshotStore: the put/get/info protocol shared by the S3, WebDAV and SFTP stores (see
// remote_stores.hpp). What the server holds is not trusted: snapshot.json may name only an
// object of our own pattern, and every download is checked against the metadata's size and
// SHA-256 before anyone uses it.
#include "replicator/snapshot/remote_stores.hpp"

#include <fcntl.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "replicator/snapshot/store_files.hpp"

namespace harmony {

namespace {

constexpr std::string_view kDataPrefix = "snapshot-";
constexpr std::string_view kDataSuffix = ".db";
// snapshot.json is a few KB (positions and schema hashes per table); 4 MiB bounds what a
// hostile server can make us hold in memory.
constexpr uint64_t kMaxMetaBytes = 4ull << 20;

bool is_data_object_name(std::string_view name) {
  if (name.size() <= kDataPrefix.size() + kDataSuffix.size() || name.size() > 100) return false;
  if (name.substr(0, kDataPrefix.size()) != kDataPrefix) return false;
  if (name.substr(name.size() - kDataSuffix.size()) != kDataSuffix) return false;
  for (char c : name.substr(kDataPrefix.size(), name.size() - kDataPrefix.size() - 3))
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  return true;
}

}  // namespace

RemoteSnapshotStore::RemoteSnapshotStore(std::unique_ptr<ObjectBackend> backend)
    : backend_(std::move(backend)) {}

std::string RemoteSnapshotStore::describe() const {
  return backend_->describe();
}

std::optional<std::pair<std::string, SnapshotMeta>> RemoteSnapshotStore::read_current() {
  DownloadSink sink;
  sink.max_bytes = kMaxMetaBytes;
  if (!backend_->download(kMetaObject, sink)) return std::nullopt;
  try {
    auto j = nlohmann::json::parse(sink.text);
    std::string file = j.at("file").get<std::string>();
    if (!is_data_object_name(file))
      throw SnapshotRejected(
          fmt::format("{} in {} names data object '{}', which is not a name this store writes "
                      "(snapshot-<id>.db): refusing to read or delete it (check who wrote it)",
                      kMetaObject, describe(), file));
    return std::make_pair(file, SnapshotMeta::from_json(j.at("meta").dump()));
  } catch (const nlohmann::json::exception& e) {
    throw SnapshotRejected(
        fmt::format("{} in {} is malformed: {}", kMetaObject, describe(), e.what()));
  }
}

std::string RemoteSnapshotStore::current_data_object() {
  auto cur = read_current();
  return cur ? cur->first : "";
}

std::optional<SnapshotMeta> RemoteSnapshotStore::info() {
  auto cur = read_current();
  if (!cur) return std::nullopt;
  return cur->second;
}

void RemoteSnapshotStore::put(const std::string& file, const SnapshotMeta& meta,
                              const std::function<void()>& on_tick) {
  backend_->prepare();
  // What an earlier failed put left while the server was away: the server answers again.
  std::erase_if(leftovers_, [&](const std::string& name) { return backend_->remove(name); });
  std::optional<std::pair<std::string, SnapshotMeta>> previous;
  try {
    previous = read_current();
  } catch (const SnapshotRejected& e) {
    // A broken snapshot.json is replaced below; what it names is not ours to delete.
    spdlog::warn("replacing the unusable snapshot metadata: {}", e.what());
  }
  std::string name = std::string(kDataPrefix) + new_nuid() + std::string(kDataSuffix);
  TransferProgress progress("snapshot upload to " + describe(), meta.size, on_tick);
  nlohmann::json j;
  j["file"] = name;
  j["meta"] = nlohmann::json::parse(meta.to_json());
  try {
    backend_->upload(name, file, meta.size, progress);
    backend_->replace_small(kMetaObject, j.dump(2));
  } catch (...) {
    // No partial object stays behind: nobody reads it, but it holds the server's space (on a
    // full disk, the space the next save needs).
    if (!backend_->remove(name)) leftovers_.push_back(name);
    throw;
  }
  progress.finish();
  if (previous && previous->first != name) backend_->remove(previous->first);
}

SnapshotMeta RemoteSnapshotStore::get(const std::string& out_file) {
  auto cur = read_current();
  if (!cur) throw Error("no snapshot in " + describe());
  const SnapshotMeta& meta = cur->second;
  Fd out(::open(out_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out.ok()) throw Error(fmt::format("cannot create {}: {}", out_file, std::strerror(errno)));
  TransferProgress progress("snapshot download from " + describe(), meta.size);
  DownloadSink sink;
  sink.fd = out.get();
  sink.path = out_file;
  sink.max_bytes = meta.size;
  sink.progress = &progress;
  bool found = false;
  try {
    found = backend_->download(cur->first, sink);
    if (found && (::fsync(out.get()) != 0 || !out.close()))
      throw Error(fmt::format("cannot write {}: {}", out_file, std::strerror(errno)));
  } catch (const SnapshotRejected&) {
    std::remove(out_file.c_str());
    throw;
  } catch (const Error& e) {
    std::remove(out_file.c_str());
    if (sink.overflow)
      throw SnapshotRejected(fmt::format(
          "snapshot {} in {} rejected: longer than the {} bytes its metadata says (corrupted or "
          "replaced)",
          cur->first, describe(), meta.size));
    // Cut off after some data arrived (and after the retries): a truncated download.
    if (sink.received > 0)
      throw SnapshotRejected(
          fmt::format("snapshot {} in {} rejected: the download stopped after {} of {} bytes: {}",
                      cur->first, describe(), sink.received, meta.size, e.what()));
    throw;
  } catch (...) {
    std::remove(out_file.c_str());
    throw;
  }
  if (!found) {
    std::remove(out_file.c_str());
    throw SnapshotRejected(fmt::format(
        "snapshot {} in {} rejected: its metadata names data object {}, which does not exist "
        "(removed or never completely uploaded)",
        cur->first, describe(), cur->first));
  }
  std::string digest = hex_of(sink.hash.finish());
  if (sink.received != meta.size || digest != meta.sha256) {
    std::remove(out_file.c_str());
    throw SnapshotRejected(fmt::format(
        "snapshot {} in {} rejected: {} bytes with SHA-256 {}, but its metadata says {} bytes "
        "with SHA-256 {} (corrupted or truncated)",
        cur->first, describe(), sink.received, digest, meta.size, meta.sha256));
  }
  progress.finish();
  return meta;
}

}  // namespace harmony
