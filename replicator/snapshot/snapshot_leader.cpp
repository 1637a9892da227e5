// KV lease for the periodic snapshots (see snapshot_leader.hpp). The value is the holder's node
// id; "" marks a lease given up. Every decision is a compare-and-set on the server.
#include "replicator/snapshot/snapshot_leader.hpp"

#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "shared/error.hpp"

namespace harmony {

SnapshotLeader::SnapshotLeader(NatsConnection& conn, std::string bucket, uint64_t node,
                               int64_t ttl_ms, int replicas)
    : bucket_(std::move(bucket)),
      node_(std::to_string(node)),
      ttl_(std::chrono::milliseconds(std::max<int64_t>(ttl_ms, 1000))) {
  std::string last_error;
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (attempt) std::this_thread::sleep_for(std::chrono::seconds(1));
    kvStore* raw = nullptr;
    natsStatus s = js_KeyValue(&raw, conn.js(), bucket_.c_str());
    if (s == NATS_OK) {
      kv_.reset(raw);
      return;
    }
    kvConfig cfg;
    kvConfig_Init(&cfg);
    cfg.Bucket = bucket_.c_str();
    cfg.History = 1;
    // nats.c copies TTL into the stream's MaxAge: nanoseconds. The server expires a lease that
    // its holder stopped refreshing.
    cfg.TTL = static_cast<int64_t>(ttl_.count()) * 1000000;
    cfg.Replicas = replicas;
    cfg.StorageType = js_FileStorage;
    raw = nullptr;
    s = js_CreateKeyValue(&raw, conn.js(), &cfg);
    if (s == NATS_OK) {
      kv_.reset(raw);
      spdlog::info("created snapshot lease bucket {} (TTL {} ms, replicas {})", bucket_,
                   ttl_.count(), replicas);
      return;
    }
    last_error = nats_error_text(s);
  }
  throw Error(
      fmt::format("cannot create or read the snapshot lease bucket {}: {}", bucket_, last_error));
}

SnapshotLeader::~SnapshotLeader() = default;

bool SnapshotLeader::tick() {
  auto now = std::chrono::steady_clock::now();
  if (leader_) {
    if (now - refreshed_ < ttl_ / 3) return true;
    uint64_t rev = 0;
    natsStatus s = kvStore_Update(&rev, kv_.get(), kKey, node_.data(),
                                  static_cast<int>(node_.size()), revision_);
    if (s == NATS_OK) {
      revision_ = rev;
      refreshed_ = now;
      return true;
    }
    leader_ = false;
    spdlog::warn("lost the snapshot lease ({}); another node may take the snapshots now",
                 nats_error_text(s));
  }
  uint64_t rev = 0;
  natsStatus s =
      kvStore_Create(&rev, kv_.get(), kKey, node_.data(), static_cast<int>(node_.size()));
  if (s != NATS_OK) {
    // Taken, or given up ("") or still ours from before a restart: the latter two can be
    // taken over with a compare-and-set on the revision we read.
    kvEntry* raw = nullptr;
    if (kvStore_Get(&raw, kv_.get(), kKey) != NATS_OK) return false;
    KvEntryPtr e(raw);
    std::string holder(static_cast<const char*>(kvEntry_Value(e.get())),
                       static_cast<size_t>(kvEntry_ValueLen(e.get())));
    if (!holder.empty() && holder != node_) return false;
    s = kvStore_Update(&rev, kv_.get(), kKey, node_.data(), static_cast<int>(node_.size()),
                       kvEntry_Revision(e.get()));
    if (s != NATS_OK) return false;
  }
  leader_ = true;
  revision_ = rev;
  refreshed_ = now;
  spdlog::info("this node now takes the periodic snapshots (lease {} in bucket {})", kKey, bucket_);
  return true;
}

void SnapshotLeader::release() {
  if (!leader_) return;
  leader_ = false;
  uint64_t rev = 0;
  if (kvStore_Update(&rev, kv_.get(), kKey, "", 0, revision_) == NATS_OK)
    spdlog::info("gave up the snapshot lease");
}

}  // namespace harmony
