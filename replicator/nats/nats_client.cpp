// NATS client side of the replicator over nats.c: connection with endless retry and logged
// events, JetStream stream creation/verification that waits for the cluster, stream state,
// readable errors and nkey seed handling. See nats_client.hpp.
#include "replicator/nats/nats_client.hpp"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "shared/error.hpp"
#include "shared/files.hpp"

namespace harmony {
using namespace std::chrono_literals;

namespace {
// nats.c's exit handler (natsLib_Destructor, registered with atexit once the library was opened)
// still runs the OpenSSL 1.0 clean-up when TLS was used: sk_SSL_COMP_free on the stack that
// SSL_COMP_get_compression_methods() returns. Since OpenSSL 1.1 that stack belongs to libssl,
// whose own exit handler (OPENSSL_cleanup -> ssl_library_stop) frees it again: a double free
// that killed every TLS node at exit with SIGSEGV in OPENSSL_sk_pop_free. So take the stack
// away from both before the library closes: nats.c then frees NULL (a no-op), as does
// OpenSSL. The detached stack stays referenced here until the process ends (a few bytes, and
// still reachable for the leak checker); nothing compresses TLS records after shutdown.
STACK_OF(SSL_COMP) * g_detached_compression_methods = nullptr;

void detach_ssl_compression_methods() {
  SSL_COMP_get_compression_methods();  // load the built-in list first, so it is not made later
  if (!g_detached_compression_methods)
    g_detached_compression_methods = SSL_COMP_set0_compression_methods(nullptr);
}
}  // namespace

void nats_library_close() {
  detach_ssl_compression_methods();
  // Wait for the library's own threads (socket readers, flushers, reconnect) to finish before the
  // process exits, so none is still inside OpenSSL or our callbacks while exit handlers run.
  // Every connection is destroyed by now, so the wait is short; past this bound exit goes ahead.
  constexpr int64_t kLibraryCloseWaitMs = 5000;
  if (nats_CloseAndWait(kLibraryCloseWaitMs) != NATS_OK)
    spdlog::warn("the NATS library did not finish closing within {} ms", kLibraryCloseWaitMs);
}

std::string nats_error_text(natsStatus s, jsErrCode jerr) {
  std::string text = natsStatus_GetText(s);
  natsStatus last_status = NATS_OK;
  const char* last = nats_GetLastError(&last_status);
  // The thread's last error may be older than this call: use it only when the status matches.
  // It reads "<status text> (conn.c:1909): <detail>" or "(conn.c:2088): <detail>"; keep the detail.
  if (last && *last && last_status == s) {
    std::string detail = last;
    if (detail.rfind(text, 0) == 0) detail = detail.substr(text.size());
    while (!detail.empty() && detail[0] == ' ') detail.erase(0, 1);
    if (!detail.empty() && detail[0] == '(') {
      auto close = detail.find("): ");
      if (close != std::string::npos) detail = detail.substr(close + 3);
    }
    if (!detail.empty() && detail != text) text += ": " + detail;
  }
  if (jerr != 0) text += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  return text;
}

std::string redact_url(const std::string& url) {
  auto scheme = url.find("://");
  size_t start = scheme == std::string::npos ? 0 : scheme + 3;
  // The last '@': a password may hold one itself, and hiding a little too much is harmless.
  auto at = url.rfind('@');
  if (at == std::string::npos || at < start) return url;
  auto colon = url.find(':', start);
  if (colon == std::string::npos || colon > at)
    return url.substr(0, start) + "***" + url.substr(at);
  return url.substr(0, colon + 1) + "***" + url.substr(at);
}

// ---------------------------------------------------------------------------------------------
// NKeys (the encoding of github.com/nats-io/nkeys): base32 (RFC 4648, no padding) of
// prefix byte(s) + 32 key bytes + CRC-16/XMODEM (little endian). A seed starts with two bytes
// that pack PrefixByteSeed (18<<3) and the key type (User = 20<<3); the public key of an ed25519
// seed is derived with OpenSSL.
namespace {

constexpr char kBase32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
constexpr uint8_t kPrefixSeed = 18 << 3;
constexpr uint8_t kPrefixUser = 20 << 3;

uint16_t crc16(const std::vector<uint8_t>& data) {
  uint16_t crc = 0;
  for (uint8_t b : data) {
    crc ^= static_cast<uint16_t>(b) << 8;
    for (int i = 0; i < 8; ++i)
      crc = (crc & 0x8000) ? static_cast<uint16_t>((crc << 1) ^ 0x1021)
                           : static_cast<uint16_t>(crc << 1);
  }
  return crc;
}

std::string base32_encode(const std::vector<uint8_t>& data) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t b : data) {
    buffer = (buffer << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += kBase32[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kBase32[(buffer << (5 - bits)) & 31];
  return out;
}

std::vector<uint8_t> base32_decode(const std::string& s) {
  std::vector<uint8_t> out;
  uint32_t buffer = 0;
  int bits = 0;
  for (char c : s) {
    const char* p = std::strchr(kBase32, c);
    if (!p || c == '\0') throw Error("nkey: invalid base32 character");
    buffer = (buffer << 5) | static_cast<uint32_t>(p - kBase32);
    bits += 5;
    if (bits >= 8) {
      out.push_back(static_cast<uint8_t>((buffer >> (bits - 8)) & 0xff));
      bits -= 8;
    }
  }
  return out;
}

std::string encode_with_crc(std::vector<uint8_t> raw) {
  uint16_t crc = crc16(raw);
  raw.push_back(static_cast<uint8_t>(crc & 0xff));
  raw.push_back(static_cast<uint8_t>(crc >> 8));
  return base32_encode(raw);
}

std::string find_seed(const std::string& content) {
  std::istringstream in(content);
  std::string token;
  while (in >> token) {
    if (token.size() == 58 && token[0] == 'S') return token;
  }
  throw Error("nkey: no seed (a 58-character word starting with 'S') found");
}

}  // namespace

std::string nkey_public_key(const std::string& seed_or_file_content) {
  std::string seed = find_seed(seed_or_file_content);
  std::vector<uint8_t> raw = base32_decode(seed);
  if (raw.size() != 36) throw Error("nkey: seed has the wrong length");
  uint16_t crc = static_cast<uint16_t>(raw[34] | (raw[35] << 8));
  std::vector<uint8_t> body(raw.begin(), raw.begin() + 34);
  if (crc16(body) != crc) throw Error("nkey: seed checksum mismatch");
  if ((raw[0] & 248) != kPrefixSeed) throw Error("nkey: not a seed");
  uint8_t type = static_cast<uint8_t>(((raw[0] & 7) << 5) | ((raw[1] & 248) >> 3));
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nullptr, raw.data() + 2, 32);
  if (!key) throw Error("nkey: cannot load the ed25519 seed");
  std::vector<uint8_t> pub(32);
  size_t len = pub.size();
  int ok = EVP_PKEY_get_raw_public_key(key, pub.data(), &len);
  EVP_PKEY_free(key);
  if (ok != 1 || len != 32) throw Error("nkey: cannot derive the public key");
  std::fill(raw.begin(), raw.end(), 0);
  std::vector<uint8_t> out{type};
  out.insert(out.end(), pub.begin(), pub.end());
  return encode_with_crc(out);
}

std::string nkey_create_user_seed() {
  std::vector<uint8_t> raw{static_cast<uint8_t>(kPrefixSeed | (kPrefixUser >> 5)),
                           static_cast<uint8_t>((kPrefixUser & 31) << 3)};
  raw.resize(34);
  if (RAND_bytes(raw.data() + 2, 32) != 1) throw Error("nkey: no random bytes");
  return encode_with_crc(raw);
}

// ---------------------------------------------------------------------------------------------
// Connection

struct NatsConnection::Events {
  std::string name;
  int reconnect_wait_ms = 2000;
  std::mutex mu;
  std::condition_variable cv;
  bool closing = false;  // the owner is closing the connection
  bool closed = false;
  std::chrono::steady_clock::time_point last_async_log{};
  int suppressed = 0;
};

namespace {

std::string url_of(natsConnection* nc) {
  char buf[512] = {};
  if (natsConnection_GetConnectedUrl(nc, buf, sizeof buf) != NATS_OK) return "";
  return redact_url(buf);
}

void on_disconnected(natsConnection* nc, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  {
    std::lock_guard lk(ev->mu);
    if (ev->closing) return;  // our own close, not a lost connection
  }
  const char* err = nullptr;
  natsConnection_GetLastError(nc, &err);
  spdlog::warn("NATS connection '{}' lost{}{}; reconnecting every {} ms", ev->name,
               err && *err ? ": " : "", err ? err : "", ev->reconnect_wait_ms);
}

void on_reconnected(natsConnection* nc, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  spdlog::info("NATS connection '{}' reconnected to {}", ev->name, url_of(nc));
}

void on_closed(natsConnection*, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  std::lock_guard lk(ev->mu);
  if (ev->closing)
    spdlog::debug("NATS connection '{}' closed", ev->name);
  else
    spdlog::error("NATS connection '{}' closed for good", ev->name);
  ev->closed = true;
  ev->cv.notify_all();
}

void on_lame_duck(natsConnection* nc, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  spdlog::warn("NATS server {} of connection '{}' entered lame duck mode (shutting down)",
               url_of(nc), ev->name);
}

void on_async_error(natsConnection*, natsSubscription* sub, natsStatus err, void* closure) {
  auto* ev = static_cast<NatsConnection::Events*>(closure);
  int suppressed = 0;
  {
    // Slow-consumer errors can come per message: at most one line per 5 s.
    std::lock_guard lk(ev->mu);
    auto now = std::chrono::steady_clock::now();
    if (now - ev->last_async_log < 5s) {
      ++ev->suppressed;
      return;
    }
    ev->last_async_log = now;
    suppressed = ev->suppressed;
    ev->suppressed = 0;
  }
  const char* subject = sub ? natsSubscription_GetSubject(sub) : nullptr;
  spdlog::warn("NATS async error on connection '{}'{}{}: {}{}", ev->name,
               subject ? ", subscription " : "", subject ? subject : "", natsStatus_GetText(err),
               suppressed ? " (" + std::to_string(suppressed) + " more suppressed)" : "");
}

// A configuration problem (bad TLS file, bad seed): retrying cannot help.
struct NatsOptionsError : Error {
  using Error::Error;
};

void check(natsStatus s, const char* what) {
  if (s != NATS_OK)
    throw NatsOptionsError(std::string("NATS options: ") + what + ": " + nats_error_text(s));
}

std::string join_redacted(const std::vector<std::string>& urls) {
  std::string out;
  for (const auto& u : urls) out += (out.empty() ? "" : ",") + redact_url(u);
  return out;
}

}  // namespace

NatsOptionsPtr NatsConnection::build_options(const ConnectOptions& o, Events* events) {
  if (o.urls.empty()) throw NatsOptionsError("NATS: no server URL to connect to");
  natsOptions* raw = nullptr;
  check(natsOptions_Create(&raw), "create");
  NatsOptionsPtr opts(raw);
  std::vector<const char*> urls;
  for (const auto& u : o.urls) urls.push_back(u.c_str());
  check(natsOptions_SetServers(opts.get(), urls.data(), static_cast<int>(urls.size())), "servers");
  if (!o.name.empty()) check(natsOptions_SetName(opts.get(), o.name.c_str()), "name");
  // nats.c 3.4.1 writes user and password into the CONNECT JSON without escaping them: a '"'
  // breaks the protocol ("Expected 'PONG', got ''") and a '\\' changes the password.
  for (const std::string* cred : {&o.user, &o.password}) {
    if (cred->find_first_of("\"\\") != std::string::npos)
      throw NatsOptionsError(
          "NATS: user names and passwords containing '\"' or '\\' are not supported by the NATS C "
          "client");
  }
  if (!o.user.empty() || !o.password.empty())
    check(natsOptions_SetUserInfo(opts.get(), o.user.c_str(), o.password.c_str()), "user");
  if (!o.nkey_seed_file.empty()) {
    const auto seed = read_whole_file(o.nkey_seed_file);
    if (!seed) throw NatsOptionsError("NATS: cannot read nkey seed file " + o.nkey_seed_file);
    std::string pub;
    try {
      pub = nkey_public_key(*seed);
    } catch (const Error& e) {
      throw NatsOptionsError("NATS: nkey seed file " + o.nkey_seed_file + ": " + e.what());
    }
    check(natsOptions_SetNKeyFromSeed(opts.get(), pub.c_str(), o.nkey_seed_file.c_str()),
          "nkey seed");
  }
  if (!o.ca_file.empty() || !o.cert_file.empty() || !o.key_file.empty()) {
    check(natsOptions_SetSecure(opts.get(), true), "tls");
    if (!o.ca_file.empty())
      check(natsOptions_LoadCATrustedCertificates(opts.get(), o.ca_file.c_str()), "ca_file");
    if (!o.cert_file.empty() || !o.key_file.empty())
      check(natsOptions_LoadCertificatesChain(opts.get(), o.cert_file.c_str(), o.key_file.c_str()),
            "cert_file/key_file");
  }
  check(natsOptions_SetMaxReconnect(opts.get(), -1), "max reconnect");
  check(natsOptions_SetReconnectWait(opts.get(), o.reconnect_wait_ms), "reconnect wait");
  check(natsOptions_SetDisconnectedCB(opts.get(), on_disconnected, events), "callback");
  check(natsOptions_SetReconnectedCB(opts.get(), on_reconnected, events), "callback");
  check(natsOptions_SetClosedCB(opts.get(), on_closed, events), "callback");
  check(natsOptions_SetLameDuckModeCB(opts.get(), on_lame_duck, events), "callback");
  check(natsOptions_SetErrorHandler(opts.get(), on_async_error, events), "callback");
  return opts;
}

std::unique_ptr<NatsConnection> NatsConnection::connect_once(const ConnectOptions& opts) {
  std::unique_ptr<NatsConnection> conn(new NatsConnection());
  conn->name_ = opts.name;
  conn->events_ = new Events();
  conn->events_->name = opts.name;
  conn->events_->reconnect_wait_ms = opts.reconnect_wait_ms;
  NatsOptionsPtr nopts = build_options(opts, conn->events_);
  natsStatus s = natsConnection_Connect(&conn->nc_, nopts.get());
  if (s != NATS_OK) {
    std::string why = nats_error_text(s);
    conn->nc_ = nullptr;
    throw Error("cannot connect to NATS at " + join_redacted(opts.urls) + ": " + why);
  }
  jsCtx* js = nullptr;
  s = natsConnection_JetStream(&js, conn->nc_, nullptr);
  if (s != NATS_OK)
    throw NatsOptionsError("NATS: cannot create a JetStream context: " + nats_error_text(s));
  conn->js_.reset(js);
  spdlog::info("NATS connection '{}' connected to {}", opts.name, conn->connected_url());
  return conn;
}

std::unique_ptr<NatsConnection> NatsConnection::connect(const ConnectOptions& opts,
                                                        const std::atomic<bool>& stop) {
  for (int attempt = 1; !stop.load(); ++attempt) {
    try {
      return connect_once(opts);
    } catch (const NatsOptionsError&) {
      throw;
    } catch (const Error& e) {
      std::string what = e.what();
      if (attempt < opts.connect_attempts)
        spdlog::warn("{} (attempt {} of {}); retrying in {} ms", what, attempt,
                     opts.connect_attempts, opts.reconnect_wait_ms);
      else
        spdlog::error("{} (attempt {}); NATS is still unreachable, retrying every {} ms", what,
                      attempt, opts.reconnect_wait_ms);
    }
    auto until =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(opts.reconnect_wait_ms);
    while (!stop.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(20ms);
  }
  return nullptr;
}

std::unique_ptr<NatsConnection> NatsConnection::connect(const ConnectOptions& opts) {
  static const std::atomic<bool> never{false};
  return connect(opts, never);
}

NatsConnection::~NatsConnection() {
  js_.reset();
  if (nc_) {
    {
      std::lock_guard lk(events_->mu);
      events_->closing = true;
    }
    natsConnection_Close(nc_);
    bool closed;
    {
      // nats.c calls the closed callback from its own thread: keep `events_` alive until then.
      std::unique_lock lk(events_->mu);
      closed = events_->cv.wait_for(lk, 2s, [&] { return events_->closed; });
    }
    natsConnection_Destroy(nc_);
    if (closed) delete events_;
  } else {
    delete events_;  // never connected: no callback can come
  }
}

bool NatsConnection::connected() const {
  return nc_ && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

std::string NatsConnection::connected_url() const {
  return nc_ ? url_of(nc_) : "";
}

int64_t NatsConnection::max_payload() const {
  return nc_ ? natsConnection_GetMaxPayload(nc_) : 0;
}

std::vector<std::string> NatsConnection::known_servers() const {
  std::vector<std::string> out;
  char** servers = nullptr;
  int count = 0;
  if (nc_ && natsConnection_GetServers(nc_, &servers, &count) == NATS_OK) {
    for (int i = 0; i < count; ++i) {
      out.emplace_back(servers[i]);
      free(servers[i]);
    }
    free(servers);
  }
  return out;
}

JsCtxPtr make_js_context(natsConnection* nc, const jsOptions* opts) {
  std::optional<jsOptions> copy;  // nats.c takes a non-const pointer
  if (opts) copy = *opts;
  jsCtx* raw = nullptr;
  natsStatus s = natsConnection_JetStream(&raw, nc, copy ? &*copy : nullptr);
  JsCtxPtr js(raw);
  if (s != NATS_OK) throw Error("NATS: cannot create a JetStream context: " + nats_error_text(s));
  return js;
}

JsCtxPtr NatsConnection::make_js(const jsOptions& opts) const {
  return make_js_context(nc_, &opts);
}

// ---------------------------------------------------------------------------------------------
// Streams

namespace {

int64_t ms_to_ns(int64_t ms) {
  return ms * 1000000;
}

// Errors that waiting cannot fix.
bool permanent_stream_error(natsStatus s, jsErrCode jerr) {
  switch (static_cast<int>(jerr)) {
    case JSStreamInvalidConfig:
    case JSStreamSubjectOverlapErr:
    case JSStreamReplicasNotUpdatableErr:
    case JSMaximumStreamsLimitErr:
    case JSStreamMismatchErr:
      return true;
    default:
      break;
  }
  return s == NATS_CONNECTION_CLOSED || s == NATS_INVALID_ARG || s == NATS_NO_MEMORY;
}

std::string waiting_reason(natsStatus s, jsErrCode jerr, const std::string& text,
                           const StreamSpec& spec, size_t known) {
  std::string servers = std::to_string(known) + " server" + (known == 1 ? "" : "s");
  switch (static_cast<int>(jerr)) {
    case JSInsufficientResourcesErr:
    case JSClusterNoPeersErr:
      return "stream needs " + std::to_string(spec.replicas) + " servers, the client knows " +
             servers + " (" + text + ")";
    case JSStreamReplicasNotSupportedErr:
      return "the server runs JetStream without clustering but the stream wants " +
             std::to_string(spec.replicas) + " replicas (" + text + ")";
    case JSClusterNotAvailErr:
    case JSClusterNotLeaderErr:
    case JSClusterNotActiveErr:
      return "JetStream cluster has no meta leader yet; " + servers + " known (" + text + ")";
    case JSNotEnabledErr:
    case JSNotEnabledForAccountErr:
      return "JetStream is not enabled (yet) on the server (" + text + ")";
    default:
      break;
  }
  if (s == NATS_TIMEOUT)
    return "JetStream API timed out (cluster forming or meta leader election?); " + servers +
           " known";
  if (s == NATS_NO_RESPONDERS)
    return "no JetStream responders (JetStream disabled or not ready yet); " + servers + " known";
  return text;
}

struct ConfigStrings {
  std::string name, subject;
  const char* subjects[1];
};

void fill_config(jsStreamConfig& cfg, ConfigStrings& strings, const StreamSpec& spec) {
  jsStreamConfig_Init(&cfg);
  strings.name = spec.name;
  strings.subject = spec.subject;
  strings.subjects[0] = strings.subject.c_str();
  cfg.Name = strings.name.c_str();
  cfg.Subjects = strings.subjects;
  cfg.SubjectsLen = 1;
  cfg.Retention = js_LimitsPolicy;
  cfg.Discard = js_DiscardOld;
  cfg.Storage = js_FileStorage;
  cfg.Replicas = spec.replicas;
  cfg.MaxMsgs = spec.max_msgs > 0 ? spec.max_msgs : -1;
  cfg.MaxAge = spec.max_age_ms > 0 ? ms_to_ns(spec.max_age_ms) : 0;
  int64_t dup = spec.duplicate_window_ms > 0 ? ms_to_ns(spec.duplicate_window_ms) : 0;
  if (cfg.MaxAge > 0 && dup > cfg.MaxAge) dup = cfg.MaxAge;  // the server requires dup <= age
  cfg.Duplicates = dup;
}

std::string config_differences(const jsStreamConfig& have, const jsStreamConfig& want) {
  std::vector<std::string> d;
  auto num = [&](const char* what, int64_t a, int64_t b) {
    if (a != b)
      d.push_back(std::string(what) + " " + std::to_string(a) + " -> " + std::to_string(b));
  };
  bool same_subject = have.SubjectsLen == 1 && have.Subjects && have.Subjects[0] &&
                      std::strcmp(have.Subjects[0], want.Subjects[0]) == 0;
  if (!same_subject) {
    std::string subs;
    for (int i = 0; i < have.SubjectsLen; ++i)
      subs += (i ? "," : "") + std::string(have.Subjects[i]);
    d.push_back("subjects [" + subs + "] -> [" + want.Subjects[0] + "]");
  }
  if (have.Storage != want.Storage) d.push_back("storage is not file");
  if (have.Retention != want.Retention) d.push_back("retention is not limits");
  if (have.Discard != want.Discard) d.push_back("discard is not old");
  num("replicas", have.Replicas, want.Replicas);
  num("max_msgs", have.MaxMsgs, want.MaxMsgs);
  if (have.MaxAge != want.MaxAge) num("max_age_ms", have.MaxAge / 1000000, want.MaxAge / 1000000);
  if (want.Duplicates > 0 && have.Duplicates != want.Duplicates)
    num("duplicate_window_ms", have.Duplicates / 1000000, want.Duplicates / 1000000);
  std::string out;
  for (const auto& s : d) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// Steps of ensure_stream. Each returns nullopt when the stream is as wanted (or kept as is), or
// what JetStream is waiting for, for the log, when the caller should try again later; a
// permanent error throws.

std::optional<std::string> reconcile_existing_stream(NatsConnection& conn, const StreamSpec& spec,
                                                     jsStreamConfig& want, jsOptions& o,
                                                     const jsStreamConfig& have) {
  const std::string diff = config_differences(have, want);
  if (diff.empty()) return std::nullopt;
  if (!spec.update_existing) {
    spdlog::warn(
        "stream {} exists with a different config ({}); keeping it as is (set "
        "[replication_log] update_existing = true to update it)",
        spec.name, diff);
    return std::nullopt;
  }
  jsStreamInfo* updated = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_UpdateStream(&updated, conn.js(), &want, &o, &jerr);
  JsStreamInfoPtr updated_ptr(updated);
  if (s == NATS_OK) {
    spdlog::info("updated stream {}: {}", spec.name, diff);
    return std::nullopt;
  }
  const std::string text = nats_error_text(s, jerr);
  if (permanent_stream_error(s, jerr))
    throw Error("cannot update stream " + spec.name + " (" + diff + "): " + text);
  return "updating: " + waiting_reason(s, jerr, text, spec, conn.known_servers().size());
}

std::optional<std::string> create_stream(NatsConnection& conn, const StreamSpec& spec,
                                         jsStreamConfig& want, jsOptions& o) {
  jsStreamInfo* created = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  const natsStatus s = js_AddStream(&created, conn.js(), &want, &o, &jerr);
  JsStreamInfoPtr created_ptr(created);
  if (s == NATS_OK) {
    spdlog::info("created stream {} (subject {}, replicas {}, max_msgs {}, max_age_ms {})",
                 spec.name, spec.subject, spec.replicas, want.MaxMsgs, spec.max_age_ms);
    return std::nullopt;
  }
  const std::string text = nats_error_text(s, jerr);
  if (jerr == JSStreamNameExistErr) return "created meanwhile by another node; comparing configs";
  if (permanent_stream_error(s, jerr))
    throw Error("cannot create stream " + spec.name + ": " + text);
  return waiting_reason(s, jerr, text, spec, conn.known_servers().size());
}

std::optional<std::string> stream_attempt(NatsConnection& conn, const StreamSpec& spec,
                                          jsStreamConfig& want, jsOptions& o) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsStreamInfo* raw = nullptr;
  const natsStatus s = js_GetStreamInfo(&raw, conn.js(), spec.name.c_str(), &o, &jerr);
  JsStreamInfoPtr info(raw);
  if (s == NATS_OK) return reconcile_existing_stream(conn, spec, want, o, *info->Config);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) return create_stream(conn, spec, want, o);
  const std::string text = nats_error_text(s, jerr);
  if (permanent_stream_error(s, jerr)) throw Error("cannot read stream " + spec.name + ": " + text);
  return waiting_reason(s, jerr, text, spec, conn.known_servers().size());
}

}  // namespace

bool ensure_stream(NatsConnection& conn, const StreamSpec& spec, const std::atomic<bool>& stop) {
  if (spec.name.empty() || spec.subject.empty())
    throw Error("ensure_stream: stream name and subject are required");
  if (spec.replicas < 1 || spec.replicas > 5)
    throw Error("stream " + spec.name + ": replicas must be 1..5, not " +
                std::to_string(spec.replicas));
  jsStreamConfig want;
  ConfigStrings strings;
  fill_config(want, strings, spec);
  jsOptions o;
  jsOptions_Init(&o);
  o.Wait = 2000;  // a short API timeout keeps the wait loop (and its log) responsive

  const auto started = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_log{};
  bool waited = false;
  auto backoff = 100ms;
  while (!stop.load()) {
    const std::optional<std::string> waiting_for = stream_attempt(conn, spec, want, o);
    if (!waiting_for) {
      if (waited)
        spdlog::info("stream {} is ready (JetStream became available after {} ms)", spec.name,
                     std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::steady_clock::now() - started)
                         .count());
      return true;
    }
    waited = true;
    auto now = std::chrono::steady_clock::now();
    if (now - last_log >= 5s) {
      spdlog::warn("waiting for JetStream: stream {} (replicas {}): {}", spec.name, spec.replicas,
                   *waiting_for);
      last_log = now;
    }
    auto until = now + backoff;
    while (!stop.load() && std::chrono::steady_clock::now() < until)
      std::this_thread::sleep_for(20ms);
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 2s);
  }
  return false;
}

std::optional<StreamState> stream_state(NatsConnection& conn, const std::string& stream) {
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsStreamInfo* raw = nullptr;
  natsStatus s = js_GetStreamInfo(&raw, conn.js(), stream.c_str(), nullptr, &jerr);
  JsStreamInfoPtr info(raw);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) return std::nullopt;
  if (s != NATS_OK) throw Error("cannot read stream " + stream + ": " + nats_error_text(s, jerr));
  return StreamState{info->State.FirstSeq, info->State.LastSeq, info->State.Msgs};
}

}  // namespace harmony
