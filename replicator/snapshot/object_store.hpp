// Where snapshots are kept, behind one small interface (SnapshotStore: put/get/info):
// - NatsObjectStore: a JetStream object store built on nats.c (which has no object-store API),
//   in the public layout of NATS ADR-20 so the `nats` CLI can read it: stream OBJ_<bucket>,
//   chunks on $O.<bucket>.C.<nuid>, the object's info (JSON) on $O.<bucket>.M.<base64url(name)>
//   with Nats-Rollup: sub. An upload is atomic: new chunks under a new nuid, then the info
//   message, then the previous nuid's chunks are purged; the previous snapshot stays readable
//   until the new one is complete.
// - FileSnapshotStore: a directory (shared filesystem, tests): data file under a new name, then
//   the metadata file replaced by rename, then the old data file removed.
// - RemoteSnapshotStore (remote_stores.hpp): S3, WebDAV and SFTP over libcurl, in the same
//   order: data object under a new name, then the metadata object replaced, then old data removed.
// Downloads are verified (size, SHA-256) and rejected whole when they do not match.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "replicator/config/config.hpp"
#include "replicator/snapshot/snapshot.hpp"

namespace harmony {

class NatsConnection;

// One progress line of a transfer: "<what>: 40% (400.0 of 1000.0 MB, 80 MB/s, ETA 8 s)". The
// ETA assumes the rate so far holds; none is given before the first byte or without a total.
std::string transfer_progress_text(const std::string& what, uint64_t done_bytes,
                                   uint64_t total_bytes, double elapsed_seconds);

// Logs a long transfer's progress (percent, MB/s, ETA) every few seconds and its total at the end,
// and shows it on the process's transfer board (transfer_status.hpp, read by /health) while it
// lives.
class TransferProgress {
 public:
  TransferProgress(std::string what, uint64_t total_bytes, std::function<void()> on_tick = nullptr);
  ~TransferProgress();
  TransferProgress(const TransferProgress&) = delete;
  TransferProgress& operator=(const TransferProgress&) = delete;
  void add(uint64_t bytes);
  void finish();  // logs "<what>: N MB in s (MB/s)"
  double mb_per_s() const;

 private:
  std::string what_;
  uint64_t total_ = 0, done_ = 0;
  std::function<void()> on_tick_;
  std::chrono::steady_clock::time_point started_, last_log_, last_tick_{};
};

// A download that did not match what the store's metadata promises (digest, size, chunks).
struct SnapshotRejected : Error {
  using Error::Error;
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  // "NATS object store <bucket>" / "directory <dir>": for messages.
  virtual std::string describe() const = 0;
  // The newest complete snapshot's metadata, or nullopt when there is none.
  virtual std::optional<SnapshotMeta> info() = 0;
  // Stores `file` (whose digest and size are in `meta`) as the newest snapshot. `on_tick` is
  // called now and then during the upload (e.g. to refresh a lease).
  virtual void put(const std::string& file, const SnapshotMeta& meta,
                   const std::function<void()>& on_tick = nullptr) = 0;
  // Downloads the newest snapshot into `out_file` and verifies it. Throws SnapshotRejected on a
  // digest/size mismatch or a truncated download (out_file is removed), Error on other failures.
  virtual SnapshotMeta get(const std::string& out_file) = 0;
};

class FileSnapshotStore : public SnapshotStore {
 public:
  explicit FileSnapshotStore(std::string dir);
  std::string describe() const override;
  std::optional<SnapshotMeta> info() override;
  void put(const std::string& file, const SnapshotMeta& meta,
           const std::function<void()>& on_tick = nullptr) override;
  SnapshotMeta get(const std::string& out_file) override;
  // Path of the current data file (for tests that corrupt it), "" when none.
  std::string current_data_file();

 private:
  std::string dir_;
};

class NatsObjectStore : public SnapshotStore {
 public:
  // Creates the bucket's stream when missing (file storage, `replicas` copies). Throws Error
  // when it cannot be created or read.
  NatsObjectStore(NatsConnection& conn, std::string bucket, int replicas,
                  std::string object = kSnapshotObjectName, size_t chunk_size = kDefaultChunkSize);
  ~NatsObjectStore() override;
  std::string describe() const override;
  std::optional<SnapshotMeta> info() override;
  void put(const std::string& file, const SnapshotMeta& meta,
           const std::function<void()>& on_tick = nullptr) override;
  SnapshotMeta get(const std::string& out_file) override;

  static constexpr size_t kDefaultChunkSize = 256 * 1024;
  const std::string& stream() const { return stream_; }
  std::string meta_subject() const;
  std::string chunk_subject(const std::string& nuid) const;
  // The object's current ADR-20 info (nuid, chunks, ...) as JSON text, or "" when none.
  std::string raw_info();

 private:
  struct ObjectInfo;
  std::optional<ObjectInfo> read_info();
  void purge_chunks(const std::string& nuid);
  int64_t stored_chunks(const std::string& nuid);  // messages on the chunk subject, -1 unknown
  // One download of the object `info` describes (a step of get()).
  SnapshotMeta download(const ObjectInfo& info, const std::string& out_file);

  NatsConnection& conn_;
  std::string bucket_, stream_, object_;
  size_t chunk_size_;
};

// The bucket name used for snapshots: [snapshot.nats] bucket or "<stream_prefix>-snapshot-store".
std::string snapshot_bucket(const Config& config);

// The configured store. `conn` is needed for store = "nats" (nullptr → Error); s3, webdav and
// sftp (remote_stores.hpp) need none. Throws Error naming the key that is wrong.
std::unique_ptr<SnapshotStore> make_snapshot_store(const Config& config, NatsConnection* conn);

// base64url with padding (Go's base64.URLEncoding), as ADR-20 uses for names and digests.
std::string base64url(const void* data, size_t size);
// A random 22-character identifier like a NATS nuid.
std::string new_nuid();

}  // namespace harmony
