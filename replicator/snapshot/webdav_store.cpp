// The WebDAV snapshot store: HarmonyLite's URL form
// `http(s)://host:port/root?dir=<directory>&login=<user>&secret=<password>` (login and secret
// required, as there). Objects live in <root>/<dir>/; the directory is created (MKCOL) when
// missing. snapshot.json is replaced by PUT to a temporary name and MOVE with Overwrite: T,
// which a WebDAV server performs as one step, so a reader never sees a half-written one.
#include <fmt/format.h>

#include "replicator/snapshot/remote_stores.hpp"

namespace harmony {

namespace {

class WebdavBackend : public ObjectBackend {
 public:
  explicit WebdavBackend(const SnapshotWebdavConfig& c) {
    if (c.url.empty()) throw Error("[snapshot.webdav] url is empty");
    auto q = c.url.find('?');
    base_ = c.url.substr(0, q);
    if (base_.rfind("http://", 0) != 0 && base_.rfind("https://", 0) != 0)
      throw Error("[snapshot.webdav] url must start with http:// or https://");
    if (base_.find('@') != std::string::npos)
      throw Error(
          "[snapshot.webdav] url must not carry credentials before the host: use "
          "?login=<user>&secret=<password>");
    while (!base_.empty() && base_.back() == '/') base_.pop_back();
    std::string query = q == std::string::npos ? "" : c.url.substr(q + 1);
    bool has_login = false, has_secret = false;
    size_t pos = 0;
    while (pos <= query.size() && !query.empty()) {
      auto amp = query.find('&', pos);
      std::string kv = query.substr(pos, amp == std::string::npos ? std::string::npos : amp - pos);
      auto eq = kv.find('=');
      std::string k = kv.substr(0, eq),
                  v = eq == std::string::npos ? "" : url_unescape(kv.substr(eq + 1));
      if (k == "dir")
        dir_ = trim_slashes(v);
      else if (k == "login")
        user_ = v, has_login = true;
      else if (k == "secret")
        password_ = v, has_secret = true;
      if (amp == std::string::npos) break;
      pos = amp + 1;
    }
    if (!has_login || !has_secret || user_.empty())
      throw Error(
          "[snapshot.webdav] url needs ?login=<user>&secret=<password> (both required, as in "
          "HarmonyLite)");
  }

  std::string describe() const override { return fmt::format("WebDAV directory {}", dir_url()); }

  void prepare() override {
    if (dir_.empty()) return;
    std::string path;
    for (size_t pos = 0; pos <= dir_.size();) {
      auto slash = dir_.find('/', pos);
      path = dir_.substr(0, slash);
      CurlResult r = curl_with_retries(request("MKCOL", base_ + "/" + url_path_escape(path)));
      // 201 created; 405: it exists already.
      if (!r.ok() && !(r.code == CURLE_OK && r.status == 405))
        fail("creating directory " + path, r);
      if (slash == std::string::npos) break;
      pos = slash + 1;
    }
  }

  bool download(const std::string& name, DownloadSink& sink) override {
    CurlResult r = download_with_retries(request("GET", object_url(name)), sink);
    if (r.ok()) return true;
    if (r.code == CURLE_OK && r.status == 404) return false;
    fail("reading " + name, r);
  }

  void upload(const std::string& name, const std::string& path, uint64_t size,
              TransferProgress& progress) override {
    // A name nobody reads yet: no temporary name needed.
    CurlResult r = upload_with_retries(request("PUT", object_url(name)), path, 0, size, progress);
    // (RemoteSnapshotStore::put removes what a failed upload left.)
    if (!r.ok()) fail("uploading " + name, r, upload_space_hint(r, "the directory " + dir_url()));
  }

  void replace_small(const std::string& name, const std::string& text) override {
    std::string tmp = "." + name + "." + new_nuid() + ".tmp";
    CurlRequest put = request("PUT", object_url(tmp));
    put.body = text;
    CurlResult r = curl_with_retries(put);
    if (!r.ok()) fail("writing " + tmp, r);
    CurlRequest move = request("MOVE", object_url(tmp));
    move.headers = {"Destination: " + object_url(name), "Overwrite: T"};
    r = curl_with_retries(move);
    if (!r.ok()) {
      remove(tmp);
      fail("renaming " + tmp + " to " + name, r);
    }
  }

  bool remove(const std::string& name) override {
    return remove_outcome(describe(), name, curl_with_retries(request("DELETE", object_url(name))));
  }

 private:
  std::string dir_url() const { return dir_.empty() ? base_ : base_ + "/" + url_path_escape(dir_); }
  std::string object_url(const std::string& name) const {
    return dir_url() + "/" + url_path_escape(name);
  }

  CurlRequest request(const std::string& method, const std::string& url) const {
    return {.method = method, .url = url, .user = user_, .password = password_};
  }

  // `hint`: what the caller knows better than curl_failure_hint (a full disk on upload).
  [[noreturn]] void fail(const std::string& what, const CurlResult& r,
                         std::string hint = "") const {
    if (hint.empty()) hint = curl_failure_hint(r);
    if (r.code == CURLE_OK && (r.status == 401 || r.status == 403))
      hint = "check login and secret in [snapshot.webdav] url and the user's rights there";
    throw_request_failure(describe(), what, r, hint);
  }

  std::string base_, dir_, user_, password_;
};

}  // namespace

std::unique_ptr<ObjectBackend> make_webdav_backend(const SnapshotWebdavConfig& config) {
  return std::make_unique<WebdavBackend>(config);
}

}  // namespace harmony
