// One libcurl request for the remote snapshot stores, with streaming callbacks and retries
// (see curl_transfer.hpp).
#include "replicator/snapshot/curl_transfer.hpp"

#include <fcntl.h>
#include <strings.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/snapshot/store_files.hpp"

namespace harmony {

namespace {

using namespace std::chrono_literals;

// Attempts for one request: a restarted server or a dropped connection gets three more tries
// over ~2 s of backoff; longer outages are the caller's (the scheduler tries again next time).
constexpr int kCurlAttempts = 4;
constexpr auto kFirstBackoff = 250ms;
// A server that does not accept the connection within 10 s is down or unreachable.
constexpr long kConnectTimeoutS = 10;
// A transfer that moves less than 1 byte/s for 60 s is stalled: abort it rather than hang a
// node's start-up forever; the retry starts it again.
constexpr long kLowSpeedBytes = 1;
constexpr long kLowSpeedTimeS = 60;
// libcurl's receive and send buffers (defaults 16 KiB and 64 KiB). Over SFTP, libssh2 keeps
// as many read or write requests in flight as fit in the buffer it is handed, so the defaults
// left a 1 GB transfer waiting on round trips; HTTP gains fewer calls per MB.
constexpr long kReceiveBufferBytes = 512 * 1024;      // CURL_MAX_READ_SIZE is the upper bound
constexpr long kUploadBufferBytes = 2 * 1024 * 1024;  // curl's maximum upload buffer
// Response bodies kept for error messages (S3/WebDAV XML errors are a few hundred bytes).
constexpr size_t kMaxErrorBody = 64 * 1024;

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Upload {
  const std::string* body = nullptr;
  int fd = -1;
  uint64_t start = 0, size = 0, pos = 0;
  TransferProgress* progress = nullptr;
  std::string error;
};

size_t read_cb(char* buf, size_t size, size_t n, void* user) {
  auto* u = static_cast<Upload*>(user);
  uint64_t want = std::min<uint64_t>(size * n, u->size - u->pos);
  if (want == 0) return 0;
  if (u->body) {
    std::memcpy(buf, u->body->data() + u->pos, want);
  } else {
    ssize_t got;
    do {
      got = ::pread(u->fd, buf, want, static_cast<off_t>(u->start + u->pos));
    } while (got < 0 && errno == EINTR);
    if (got <= 0) {
      u->error = got < 0 ? std::strerror(errno) : "the file became shorter while uploading";
      return CURL_READFUNC_ABORT;
    }
    want = static_cast<uint64_t>(got);
  }
  u->pos += want;
  if (u->progress) u->progress->add(want);
  return want;
}

// curl rewinds an upload when it must send it again (a redirect, an authentication round).
int seek_cb(void* user, curl_off_t offset, int origin) {
  auto* u = static_cast<Upload*>(user);
  if (origin != SEEK_SET || offset < 0 || static_cast<uint64_t>(offset) > u->size)
    return CURL_SEEKFUNC_CANTSEEK;
  u->pos = static_cast<uint64_t>(offset);
  return CURL_SEEKFUNC_OK;
}

struct Download {
  DownloadSink* sink = nullptr;
  std::string* body = nullptr;
  CURL* handle = nullptr;
};

size_t write_cb(char* data, size_t size, size_t n, void* user) {
  auto* d = static_cast<Download*>(user);
  size_t len = size * n;
  long status = 0;
  curl_easy_getinfo(d->handle, CURLINFO_RESPONSE_CODE, &status);
  // An HTTP error's body is the server's explanation, not the object: keep it for the message.
  if (!d->sink || status >= 300) {
    d->body->append(data, std::min(len, kMaxErrorBody - std::min(kMaxErrorBody, d->body->size())));
    return len;
  }
  DownloadSink& s = *d->sink;
  // Bounded by what we asked for, never by what the server sends: more is refused here.
  if (s.received + len > s.max_bytes) {
    s.overflow = true;
    return 0;
  }
  if (s.fd >= 0) {
    try {
      write_all(s.fd, data, len, s.path);
    } catch (const Error&) {
      return 0;
    }
    s.hash.update(data, len);
    if (s.progress) s.progress->add(len);
  } else {
    s.text.append(data, len);
  }
  s.received += len;
  return len;
}

struct Headers {
  std::string etag;
};

size_t header_cb(char* data, size_t size, size_t n, void* user) {
  size_t len = size * n;
  std::string line(data, len);
  constexpr std::string_view kEtag = "etag:";
  if (line.size() > kEtag.size() && strncasecmp(line.c_str(), kEtag.data(), kEtag.size()) == 0) {
    std::string v = line.substr(kEtag.size());
    v.erase(0, v.find_first_not_of(" \t"));
    while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.pop_back();
    static_cast<Headers*>(user)->etag = v;
  }
  return len;
}

struct HostKeyCheck {
  std::string note;
};

// The host key decides: only a key that matches known_hosts passes; an unknown or changed key
// is refused (HarmonyLite logged it and went on, so anyone on the path could read snapshots).
int ssh_key_cb(CURL*, const curl_khkey*, const curl_khkey*, enum curl_khmatch match, void* user) {
  auto* c = static_cast<HostKeyCheck*>(user);
  if (match == CURLKHMATCH_OK) return CURLKHSTAT_FINE;
  c->note = match == CURLKHMATCH_MISMATCH
                ? "the server's host key does NOT match the one in known_hosts (a changed key: "
                  "another server, or someone in between)"
                : "the server's host key is unknown (not in known_hosts)";
  return CURLKHSTAT_REJECT;
}

int ssh_accept_cb(CURL*, const curl_khkey*, const curl_khkey*, enum curl_khmatch, void*) {
  return CURLKHSTAT_FINE;
}

}  // namespace

std::string xml_value(const std::string& body, const std::string& tag) {
  auto a = body.find("<" + tag + ">");
  if (a == std::string::npos) return "";
  a += tag.size() + 2;
  auto b = body.find("</" + tag + ">", a);
  return b == std::string::npos ? "" : body.substr(a, b - a);
}

void CurlList::add(const std::string& line) {
  curl_slist* next = curl_slist_append(list_, line.c_str());
  if (!next) throw Error("out of memory building a request");
  list_ = next;
}

CurlResult curl_perform(const CurlRequest& rq) {
  global_init();
  CurlResult result;
  CurlEasy h(curl_easy_init());
  if (!h) {
    result.code = CURLE_FAILED_INIT;
    result.error = "curl_easy_init failed";
    return result;
  }
  CURL* c = h.get();
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_URL, rq.url.c_str());
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, kConnectTimeoutS);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, kLowSpeedBytes);
  curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, kLowSpeedTimeS);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, kReceiveBufferBytes);
  curl_easy_setopt(c, CURLOPT_UPLOAD_BUFFERSIZE, kUploadBufferBytes);
  if (!rq.user.empty()) {
    curl_easy_setopt(c, CURLOPT_USERNAME, rq.user.c_str());
    curl_easy_setopt(c, CURLOPT_PASSWORD, rq.password.c_str());
  }
  if (!rq.aws_sigv4.empty()) curl_easy_setopt(c, CURLOPT_AWS_SIGV4, rq.aws_sigv4.c_str());

  CurlList headers;
  for (const auto& line : rq.headers) headers.add(line);
  // No "Expect: 100-continue" round trip before each upload. Not with SigV4: libcurl 7.88 signs
  // the empty header it is told to leave out, and the server's signature then differs.
  if (rq.aws_sigv4.empty()) headers.add("Expect:");
  if (!rq.range.empty()) curl_easy_setopt(c, CURLOPT_RANGE, rq.range.c_str());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());

  Upload up;
  Fd file(rq.body || rq.upload_file.empty() ? -1
                                            : ::open(rq.upload_file.c_str(), O_RDONLY | O_CLOEXEC));
  if (rq.body) {
    up.body = &*rq.body;
    up.size = rq.body->size();
  } else if (!rq.upload_file.empty()) {
    if (!file.ok()) {
      result.code = CURLE_READ_ERROR;
      result.error = fmt::format("cannot read {}: {}", rq.upload_file, std::strerror(errno));
      return result;
    }
    up.fd = file.get();
    up.start = rq.upload_offset;
    up.size = rq.upload_size;
    up.progress = rq.upload_progress;
  }
  if (rq.method == "PUT") {
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(up.size));
    curl_easy_setopt(c, CURLOPT_READFUNCTION, read_cb);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_SEEKFUNCTION, seek_cb);
    curl_easy_setopt(c, CURLOPT_SEEKDATA, &up);
  } else if (rq.method == "POST") {
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(up.size));
    curl_easy_setopt(c, CURLOPT_COPYPOSTFIELDS, up.body ? up.body->c_str() : "");
  } else if (rq.method == "HEAD" || rq.method.empty()) {
    curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
  } else if (rq.method != "GET") {
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, rq.method.c_str());
  }

  Download down{rq.sink, &result.body, c};
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &down);
  Headers hdr;
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &hdr);

  CurlList quote, postquote;
  HostKeyCheck hostkey;
  if (rq.ssh) {
    for (const auto& q : rq.quote) quote.add(q);
    for (const auto& q : rq.postquote) postquote.add(q);
    if (quote.get()) curl_easy_setopt(c, CURLOPT_QUOTE, quote.get());
    if (postquote.get()) curl_easy_setopt(c, CURLOPT_POSTQUOTE, postquote.get());
    if (rq.create_dirs)
      curl_easy_setopt(c, CURLOPT_FTP_CREATE_MISSING_DIRS,
                       static_cast<long>(CURLFTP_CREATE_DIR_RETRY));
    long auth = CURLSSH_AUTH_PASSWORD | CURLSSH_AUTH_KEYBOARD;
    if (!rq.ssh->key_file.empty()) {
      auth |= CURLSSH_AUTH_PUBLICKEY;
      curl_easy_setopt(c, CURLOPT_SSH_PRIVATE_KEYFILE, rq.ssh->key_file.c_str());
    }
    curl_easy_setopt(c, CURLOPT_SSH_AUTH_TYPES, auth);
    if (rq.ssh->insecure_ignore_host_key) {
      curl_easy_setopt(c, CURLOPT_SSH_KEYFUNCTION, ssh_accept_cb);
    } else {
      // An empty path still installs the refusing callback: nothing is known, so every host
      // key is refused (curl would otherwise skip the check).
      curl_easy_setopt(
          c, CURLOPT_SSH_KNOWNHOSTS,
          rq.ssh->known_hosts.empty() ? "/nonexistent/known_hosts" : rq.ssh->known_hosts.c_str());
      curl_easy_setopt(c, CURLOPT_SSH_KEYFUNCTION, ssh_key_cb);
      curl_easy_setopt(c, CURLOPT_SSH_KEYDATA, &hostkey);
    }
  }

  result.code = curl_easy_perform(c);
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &result.status);
  if (rq.url.rfind("sftp://", 0) == 0) result.status = 0;
  result.error = errbuf[0] ? errbuf : curl_easy_strerror(result.code);
  if (!up.error.empty()) result.error = up.error;
  if (rq.sink && rq.sink->overflow)
    result.error =
        fmt::format("the server sent more than the {} bytes expected", rq.sink->max_bytes);
  result.etag = hdr.etag;
  result.host_key_note = hostkey.note;
  return result;
}

void rewind_sink(DownloadSink& sink) {
  if (sink.fd >= 0) {
    if (::ftruncate(sink.fd, 0) != 0 || ::lseek(sink.fd, 0, SEEK_SET) != 0)
      throw Error(fmt::format("cannot rewind {}: {}", sink.path, std::strerror(errno)));
  }
  (void)sink.hash.finish();
  sink.text.clear();
  sink.received = 0;
  sink.overflow = false;
}

namespace {

// The connection broke off or the server closed it before answering: nothing the server said.
// Over SFTP libcurl reports these as SSH errors: CURLE_SSH (a server killed mid-transfer; but
// also a write the server refused, which libcurl does not tell apart: see upload_space_hint), or
// a session that could not be set up because the peer closed before its banner.
bool connection_broke(const CurlResult& r) {
  if (!r.host_key_note.empty()) return false;
  switch (r.code) {
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
      return true;
    case CURLE_SSH:
      return true;
    case CURLE_FAILED_INIT:
      return r.error.find("Failure establishing ssh session") != std::string::npos;
    default:
      return false;
  }
}

}  // namespace

bool transient(const CurlResult& r) {
  if (connection_broke(r)) return true;
  switch (r.code) {
    case CURLE_OK:
      return r.status == 429 || r.status == 500 || r.status == 502 || r.status == 503 ||
             r.status == 504;
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
      return true;
    default:
      return false;
  }
}

bool unreachable(const CurlResult& r) {
  if (connection_broke(r)) return true;
  switch (r.code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
      return true;
    default:
      return false;
  }
}

CurlResult curl_with_retries(const CurlRequest& request,
                             const std::function<void()>& before_attempt) {
  auto wait = kFirstBackoff;
  for (int attempt = 1;; ++attempt) {
    if (before_attempt) before_attempt();
    CurlResult r = curl_perform(request);
    if (r.ok() || !transient(r) || attempt >= kCurlAttempts) {
      r.attempts = attempt;
      return r;
    }
    // One line per retry, so an operator sees a flaky server before it becomes a failed save.
    // The URL carries no credentials (CurlRequest keeps them apart).
    spdlog::warn("snapshot store: {} {}: attempt {} of {} failed ({}), retrying in {} ms",
                 request.method.empty() ? "SFTP command on" : request.method, request.url, attempt,
                 kCurlAttempts, curl_failure_text(r), wait.count());
    std::this_thread::sleep_for(wait);
    wait *= 2;
  }
}

CurlResult download_with_retries(CurlRequest request, DownloadSink& sink) {
  request.sink = &sink;
  return curl_with_retries(request, [&] { rewind_sink(sink); });
}

CurlResult upload_with_retries(CurlRequest request, const std::string& path, uint64_t offset,
                               uint64_t size, TransferProgress& progress) {
  request.upload_file = path;
  request.upload_offset = offset;
  request.upload_size = size;
  request.upload_progress = &progress;
  return curl_with_retries(request);
}

bool remove_outcome(const std::string& store, const std::string& name, const CurlResult& r) {
  if (r.ok() || (r.code == CURLE_OK && r.status == 404)) return true;
  spdlog::warn("{}: cannot remove {}: {}", store, name, curl_failure_text(r));
  return !unreachable(r);
}

std::string curl_failure_text(const CurlResult& r) {
  if (!r.host_key_note.empty()) return r.host_key_note;
  if (r.code != CURLE_OK) {
    std::string what = curl_easy_strerror(r.code);
    return r.error.empty() || r.error == what ? what : what + ": " + r.error;
  }
  std::string code = xml_value(r.body, "Code"), message = xml_value(r.body, "Message");
  if (!code.empty()) return fmt::format("HTTP {} {}: {}", r.status, code, message);
  return fmt::format("HTTP {}", r.status);
}

std::string curl_failure_hint(const CurlResult& r) {
  if (!r.host_key_note.empty())
    return "check the server's host key and the known_hosts file ([snapshot.sftp] known_hosts)";
  if (connection_broke(r))
    return "the connection broke off: check that the server is running (and was not "
           "restarted) and the network between this node and it";
  switch (r.code) {
    case CURLE_OK:
      break;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_OPERATION_TIMEDOUT:
      return "check that the server is running and that the host and port in the configuration "
             "are right";
    case CURLE_LOGIN_DENIED:
      return "check the user and password or key file";
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
      return "check the server's TLS certificate and whether it speaks TLS at all";
    case CURLE_REMOTE_DISK_FULL:
      return "the server's disk is full: free space there";
    case CURLE_REMOTE_ACCESS_DENIED:
      return "check the user's permissions on the server's directory";
    case CURLE_REMOTE_FILE_NOT_FOUND:
      return "check the path in the configuration";
    default:
      return "check the server and the network between this node and it";
  }
  if (r.status == 401 || r.status == 403)
    return "check the credentials and the permissions they have on the server";
  if (r.status == 404) return "check the bucket, directory or path in the configuration";
  if (r.status == 507 || r.status == 413) return "the server has no room: free space there";
  return "check the server's log";
}

std::string upload_space_hint(const CurlResult& r, const std::string& where, bool server_answers) {
  const std::string code = xml_value(r.body, "Code");
  const bool said_full =
      r.code == CURLE_REMOTE_DISK_FULL ||
      (r.code == CURLE_OK && (r.status == 507 || code.find("StorageFull") != std::string::npos ||
                              code == "QuotaExceeded" || code == "InsufficientStorage"));
  if (said_full)
    return fmt::format(
        "the server says it is out of space: disk full or quota reached on the server; free "
        "space or raise the quota for {}",
        where);
  const bool likely_full =
      (r.code == CURLE_OK && (r.status == 405 || r.status == 500 || r.status == 413)) ||
      (r.code == CURLE_SSH && server_answers) || r.code == CURLE_UPLOAD_FAILED;
  return likely_full ? likely_full_hint(where) : "";
}

std::string likely_full_hint(const std::string& where) {
  return fmt::format(
      "the server could not store the data, most likely disk full on the server (it does not "
      "say so in its reply): check free space and quota for {} and the server's log",
      where);
}

[[noreturn]] void throw_request_failure(const std::string& store, const std::string& what,
                                        const CurlResult& r, const std::string& hint) {
  throw Error(fmt::format("{}: {} failed{}: {} ({})", store, what,
                          r.attempts > 1 ? fmt::format(" after {} attempts", r.attempts) : "",
                          curl_failure_text(r), hint));
}

std::string url_path_escape(const std::string& s) {
  std::string out;
  for (unsigned char ch : s) {
    if (std::isalnum(ch) || ch == '-' || ch == '_' || ch == '.' || ch == '~' || ch == '/')
      out += static_cast<char>(ch);
    else
      out += fmt::format("%{:02X}", ch);
  }
  return out;
}

std::string trim_slashes(std::string s) {
  while (!s.empty() && s.front() == '/') s.erase(0, 1);
  while (!s.empty() && s.back() == '/') s.pop_back();
  return s;
}

std::string url_unescape(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(s[i + 1]) &&
               std::isxdigit(s[i + 2])) {
      out += static_cast<char>(std::stoi(s.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace harmony
