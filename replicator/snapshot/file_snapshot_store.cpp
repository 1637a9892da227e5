// The directory snapshot store: <dir>/snapshot.json names the current data file
// <dir>/snapshot-<nuid>.db; a new snapshot is copied in first and named second (see
// object_store.hpp). What is in the directory is not trusted: snapshot.json may only name a
// file of the store's own pattern, and the directory must be ours and not writable by others.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "replicator/snapshot/object_store.hpp"
#include "replicator/snapshot/store_files.hpp"
#include "shared/files.hpp"

namespace harmony {

namespace {

constexpr std::string_view kDataPrefix = "snapshot-";
constexpr std::string_view kDataSuffix = ".db";
// put() names data files with a 22-character nuid; a little room for another id length.
constexpr size_t kMaxDataIdChars = 64;

// True for the names put() gives data files: snapshot-<letters and digits>.db. Anything else
// (a path, "..", another file of the directory) is not ours to read or delete.
bool is_data_file_name(std::string_view name) {
  if (name.size() <= kDataPrefix.size() + kDataSuffix.size()) return false;
  if (name.substr(0, kDataPrefix.size()) != kDataPrefix) return false;
  if (name.substr(name.size() - kDataSuffix.size()) != kDataSuffix) return false;
  std::string_view id =
      name.substr(kDataPrefix.size(), name.size() - kDataPrefix.size() - kDataSuffix.size());
  if (id.size() > kMaxDataIdChars) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  return true;
}

}  // namespace

FileSnapshotStore::FileSnapshotStore(std::string dir) : dir_(std::move(dir)) {
  if (dir_.empty()) throw Error("[snapshot.file] dir is empty");
}

std::string FileSnapshotStore::describe() const {
  return "snapshot directory " + dir_;
}

std::string FileSnapshotStore::current_data_file() {
  std::string text = read_whole_file(dir_ + "/snapshot.json").value_or("");
  if (text.empty()) return "";
  std::string name;
  try {
    name = nlohmann::json::parse(text).at("file").get<std::string>();
  } catch (const nlohmann::json::exception&) {
    return "";
  }
  if (!is_data_file_name(name))
    throw Error(fmt::format(
        "{}/snapshot.json names data file '{}', which is not a name this store writes "
        "({}<id>{} inside the directory): refusing to read or delete it (check who wrote "
        "snapshot.json)",
        dir_, name, kDataPrefix, kDataSuffix));
  return dir_ + "/" + name;
}

std::optional<SnapshotMeta> FileSnapshotStore::info() {
  std::string text = read_whole_file(dir_ + "/snapshot.json").value_or("");
  if (text.empty()) return std::nullopt;
  try {
    return SnapshotMeta::from_json(nlohmann::json::parse(text).at("meta").dump());
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}/snapshot.json is malformed: {}", dir_, e.what()));
  }
}

void FileSnapshotStore::put(const std::string& file, const SnapshotMeta& meta,
                            const std::function<void()>& on_tick) {
  ensure_private_dir(dir_, "snapshot directory");
  // Before anything is written: a snapshot.json naming a foreign file stops the put here.
  std::string previous = current_data_file();
  std::string name = std::string(kDataPrefix) + new_nuid() + std::string(kDataSuffix);
  std::string tmp = dir_ + "/." + name + ".tmp";
  // The new file goes in beside the previous one, which stays until the new one is complete.
  require_free_space(dir_, meta.size, "snapshot directory",
                     "the new snapshot is written beside the previous one, which is kept until "
                     "the new one is complete");
  TransferProgress progress("snapshot upload to " + dir_, meta.size, on_tick);
  try {
    auto [size, digest] = copy_hashed(file, tmp, progress);
    if (size != meta.size || hex_of(digest) != meta.sha256)
      throw Error("the snapshot file changed while it was being stored");
    if (std::rename(tmp.c_str(), (dir_ + "/" + name).c_str()) != 0)
      throw Error(fmt::format("cannot rename {}: {}", tmp, std::strerror(errno)));
  } catch (...) {
    std::remove(tmp.c_str());
    throw;
  }
  nlohmann::json j;
  j["file"] = name;
  j["meta"] = nlohmann::json::parse(meta.to_json());
  try {
    write_file_atomically(dir_ + "/snapshot.json", j.dump(2));
  } catch (...) {
    std::remove((dir_ + "/" + name).c_str());
    throw;
  }
  fsync_dir(dir_);
  progress.finish();
  if (!previous.empty() && previous != dir_ + "/" + name) std::remove(previous.c_str());
}

SnapshotMeta FileSnapshotStore::get(const std::string& out_file) {
  auto meta = info();
  if (!meta) throw Error("no snapshot in " + describe());
  check_private_dir(dir_, "snapshot directory");
  std::string data;
  try {
    data = current_data_file();
  } catch (const Error& e) {
    throw SnapshotRejected(e.what());
  }
  TransferProgress progress("snapshot download from " + dir_, meta->size);
  std::pair<uint64_t, Sha256Digest> got;
  try {
    got = copy_pipelined(data, out_file, progress);
  } catch (const LocalWriteError&) {
    std::remove(out_file.c_str());
    throw;  // our disk, not the snapshot: not a rejection
  } catch (const Error& e) {
    std::remove(out_file.c_str());
    throw SnapshotRejected(fmt::format("snapshot in {} is unreadable: {}", dir_, e.what()));
  }
  if (got.first != meta->size || hex_of(got.second) != meta->sha256) {
    std::remove(out_file.c_str());
    throw SnapshotRejected(fmt::format(
        "snapshot {} rejected: {} bytes with SHA-256 {}, but its metadata says {} bytes with "
        "SHA-256 {} (corrupted or truncated)",
        data, got.first, hex_of(got.second), meta->size, meta->sha256));
  }
  progress.finish();
  return *meta;
}

}  // namespace harmony
