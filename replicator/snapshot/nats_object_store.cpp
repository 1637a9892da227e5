// The JetStream object store for snapshots, on nats.c in the ADR-20 layout: chunks under a new
// nuid, then the info message with Nats-Rollup: sub, then the old chunks purged; downloads
// checked against size, chunk count and SHA-256 (see object_store.hpp).
#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "replicator/nats/nats_client.hpp"
#include "replicator/snapshot/object_store.hpp"
#include "replicator/snapshot/store_files.hpp"
#include "shared/hlc.hpp"

namespace harmony {

namespace {

using namespace std::chrono_literals;

// A download that gets no chunk for this long is truncated (chunks purged or lost).
constexpr int64_t kChunkTimeoutMs = 10000;
constexpr int kDownloadAttempts = 3;
// nats.c's pending-bytes limit for chunks received but not yet written to the file (512 chunks
// of the default 256 KiB); the message count is left unlimited.
constexpr int kChunkReadBufferBytes = 128 * 1024 * 1024;
constexpr const char* kMetadataKey = "harmony-snapshot";

}  // namespace

struct NatsObjectStore::ObjectInfo {
  std::string nuid;
  uint64_t size = 0;
  uint32_t chunks = 0;
  std::string digest;  // "SHA-256=<base64url>"
  SnapshotMeta meta;
  std::string raw;
};

namespace {

struct AckCounter {
  std::mutex mu;
  int64_t acked = 0;
  std::string error;
};

void on_chunk_ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
  auto* c = static_cast<AckCounter*>(closure);
  {
    std::lock_guard lk(c->mu);
    if (pae) {
      if (c->error.empty())
        c->error = pae->ErrText ? pae->ErrText : nats_error_text(pae->Err, pae->ErrCode);
    } else if (pa) {
      ++c->acked;
    }
  }
  natsMsg_Destroy(msg);  // with an ack handler the message is ours
}

}  // namespace

NatsObjectStore::NatsObjectStore(NatsConnection& conn, std::string bucket, int replicas,
                                 std::string object, size_t chunk_size)
    : conn_(conn),
      bucket_(std::move(bucket)),
      stream_("OBJ_" + bucket_),
      object_(std::move(object)),
      chunk_size_(chunk_size) {
  std::string chunks = "$O." + bucket_ + ".C.>", metas = "$O." + bucket_ + ".M.>";
  const char* subjects[] = {chunks.c_str(), metas.c_str()};
  jsStreamConfig cfg;
  jsStreamConfig_Init(&cfg);
  cfg.Name = stream_.c_str();
  cfg.Subjects = subjects;
  cfg.SubjectsLen = 2;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = replicas;
  cfg.Discard = js_DiscardNew;
  cfg.MaxBytes = -1;
  cfg.AllowRollup = true;
  cfg.AllowDirect = true;
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = 5000;
  std::string last_error;
  for (int attempt = 0; attempt < 10; ++attempt) {
    if (attempt) std::this_thread::sleep_for(1s);
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsStreamInfo* raw = nullptr;
    natsStatus s = js_GetStreamInfo(&raw, conn_.js(), stream_.c_str(), &o, &jerr);
    JsStreamInfoPtr si(raw);
    if (s == NATS_OK) {
      if (si->Config->Replicas != replicas)
        spdlog::warn(
            "snapshot bucket {} has {} replica(s), [snapshot.nats] replicas says {}; keeping it",
            stream_, si->Config->Replicas, replicas);
      return;
    }
    if (s != NATS_NOT_FOUND && jerr != JSStreamNotFoundErr) {
      last_error = nats_error_text(s, jerr);
      continue;  // JetStream not ready (no leader yet, timeout): try again
    }
    jerr = static_cast<jsErrCode>(0);
    raw = nullptr;
    s = js_AddStream(&raw, conn_.js(), &cfg, &o, &jerr);
    JsStreamInfoPtr created(raw);
    if (s == NATS_OK) {
      spdlog::info("created snapshot bucket {} (stream {}, replicas {})", bucket_, stream_,
                   replicas);
      return;
    }
    if (jerr == JSStreamNameExistErr) continue;  // another node was faster
    last_error = nats_error_text(s, jerr);
    if (jerr == JSInsufficientResourcesErr || jerr == JSClusterNoPeersErr ||
        jerr == JSStreamReplicasNotSupportedErr)
      break;
  }
  throw Error(fmt::format(
      "cannot create or read the snapshot bucket {} (stream {}, replicas {}): {}. With "
      "replicas > 1, that many NATS servers must be up the first time; or lower [snapshot.nats] "
      "replicas",
      bucket_, stream_, replicas, last_error));
}

NatsObjectStore::~NatsObjectStore() = default;

std::string NatsObjectStore::describe() const {
  return fmt::format("NATS object store {} (stream {}, object {})", bucket_, stream_, object_);
}

std::string NatsObjectStore::meta_subject() const {
  return "$O." + bucket_ + ".M." + base64url(object_.data(), object_.size());
}

std::string NatsObjectStore::chunk_subject(const std::string& nuid) const {
  return "$O." + bucket_ + ".C." + nuid;
}

std::optional<NatsObjectStore::ObjectInfo> NatsObjectStore::read_info() {
  natsMsg* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = 5000;
  natsStatus s =
      js_GetLastMsg(&raw, conn_.js(), stream_.c_str(), meta_subject().c_str(), &o, &jerr);
  NatsMsgPtr msg(raw);
  if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) return std::nullopt;
  if (s != NATS_OK)
    throw Error(fmt::format("cannot read the snapshot info from {}: {}", describe(),
                            nats_error_text(s, jerr)));
  ObjectInfo info;
  info.raw.assign(natsMsg_GetData(msg.get()),
                  static_cast<size_t>(natsMsg_GetDataLength(msg.get())));
  try {
    auto j = nlohmann::json::parse(info.raw);
    if (j.value("deleted", false)) return std::nullopt;
    info.nuid = j.at("nuid").get<std::string>();
    info.size = j.at("size").get<uint64_t>();
    info.chunks = j.value("chunks", uint32_t{0});
    info.digest = j.value("digest", std::string());
    const auto& md = j.at("metadata");
    if (!md.contains(kMetadataKey))
      throw Error(fmt::format("object {} in {} was not stored by harmonylite (no {} metadata)",
                              object_, describe(), kMetadataKey));
    info.meta = SnapshotMeta::from_json(md.at(kMetadataKey).get<std::string>());
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("snapshot info in {} is malformed: {}", describe(), e.what()));
  }
  return info;
}

std::string NatsObjectStore::raw_info() {
  auto info = read_info();
  return info ? info->raw : "";
}

std::optional<SnapshotMeta> NatsObjectStore::info() {
  auto i = read_info();
  if (!i) return std::nullopt;
  return i->meta;
}

int64_t NatsObjectStore::stored_chunks(const std::string& nuid) {
  std::string subject = chunk_subject(nuid);
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = 5000;
  o.Stream.Info.SubjectsFilter = subject.c_str();
  jsStreamInfo* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&raw, conn_.js(), stream_.c_str(), &o, &jerr);
  JsStreamInfoPtr si(raw);
  if (s != NATS_OK) return -1;  // unknown: the download finds out
  int64_t n = 0;
  if (si->State.Subjects)
    for (int i = 0; i < si->State.Subjects->Count; ++i)
      n += static_cast<int64_t>(si->State.Subjects->List[i].Msgs);
  return n;
}

void NatsObjectStore::purge_chunks(const std::string& nuid) {
  std::string subject = chunk_subject(nuid);
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = 10000;
  o.Stream.Purge.Subject = subject.c_str();
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_PurgeStream(conn_.js(), stream_.c_str(), &o, &jerr);
  if (s != NATS_OK)
    spdlog::warn("could not remove old snapshot chunks {} from {}: {}", subject, stream_,
                 nats_error_text(s, jerr));
}

namespace {

// Fills `buf` from `fd`: a full chunk unless the file ends first. Returns the bytes read; a read
// error goes to `error`.
size_t read_chunk(int fd, std::vector<char>& buf, const std::string& file, std::string& error) {
  size_t filled = 0;
  while (filled < buf.size()) {
    ssize_t n = ::read(fd, buf.data() + filled, buf.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      error = fmt::format("cannot read {}: {}", file, std::strerror(errno));
      break;
    }
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  return filled;
}

// The chunks of one upload as published and acknowledged.
struct ChunkUpload {
  uint64_t size = 0;
  int64_t chunks = 0;
  Sha256Digest digest{};
  std::string error;  // the first failure; "" when every chunk was stored
};

// Publishes the file behind `fd` in chunks of `chunk_size` to `subject`, then waits until
// JetStream acknowledged every one of them.
ChunkUpload publish_chunks(jsCtx* js, const std::string& subject, jsPubOptions& po, int fd,
                           const std::string& file, size_t chunk_size, AckCounter& acks,
                           TransferProgress& progress) {
  ChunkUpload up;
  Sha256 h;
  std::vector<char> buf(chunk_size);
  while (up.error.empty()) {
    const size_t filled = read_chunk(fd, buf, file, up.error);
    if (filled == 0 || !up.error.empty()) break;
    h.update(buf.data(), filled);
    natsStatus s = js_PublishAsync(js, subject.c_str(), buf.data(), static_cast<int>(filled), &po);
    if (s != NATS_OK) {
      up.error = "publishing a chunk failed: " + nats_error_text(s);
      break;
    }
    up.size += filled;
    ++up.chunks;
    progress.add(filled);
    std::lock_guard lk(acks.mu);
    if (!acks.error.empty()) up.error = "a chunk was refused: " + acks.error;
  }
  if (up.error.empty()) {
    jsPubOptions wait;
    jsPubOptions_Init(&wait);
    wait.MaxWait = 60000;
    natsStatus s = js_PublishAsyncComplete(js, &wait);
    std::lock_guard lk(acks.mu);
    if (!acks.error.empty())
      up.error = "a chunk was refused: " + acks.error;
    else if (s != NATS_OK)
      up.error = "timed out waiting for chunk acknowledgements: " + nats_error_text(s);
    else if (acks.acked != up.chunks)
      up.error = fmt::format("only {} of {} chunks were acknowledged", acks.acked, up.chunks);
  }
  up.digest = h.finish();
  return up;
}

// The ADR-20 info message of object `object` in `bucket` after `up`: where its chunks are, how
// many, their digest, and our SnapshotMeta as metadata.
std::string info_body(const std::string& object, const std::string& bucket, size_t chunk_size,
                      const std::string& nuid, const ChunkUpload& up, const SnapshotMeta& meta) {
  nlohmann::json info;
  info["name"] = object;
  info["description"] = "harmonylite database snapshot";
  info["bucket"] = bucket;
  info["nuid"] = nuid;
  info["size"] = up.size;
  info["chunks"] = up.chunks;
  info["mtime"] = rfc3339_utc(meta.created_ms);
  info["digest"] = "SHA-256=" + base64url(up.digest.data(), up.digest.size());
  info["options"] = {{"max_chunk_size", chunk_size}};
  info["metadata"] = {{kMetadataKey, meta.to_json()}};
  return info.dump();
}

}  // namespace

void NatsObjectStore::put(const std::string& file, const SnapshotMeta& meta,
                          const std::function<void()>& on_tick) {
  auto old = read_info();
  const std::string nuid = new_nuid();
  AckCounter acks;
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = 30000;
  jo.PublishAsync.MaxPending = 64;
  jo.PublishAsync.StallWait = 30000;
  jo.PublishAsync.AckHandler = &on_chunk_ack;
  jo.PublishAsync.AckHandlerClosure = &acks;
  JsCtxPtr js = conn_.make_js(jo);
  jsPubOptions po;
  jsPubOptions_Init(&po);
  po.ExpectStream = stream_.c_str();
  po.MaxWait = 30000;

  TransferProgress progress(fmt::format("snapshot upload to {}", bucket_), meta.size, on_tick);
  Fd in(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in.ok()) throw Error(fmt::format("cannot read {}: {}", file, std::strerror(errno)));
  ChunkUpload up = publish_chunks(js.get(), chunk_subject(nuid), po, in.get(), file, chunk_size_,
                                  acks, progress);
  if (up.error.empty() && (up.size != meta.size || hex_of(up.digest) != meta.sha256))
    up.error = "the snapshot file changed while it was being uploaded";
  if (!up.error.empty()) {
    natsMsgList pending{nullptr, 0};
    if (js_PublishAsyncGetPendingList(&pending, js.get()) == NATS_OK) natsMsgList_Destroy(&pending);
    purge_chunks(nuid);
    throw Error(fmt::format("snapshot upload to {} failed: {}; the previous snapshot is kept",
                            describe(), up.error));
  }

  // The info message names the new chunks; Nats-Rollup: sub replaces the previous one.
  std::string body = info_body(object_, bucket_, chunk_size_, nuid, up, meta);
  std::string msubject = meta_subject();
  natsMsg* raw = nullptr;
  natsStatus s =
      natsMsg_Create(&raw, msubject.c_str(), nullptr, body.data(), static_cast<int>(body.size()));
  NatsMsgPtr m(raw);
  if (s == NATS_OK) s = natsMsgHeader_Set(m.get(), "Nats-Rollup", "sub");
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsPubAck* pa = nullptr;
  if (s == NATS_OK) s = js_PublishMsg(&pa, conn_.js(), m.get(), &po, &jerr);
  JsPubAckPtr ack(pa);
  if (s != NATS_OK) {
    std::string why = nats_error_text(s, jerr);
    purge_chunks(nuid);
    throw Error(
        fmt::format("snapshot upload to {} failed storing its info: {}; the previous "
                    "snapshot is kept",
                    describe(), why));
  }
  progress.finish();
  if (old && old->nuid != nuid) purge_chunks(old->nuid);
}

namespace {

// An ordered consumer of every chunk on `subject` (a step of NatsObjectStore::get).
NatsSubscriptionPtr subscribe_chunks(NatsConnection& conn, const std::string& stream,
                                     const std::string& subject, const std::string& store) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  so.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* raw = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_SubscribeSync(&raw, conn.js(), subject.c_str(), nullptr, &so, &jerr);
  NatsSubscriptionPtr sub(raw);
  if (s != NATS_OK)
    throw Error(
        fmt::format("cannot read snapshot chunks from {}: {}", store, nats_error_text(s, jerr)));
  natsSubscription_SetPendingLimits(sub.get(), -1, kChunkReadBufferBytes);
  return sub;
}

}  // namespace

SnapshotMeta NatsObjectStore::download(const ObjectInfo& info, const std::string& out_file) {
  TransferProgress progress(fmt::format("snapshot download from {}", bucket_), info.size);
  // Receiving (nats.c's thread and this one), hashing and writing overlap: the writer's thread
  // hashes and writes while this one takes the next chunks.
  PipelinedFileWriter out(out_file);
  uint64_t size = 0;
  uint32_t got = 0;
  if (int64_t stored = stored_chunks(info.nuid);
      stored >= 0 && stored != static_cast<int64_t>(info.chunks))
    throw SnapshotRejected(fmt::format(
        "snapshot in {} is incomplete: {} of its {} chunks are stored (truncated, or being "
        "replaced right now)",
        describe(), stored, info.chunks));
  NatsSubscriptionPtr sub =
      info.chunks > 0 ? subscribe_chunks(conn_, stream_, chunk_subject(info.nuid), describe())
                      : nullptr;
  while (got < info.chunks) {
    natsMsg* mraw = nullptr;
    natsStatus s = natsSubscription_NextMsg(&mraw, sub.get(), kChunkTimeoutMs);
    NatsMsgPtr m(mraw);
    if (s == NATS_TIMEOUT)
      throw SnapshotRejected(
          fmt::format("snapshot download from {} truncated: {} of {} chunks ({} of {} bytes), then "
                      "nothing for {} s",
                      describe(), got, info.chunks, size, info.size, kChunkTimeoutMs / 1000));
    if (s != NATS_OK)
      throw Error(fmt::format("reading snapshot chunks from {} failed: {}", describe(),
                              nats_error_text(s)));
    int len = natsMsg_GetDataLength(m.get());
    if (len <= 0) continue;  // flow control or heartbeat
    const char* data = natsMsg_GetData(m.get());
    out.write(data, static_cast<size_t>(len));
    size += static_cast<uint64_t>(len);
    ++got;
    progress.add(static_cast<uint64_t>(len));
    if (size > info.size)
      throw SnapshotRejected(
          fmt::format("snapshot download from {}: more data than its info says ({} bytes)",
                      describe(), info.size));
  }
  const Sha256Digest digest = out.finish().second;
  std::string adr_digest = "SHA-256=" + base64url(digest.data(), digest.size());
  if (size != info.size || size != info.meta.size || hex_of(digest) != info.meta.sha256 ||
      (!info.digest.empty() && info.digest != adr_digest))
    throw SnapshotRejected(fmt::format(
        "snapshot download from {} rejected: {} bytes with digest {}, but its info says {} "
        "bytes with digest {} (corrupted or truncated)",
        describe(), size, adr_digest, info.size, info.digest));
  progress.finish();
  return info.meta;
}

SnapshotMeta NatsObjectStore::get(const std::string& out_file) {
  for (int attempt = 1;; ++attempt) {
    auto info = read_info();
    if (!info) throw Error("no snapshot in " + describe());
    try {
      return download(*info, out_file);
    } catch (const SnapshotRejected& e) {
      std::remove(out_file.c_str());
      if (attempt >= kDownloadAttempts) throw;
      spdlog::warn("{}; trying again (a newer snapshot may have replaced it meanwhile)", e.what());
    } catch (...) {
      std::remove(out_file.c_str());
      throw;
    }
  }
}

}  // namespace harmony
