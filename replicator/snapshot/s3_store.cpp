// The S3 snapshot store (AWS S3, MinIO and other S3-compatible servers): path-style URLs
// <endpoint>/<bucket>/<path>/<object>, requests signed by libcurl's SigV4
// (CURLOPT_AWS_SIGV4 "aws:amz:<region>:s3"), one PUT per object up to kS3PartSize and a
// multipart upload above it, streamed from the file either way. The bucket is created when
// missing, as HarmonyLite does. Credentials: [snapshot.s3] access_key/secret/session_token,
// else AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN, else anonymous.
#include <algorithm>
#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/snapshot/remote_stores.hpp"
#include "replicator/snapshot/store_files.hpp"

namespace harmony {

namespace {

// What libcurl 7.88 does not add itself: S3 wants the payload's SHA-256 in a signed header.
// Bodies streamed from a file are sent as UNSIGNED-PAYLOAD (hashing 64 MiB before sending it
// would read every part twice); the snapshot's own SHA-256 protects the content end to end.
constexpr const char* kUnsignedPayload = "UNSIGNED-PAYLOAD";

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

class S3Backend : public ObjectBackend {
 public:
  S3Backend(const SnapshotS3Config& c, uint64_t part_size) : part_size_(part_size) {
    if (c.endpoint.empty())
      throw Error("[snapshot.s3] endpoint is empty (host:port of the server)");
    if (c.bucket.empty()) throw Error("[snapshot.s3] bucket is empty");
    base_ = c.endpoint;
    if (base_.rfind("http://", 0) != 0 && base_.rfind("https://", 0) != 0)
      base_ = (c.use_ssl ? "https://" : "http://") + base_;
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    bucket_ = c.bucket;
    prefix_ = trim_slashes(c.path);
    region_ = c.region.empty() ? "us-east-1" : c.region;
    key_ = c.access_key;
    secret_ = c.secret;
    token_ = c.session_token;
    if (key_.empty() && secret_.empty()) {
      key_ = env("AWS_ACCESS_KEY_ID");
      secret_ = env("AWS_SECRET_ACCESS_KEY");
      if (token_.empty()) token_ = env("AWS_SESSION_TOKEN");
    }
    if (key_.empty() != secret_.empty())
      throw Error(
          "[snapshot.s3] has only one of access_key and secret (or only one of "
          "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY is set): give both, or neither for "
          "anonymous access");
  }

  std::string describe() const override {
    return fmt::format("S3 bucket {} at {}{}", bucket_, base_,
                       prefix_.empty() ? "" : " (key prefix " + prefix_ + ")");
  }

  void prepare() override {
    // GET of the metadata object rather than HEAD of the bucket: a HEAD reply has no body, so a
    // refusal would not say why (SignatureDoesNotMatch, AccessDenied...). 404 NoSuchKey: the
    // bucket is there.
    CurlResult probe = curl_with_retries(
        request("GET", object_url(RemoteSnapshotStore::kMetaObject), empty_hash()));
    if (probe.ok()) return;
    if (probe.code != CURLE_OK || probe.status != 404) fail("checking the bucket", probe);
    if (probe.body.find("NoSuchBucket") == std::string::npos) return;
    CurlRequest put = request("PUT", bucket_url(), "");
    // Outside us-east-1, S3 wants the region in the request body.
    std::string body =
        region_ == "us-east-1"
            ? ""
            : fmt::format(
                  "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                  "<LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                  region_);
    put.body = body;
    set_hash(put, to_hex(sha256(body)));
    CurlResult r = curl_with_retries(put);
    if (!r.ok())
      throw Error(fmt::format(
          "{}: the bucket does not exist and cannot be created: {} (create the bucket, or give "
          "the key permission to create it, or fix [snapshot.s3] bucket)",
          describe(), curl_failure_text(r)));
    spdlog::info("created {}", describe());
  }

  bool download(const std::string& name, DownloadSink& sink) override {
    CurlResult r = download_with_retries(request("GET", object_url(name), empty_hash()), sink);
    if (r.ok()) return true;
    if (r.code == CURLE_OK && r.status == 404) return false;
    fail("reading " + name, r);
  }

  void upload(const std::string& name, const std::string& path, uint64_t size,
              TransferProgress& progress) override {
    if (size <= part_size_) {
      CurlResult r = upload_with_retries(request("PUT", object_url(name), kUnsignedPayload), path,
                                         0, size, progress);
      // (RemoteSnapshotStore::put removes what a failed upload left.)
      if (!r.ok()) fail("uploading " + name, r, upload_space_hint(r, where()));
      return;
    }
    multipart(name, path, size, progress);
  }

  void replace_small(const std::string& name, const std::string& text) override {
    // An S3 PUT replaces the object whole: readers see the old or the new one.
    CurlRequest rq = request("PUT", object_url(name), to_hex(sha256(text)));
    rq.body = text;
    CurlResult r = curl_with_retries(rq);
    if (!r.ok()) fail("writing " + name, r);
  }

  bool remove(const std::string& name) override {
    return remove_outcome(describe(), name,
                          curl_with_retries(request("DELETE", object_url(name), empty_hash())));
  }

 private:
  static std::string empty_hash() { return to_hex(sha256("")); }

  std::string bucket_url() const { return base_ + "/" + url_path_escape(bucket_); }
  std::string object_url(const std::string& name) const {
    return bucket_url() + "/" + url_path_escape(prefix_.empty() ? name : prefix_ + "/" + name);
  }

  static void set_hash(CurlRequest& rq, const std::string& hash) {
    rq.headers.push_back("x-amz-content-sha256: " + hash);
  }

  CurlRequest request(const std::string& method, const std::string& url,
                      const std::string& payload_hash) const {
    CurlRequest rq;
    rq.method = method;
    rq.url = url;
    if (!key_.empty()) {
      rq.user = key_;
      rq.password = secret_;
      rq.aws_sigv4 = "aws:amz:" + region_ + ":s3";
      if (!token_.empty()) rq.headers.push_back("x-amz-security-token: " + token_);
    }
    if (!payload_hash.empty()) set_hash(rq, payload_hash);
    return rq;
  }

  std::string where() const { return "the bucket " + bucket_; }

  // `hint`: what the caller knows better than curl_failure_hint (a full disk on upload).
  [[noreturn]] void fail(const std::string& what, const CurlResult& r,
                         std::string hint = "") const {
    if (hint.empty())
      hint =
          r.code == CURLE_OK && r.status == 404 && r.body.find("NoSuchBucket") != std::string::npos
              ? "the bucket does not exist: check [snapshot.s3] bucket (a save "
                "creates it)"
              : curl_failure_hint(r);
    if (r.code == CURLE_OK && (r.status == 401 || r.status == 403))
      hint =
          "check [snapshot.s3] access_key and secret (or AWS_ACCESS_KEY_ID and "
          "AWS_SECRET_ACCESS_KEY), region and the key's permissions on the bucket";
    throw_request_failure(describe(), what, r, hint);
  }

  // Initiate, one PUT per part streamed from its range of the file, complete; abort on
  // failure so the server frees the parts.
  void multipart(const std::string& name, const std::string& path, uint64_t size,
                 TransferProgress& progress) {
    // "uploads=" not "uploads": libcurl 7.88 signs the query string as written, and S3
    // canonicalises an empty value as "name=".
    CurlRequest init = request("POST", object_url(name) + "?uploads=", empty_hash());
    init.headers.push_back("Content-Type: application/octet-stream");
    CurlResult r = curl_with_retries(init);
    if (!r.ok()) fail("starting the multipart upload of " + name, r);
    std::string upload_id = xml_value(r.body, "UploadId");
    if (upload_id.empty())
      throw Error(
          fmt::format("{}: the server's reply to a multipart upload has no UploadId", describe()));
    std::string id_q = url_path_escape(upload_id);
    std::string complete =
        "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
    try {
      int part = 1;
      for (uint64_t off = 0; off < size; off += part_size_, ++part) {
        // Query parameters in sorted order: libcurl 7.88 does not sort them for the signature.
        CurlResult pr = upload_with_retries(
            request("PUT",
                    fmt::format("{}?partNumber={}&uploadId={}", object_url(name), part, id_q),
                    kUnsignedPayload),
            path, off, std::min(part_size_, size - off), progress);
        if (!pr.ok())
          fail(fmt::format("uploading part {} of {}", part, name), pr,
               upload_space_hint(pr, where()));
        if (pr.etag.empty())
          throw Error(
              fmt::format("{}: the server's reply to part {} has no ETag", describe(), part));
        complete +=
            fmt::format("<Part><PartNumber>{}</PartNumber><ETag>{}</ETag></Part>", part, pr.etag);
      }
      complete += "</CompleteMultipartUpload>";
      CurlRequest done =
          request("POST", object_url(name) + "?uploadId=" + id_q, to_hex(sha256(complete)));
      done.body = complete;
      done.headers.push_back("Content-Type: application/xml");
      CurlResult cr = curl_with_retries(done);
      // S3 may answer 200 and put the error in the body.
      if (!cr.ok() || cr.body.find("<Error>") != std::string::npos)
        fail("completing the multipart upload of " + name, cr);
    } catch (...) {
      curl_perform(request("DELETE", object_url(name) + "?uploadId=" + id_q, empty_hash()));
      throw;
    }
  }

  std::string base_, bucket_, prefix_, region_, key_, secret_, token_;
  uint64_t part_size_;
};

}  // namespace

std::unique_ptr<ObjectBackend> make_s3_backend(const SnapshotS3Config& config, uint64_t part_size) {
  return std::make_unique<S3Backend>(config, part_size);
}

}  // namespace harmony
