// Snapshot stores: which one the configuration asks for (see object_store.hpp). The stores
// themselves: file_snapshot_store.cpp (a directory) and nats_object_store.cpp (JetStream); their
// file helpers and progress logging: store_files.cpp.
#include "replicator/snapshot/object_store.hpp"

#include <fmt/format.h>

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
  throw Error(fmt::format(
      "[snapshot] store = \"{}\" is not available in this harmonylite (only \"nats\" and "
      "\"file\")",
      store));
}

}  // namespace harmony
