// RAII and helpers over nats.c 3.4.1: owning handle types, the replicator's NATS connection
// (initial connect retried forever, reconnect forever, events logged), JetStream stream
// creation that waits for the cluster, stream state, readable error text, nkey seed files.
//
// Gotcha (nats.c 3.4): never call natsMsg_Ack with jsOptions whose Wait is set; that turns every
// ack into a synchronous request. Use natsMsg_Ack(msg, nullptr), or natsMsg_AckSync.
#pragma once
#include <nats/nats.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace harmony {

// nats_CloseAndWait(): call exactly once, at process end, after every connection is destroyed.
void nats_library_close();

// "<status text>: <nats_GetLastError detail> (JetStream error <code>)". Call it on the thread
// that made the failing call (nats.c keeps the last error per thread).
std::string nats_error_text(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0));

// Owning handles. One deleter type with an overload per nats.c object.
struct NatsDeleter {
  void operator()(natsOptions* p) const { natsOptions_Destroy(p); }
  void operator()(natsConnection* p) const { natsConnection_Destroy(p); }
  void operator()(jsCtx* p) const { jsCtx_Destroy(p); }
  void operator()(natsMsg* p) const { natsMsg_Destroy(p); }
  void operator()(natsSubscription* p) const { natsSubscription_Destroy(p); }
  void operator()(jsStreamInfo* p) const { jsStreamInfo_Destroy(p); }
  void operator()(jsConsumerInfo* p) const { jsConsumerInfo_Destroy(p); }
  void operator()(jsPubAck* p) const { jsPubAck_Destroy(p); }
  void operator()(kvStore* p) const { kvStore_Destroy(p); }
  void operator()(kvEntry* p) const { kvEntry_Destroy(p); }
  void operator()(natsStatistics* p) const { natsStatistics_Destroy(p); }
  void operator()(jsMsgMetaData* p) const { jsMsgMetaData_Destroy(p); }
};
using NatsOptionsPtr = std::unique_ptr<natsOptions, NatsDeleter>;
using NatsConnectionPtr = std::unique_ptr<natsConnection, NatsDeleter>;
using JsCtxPtr = std::unique_ptr<jsCtx, NatsDeleter>;
using NatsMsgPtr = std::unique_ptr<natsMsg, NatsDeleter>;
using NatsSubscriptionPtr = std::unique_ptr<natsSubscription, NatsDeleter>;
using JsStreamInfoPtr = std::unique_ptr<jsStreamInfo, NatsDeleter>;
using JsConsumerInfoPtr = std::unique_ptr<jsConsumerInfo, NatsDeleter>;
using JsPubAckPtr = std::unique_ptr<jsPubAck, NatsDeleter>;
using KvStorePtr = std::unique_ptr<kvStore, NatsDeleter>;
using KvEntryPtr = std::unique_ptr<kvEntry, NatsDeleter>;
using NatsStatisticsPtr = std::unique_ptr<natsStatistics, NatsDeleter>;
using JsMsgMetaDataPtr = std::unique_ptr<jsMsgMetaData, NatsDeleter>;

// A JetStream context on `nc` (`opts` nullptr: the library's defaults). Throws harmony::Error.
JsCtxPtr make_js_context(natsConnection* nc, const jsOptions* opts);

// A natsMsgList (natsSubscription_Fetch's result), destroyed with its messages.
class NatsMsgList {
 public:
  NatsMsgList() = default;
  ~NatsMsgList() { natsMsgList_Destroy(&list_); }
  NatsMsgList(const NatsMsgList&) = delete;
  NatsMsgList& operator=(const NatsMsgList&) = delete;
  natsMsgList* out() { return &list_; }  // pass to natsSubscription_Fetch
  int size() const { return list_.Count; }
  natsMsg* operator[](int i) const { return list_.Msgs[i]; }
  // Takes message i out of the list (the list no longer destroys it).
  NatsMsgPtr take(int i) {
    NatsMsgPtr m(list_.Msgs[i]);
    list_.Msgs[i] = nullptr;
    return m;
  }

 private:
  natsMsgList list_{};
};

struct ConnectOptions {
  std::vector<std::string> urls;
  std::string name;
  std::string user, password;
  std::string nkey_seed_file;
  std::string ca_file, cert_file, key_file;
  int reconnect_wait_ms = 2000;
  int connect_attempts = 5;  // attempts logged as warnings; after them, errors (never give up)
};

class NatsConnection {
 public:
  // Connects, retrying the initial connect forever (every reconnect_wait_ms): warnings for the
  // first connect_attempts failures, then an error per attempt. Returns nullptr only when `stop`
  // becomes true. Throws harmony::Error for bad options (unreadable TLS or seed files).
  static std::unique_ptr<NatsConnection> connect(const ConnectOptions& opts,
                                                 const std::atomic<bool>& stop);
  // The same without a way to interrupt it.
  static std::unique_ptr<NatsConnection> connect(const ConnectOptions& opts);
  // One attempt; throws harmony::Error with the reason (e.g. "Authorization Violation").
  static std::unique_ptr<NatsConnection> connect_once(const ConnectOptions& opts);

  ~NatsConnection();
  NatsConnection(const NatsConnection&) = delete;
  NatsConnection& operator=(const NatsConnection&) = delete;

  natsConnection* get() const { return nc_; }
  bool connected() const;
  std::string connected_url() const;  // "" while disconnected
  const std::string& name() const { return name_; }
  int64_t max_payload() const;  // the server's max_payload (bytes)
  // The client's server pool: the configured URLs plus those the cluster advertised.
  std::vector<std::string> known_servers() const;

  jsCtx* js() const { return js_.get(); }  // default JetStream context
  // A JetStream context with the caller's options (async publish ack handler, MaxPending, Wait).
  // Destroy it before this connection.
  JsCtxPtr make_js(const jsOptions& opts) const;

  struct Events;  // callback state shared with nats.c threads (defined in the .cpp)

 private:
  NatsConnection() = default;
  static NatsOptionsPtr build_options(const ConnectOptions& opts, Events* events);

  natsConnection* nc_ = nullptr;
  JsCtxPtr js_;
  std::string name_;
  Events* events_ = nullptr;  // freed after the closed callback ran (or leaked if it never does)
};

// "nats://user:***@host:4222": a URL safe to log.
std::string redact_url(const std::string& url);

// NKeys: the public key ("U...") of a seed ("SU..."); the seed may be given as a file's content
// (the first line that looks like a seed is used). Throws harmony::Error when malformed.
std::string nkey_public_key(const std::string& seed_or_file_content);
// A new random user seed ("SU..."), e.g. for tests and tooling.
std::string nkey_create_user_seed();

struct StreamSpec {
  std::string name;
  std::string subject;
  int replicas = 1;
  int64_t max_msgs = 0;             // <= 0: unlimited
  int64_t max_age_ms = 0;           // 0: unlimited
  int64_t duplicate_window_ms = 0;  // 0: the server's default (2 min)
  bool update_existing = false;
};

// Creates the stream (file storage, limits retention, discard old) or checks an existing one:
// a different config is updated when spec.update_existing, otherwise logged as a warning that
// names each difference. While JetStream is not ready (no meta leader, too few servers for the
// replicas, timeouts, no responders, JetStream not enabled) it retries with backoff and logs why
// every few seconds. Returns false only when `stop` became true. Throws harmony::Error for
// errors that waiting cannot fix (invalid config, subjects overlapping another stream, a failed
// update). Idempotent.
bool ensure_stream(NatsConnection& conn, const StreamSpec& spec, const std::atomic<bool>& stop);

struct StreamState {
  uint64_t first_seq = 0, last_seq = 0, messages = 0;
};
// nullopt when the stream does not exist; throws harmony::Error on other failures.
std::optional<StreamState> stream_state(NatsConnection& conn, const std::string& stream);

}  // namespace harmony
