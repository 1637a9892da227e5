// The remote snapshot stores of HarmonyLite's configuration, all over libcurl
// (curl_transfer.hpp): S3 (s3_store.cpp), WebDAV (webdav_store.cpp) and SFTP (sftp_store.cpp).
// Each is an ObjectBackend (put/get/remove of named objects in one place); RemoteSnapshotStore
// (remote_stores.cpp) gives all three the atomicity of the directory store:
//   1. the data goes to a new object snapshot-<nuid>.db,
//   2. the metadata object snapshot.json ({"file": name, "meta": SnapshotMeta}) is replaced,
//      so that a reader sees the old or the new snapshot, never part of one,
//   3. the previous data object is removed.
// A data object whose upload failed (disk full, the server gone mid-transfer) is removed at once,
// or, when the server cannot be reached then, at the start of this store's next put. A crash
// between 1 and 2 leaves an unreferenced data object (removed by nothing; harmless).
#pragma once
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replicator/snapshot/curl_transfer.hpp"
#include "replicator/snapshot/object_store.hpp"

namespace harmony {

class ObjectBackend {
 public:
  virtual ~ObjectBackend() = default;
  // "S3 bucket b at http://host:9000 (prefix p)": for messages, never with credentials.
  virtual std::string describe() const = 0;
  // Makes sure objects can be written (S3: the bucket; WebDAV: the directory). Throws Error.
  virtual void prepare() {}
  // Streams `name` into `sink`. Returns false when the object (or its bucket/directory) does
  // not exist; throws Error for other failures.
  virtual bool download(const std::string& name, DownloadSink& sink) = 0;
  // Uploads `size` bytes of `path` as the new object `name` (which nobody reads yet).
  virtual void upload(const std::string& name, const std::string& path, uint64_t size,
                      TransferProgress& progress) = 0;
  // Replaces `name` with `text` so a reader sees the old or the new content, never part.
  virtual void replace_small(const std::string& name, const std::string& text) = 0;
  // Best effort: a failure is logged, not thrown (old data is only wasted space). Returns false
  // when the server could not be reached (worth trying again later), true when the object is
  // gone or the server refused (trying again would not help).
  virtual bool remove(const std::string& name) = 0;
};

class RemoteSnapshotStore : public SnapshotStore {
 public:
  explicit RemoteSnapshotStore(std::unique_ptr<ObjectBackend> backend);
  std::string describe() const override;
  std::optional<SnapshotMeta> info() override;
  void put(const std::string& file, const SnapshotMeta& meta,
           const std::function<void()>& on_tick = nullptr) override;
  SnapshotMeta get(const std::string& out_file) override;
  // The current data object's name ("" when none), for tests that corrupt it.
  std::string current_data_object();

  static constexpr const char* kMetaObject = "snapshot.json";

 private:
  // snapshot.json as {file, meta}; nullopt when there is none.
  std::optional<std::pair<std::string, SnapshotMeta>> read_current();

  std::unique_ptr<ObjectBackend> backend_;
  // Data objects of failed puts that could not be removed then (the server was away).
  std::vector<std::string> leftovers_;
};

// S3 multipart parts: objects larger than one part go up in parts of this size. 64 MiB keeps a
// retried part cheap to resend and allows 10,000 parts (S3's limit) = 625 GiB per snapshot;
// S3 wants at least 5 MiB per part but the last.
constexpr uint64_t kS3PartSize = 64ull << 20;

// Backends from the configuration; each throws Error naming the key that is wrong.
// `part_size` is for tests (multipart on small files).
std::unique_ptr<ObjectBackend> make_s3_backend(const SnapshotS3Config& config,
                                               uint64_t part_size = kS3PartSize);
std::unique_ptr<ObjectBackend> make_webdav_backend(const SnapshotWebdavConfig& config);
std::unique_ptr<ObjectBackend> make_sftp_backend(const SnapshotSftpConfig& config);

}  // namespace harmony
