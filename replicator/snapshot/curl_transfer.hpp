// libcurl for the remote snapshot stores (S3, WebDAV, SFTP): RAII over CURL* and curl_slist*,
// one request with streaming upload (from a file range or a small string) and streaming
// download (into a file descriptor while hashing, or a small bounded string), retries with
// backoff for transient failures, and error text that names the store and what to check.
// Credentials travel in CurlRequest's user/password fields, never in URLs, so no message built
// here can contain them. Internal to replicator/snapshot/*_store.cpp.
#pragma once
#include <curl/curl.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replicator/snapshot/object_store.hpp"
#include "shared/digest.hpp"

namespace harmony {

struct CurlEasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
using CurlEasy = std::unique_ptr<CURL, CurlEasyDeleter>;

// A curl_slist that frees itself (request headers, SFTP quote commands).
class CurlList {
 public:
  CurlList() = default;
  ~CurlList() { curl_slist_free_all(list_); }
  CurlList(const CurlList&) = delete;
  CurlList& operator=(const CurlList&) = delete;
  void add(const std::string& line);
  curl_slist* get() const { return list_; }

 private:
  curl_slist* list_ = nullptr;
};

// Where a download goes: a file descriptor (hashed and counted as it arrives, refused past
// `max_bytes`) or, when fd < 0, a string of at most `max_bytes`.
struct DownloadSink {
  int fd = -1;
  std::string path;  // for messages
  uint64_t max_bytes = 0;
  uint64_t received = 0;
  bool overflow = false;  // the server sent more than max_bytes
  Sha256 hash;
  std::string text;
  TransferProgress* progress = nullptr;
};

// Back to empty before a retried download: file truncated and rewound, hash restarted.
void rewind_sink(DownloadSink& sink);

struct SshSettings {
  std::string known_hosts;  // "" with !insecure: host keys cannot be checked → refused
  bool insecure_ignore_host_key = false;
  std::string key_file;  // private key for public-key authentication
};

struct CurlRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE, MKCOL, MOVE; "" for SFTP quote-only
  std::string url;             // without credentials
  std::string user, password;  // CURLOPT_USERNAME/PASSWORD (empty user: none)
  std::string aws_sigv4;       // "aws:amz:<region>:s3" to sign with SigV4
  std::vector<std::string> headers;
  // Upload: a small body (method PUT/POST) or a range of a file.
  std::optional<std::string> body;
  std::string upload_file;
  uint64_t upload_offset = 0, upload_size = 0;
  TransferProgress* upload_progress = nullptr;
  DownloadSink* sink = nullptr;  // null: the response body is kept (bounded) for error text
  std::string range;             // CURLOPT_RANGE ("from-"), "" for all
  std::vector<std::string> quote, postquote;  // SFTP commands before/after the transfer
  bool create_dirs = false;                   // SFTP: create missing directories on upload
  const SshSettings* ssh = nullptr;
};

struct CurlResult {
  CURLcode code = CURLE_OK;
  long status = 0;            // HTTP status, 0 for SFTP
  std::string error;          // curl's error buffer (no credentials: none are in the URL)
  std::string body;           // response body when no sink was given (first 64 KiB)
  std::string etag;           // ETag response header (S3 multipart parts)
  std::string host_key_note;  // SFTP: why the host key was refused, "" when it was not
  int attempts = 1;           // how many curl_with_retries made
  bool ok() const { return code == CURLE_OK && (status == 0 || (status >= 200 && status < 300)); }
};

// One attempt.
CurlResult curl_perform(const CurlRequest& request);

// True for failures worth another attempt: connection refused or reset, timeouts, a transfer
// cut short, HTTP 429/500/502/503/504.
bool transient(const CurlResult& r);

// True when the server could not be reached or the connection broke (nothing it said): trying
// the same again later may work.
bool unreachable(const CurlResult& r);

// Runs `request` up to kCurlAttempts times while the failure is transient, waiting 0.25, 0.5,
// 1 s ... between attempts and logging each retry once (a warning with the attempt number and
// the failure); `before_attempt` (if set) runs before each one, e.g. to rewind a download sink.
// Returns the last result, with the number of attempts made.
CurlResult curl_with_retries(const CurlRequest& request,
                             const std::function<void()>& before_attempt = nullptr);

// The two transfers every store makes, retried as curl_with_retries does: `request` (method GET)
// streamed into `sink`, rewound before each attempt; `request` (method PUT) sending `size` bytes
// of `path` from `offset`, counted in `progress` (curl rewinds the range itself).
CurlResult download_with_retries(CurlRequest request, DownloadSink& sink);
CurlResult upload_with_retries(CurlRequest request, const std::string& path, uint64_t offset,
                               uint64_t size, TransferProgress& progress);

// The end of a store's best-effort remove of `name`: true when it is gone (done, or HTTP 404) or
// the server refused (logged: trying again would not help), false when the server could not be
// reached (logged: worth another try later).
bool remove_outcome(const std::string& store, const std::string& name, const CurlResult& r);

// "cannot connect (Couldn't connect to server: ...)" / "HTTP 403 SignatureDoesNotMatch: ..."
// for a failed result: what went wrong, with the server's error code when it gave one.
std::string curl_failure_text(const CurlResult& r);

// A hint for the person reading the log: what to check for this kind of failure.
std::string curl_failure_hint(const CurlResult& r);

// For a failed upload into `where` (a directory or bucket, for the message): the hint when the
// reply says the server ran out of space (HTTP 507, S3's storage-full and quota codes, SFTP's
// "no space" status) or is how the servers we know report it without saying so: rclone's WebDAV
// (golang.org/x/net/webdav) answers 405 to a PUT whose write failed, s3rver answers 500
// InternalError, SFTP servers that send a full disk as a generic failure (libcurl: CURLE_SSH,
// as for a connection that broke off, so only when `server_answers`: the caller found the server
// still there after the failure). "" when the failure is of another kind.
std::string upload_space_hint(const CurlResult& r, const std::string& where,
                              bool server_answers = false);

// upload_space_hint's text for a server that failed to store the data without saying why.
std::string likely_full_hint(const std::string& where);

// Throws Error "<store>: <what> failed[ after N attempts]: <failure text> (<hint>)": the message
// every remote store gives for a failed request.
[[noreturn]] void throw_request_failure(const std::string& store, const std::string& what,
                                        const CurlResult& r, const std::string& hint);

// Percent-encodes everything but unreserved characters and '/' (object keys in URLs).
std::string url_path_escape(const std::string& s);
// `s` without leading and trailing '/' (directories and key prefixes from the configuration).
std::string trim_slashes(std::string s);
// Decodes %XX and '+' (query values).
std::string url_unescape(const std::string& s);
// The text of the first <tag>...</tag> in an XML reply (S3's error Code/Message, UploadId), ""
// when absent. Not an XML parser: the replies read this way are flat and small.
std::string xml_value(const std::string& body, const std::string& tag);

}  // namespace harmony
