// Snapshot stores: which one the configuration asks for (see object_store.hpp). The stores
// themselves: file_snapshot_store.cpp (a directory), nats_object_store.cpp (JetStream) and the
// remote stores over libcurl (remote_stores.hpp: S3, WebDAV, SFTP); their file helpers and
// progress logging: store_files.cpp.
#include "replicator/snapshot/object_store.hpp"

#include <fmt/format.h>

#include "replicator/snapshot/remote_stores.hpp"

namespace harmony {

std::string snapshot_bucket(const Config& config) {
  return config.snapshot.nats.bucket.empty() ? config.nats.stream_prefix + "-snapshot-store"
                                             : config.snapshot.nats.bucket;
}

std::unique_ptr<SnapshotStore> make_snapshot_store(const Config& config, NatsConnection* conn) {
  const auto& store = config.snapshot.store;
  if (store == "file") return std::make_unique<FileSnapshotStore>(config.snapshot.file.dir);
  if (store == "nats") {
    if (!conn) throw Error("the NATS snapshot store needs a NATS connection");
    return std::make_unique<NatsObjectStore>(*conn, snapshot_bucket(config),
                                             config.snapshot.nats.replicas);
  }
  const auto& snap = config.snapshot;
  if (store == "s3") return std::make_unique<RemoteSnapshotStore>(make_s3_backend(snap.s3));
  if (store == "webdav")
    return std::make_unique<RemoteSnapshotStore>(make_webdav_backend(snap.webdav));
  if (store == "sftp") return std::make_unique<RemoteSnapshotStore>(make_sftp_backend(snap.sftp));
  throw Error(fmt::format(
      "[snapshot] store = \"{}\" is not a store this harmonylite has (nats, file, s3, webdav, "
      "sftp)",
      store));
}

}  // namespace harmony
