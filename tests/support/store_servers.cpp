// Starting and stopping the S3, WebDAV and SFTP test servers (see store_servers.hpp).
#include "tests/support/store_servers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include "replicator/snapshot/snapshot.hpp"
#include "shared/capture.hpp"
#include "shared/sqlite_db.hpp"

namespace harmony::test {

namespace {

using namespace std::chrono_literals;

// node and rclone start in well under a second; a loaded CI machine gets 20 s.
constexpr auto kStartTimeout = 20s;

std::string node_modules() {
  const char* v = std::getenv("HARMONY_TEST_NODE_MODULES");
  return v && *v ? v : "/opt/harmony-test/node_modules";
}

void wait_started(Process& p, int port, const std::string& what) {
  bool up = wait_until([&] { return port_open(port) || !p.running(); }, kStartTimeout);
  if (!up || !p.running())
    throw std::runtime_error(fmt::format(
        "{} did not start on 127.0.0.1:{} (installed by scripts/setup.sh?). Its log:\n{}", what,
        port, p.log()));
}

void run_or_throw(const std::vector<std::string>& argv, const std::string& what) {
  auto r = run_command(argv);
  if (r.exit_code != 0)
    throw std::runtime_error(fmt::format("{} failed ({}): {}", what, r.exit_code, r.output));
}

// rclone reads no user configuration here (an empty config file).
std::vector<std::string> rclone_serve(const std::string& kind, const std::string& root, int port,
                                      const std::string& config) {
  return {"rclone",   "serve", kind,     root,
          "--config", config,  "--addr", fmt::format("127.0.0.1:{}", port),
          "--user",   "",      "--pass", ""};
}

}  // namespace

SnapshotMeta make_snapshot(const TempDir& dir, const std::string& name, int rows) {
  std::string path = dir.file(name + ".src.db");
  {
    Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);");
    ensure_base_schema(db);
    enable_all(db);
    db.exec(
        fmt::format("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {}) "
                    "INSERT INTO t SELECT i, hex(randomblob(512)) FROM s",
                    rows));
  }
  return make_snapshot_file(path, dir.file(name));
}

bool port_open(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  bool ok = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  ::close(fd);
  return ok;
}

S3Server::S3Server(std::string data_dir)
    : data_dir_(data_dir.empty() ? dir_.file("data") : std::move(data_dir)) {
  std::string modules = node_modules();
  if (!std::filesystem::exists(modules + "/@20minutes/s3rver"))
    throw std::runtime_error(fmt::format(
        "the S3 test server @20minutes/s3rver is not installed in {} (run scripts/setup.sh, or "
        "set HARMONY_TEST_NODE_MODULES)",
        modules));
  port_ = free_port();
  std::filesystem::create_directories(data_dir_);
  // The package's CLI wants node >= 24 for its argument parser; its server runs on Debian's
  // node, started through the library.
  std::string script =
      "const S3rver = require('@20minutes/s3rver');"
      "new S3rver({address: '127.0.0.1', port: Number(process.argv[2]),"
      " directory: process.argv[1], silent: true}).run()"
      ".then(() => console.log('s3rver ready'));";
  argv_ = {"node", "-e", script, data_dir_, std::to_string(port_)};
  restart();
}

void S3Server::restart() {
  stop();
  process_ =
      std::make_unique<Process>(argv_, dir_.file("server.log"),
                                std::map<std::string, std::string>{{"NODE_PATH", node_modules()}});
  wait_started(*process_, port_, "the S3 test server (node, @20minutes/s3rver)");
}

std::string S3Server::endpoint() const {
  return fmt::format("127.0.0.1:{}", port_);
}

std::string S3Server::store_table(const std::string& bucket, const std::string& path) const {
  return fmt::format(
      "[snapshot.s3]\nendpoint = \"{}\"\nbucket = \"{}\"\n{}"
      "access_key = \"{}\"\nsecret = \"{}\"\n",
      endpoint(), bucket, path.empty() ? "" : fmt::format("path = \"{}\"\n", path), kAccessKey,
      kSecret);
}

std::string S3Server::object_file(const std::string& bucket, const std::string& key) const {
  return data_dir_ + "/" + bucket + "/" + key + "._S3rver_object";
}

void S3Server::stop() {
  if (process_) process_->stop();
}

WebdavServer::WebdavServer(std::string root)
    : root_(root.empty() ? dir_.file("root") : std::move(root)) {
  port_ = free_port();
  std::filesystem::create_directories(root_);
  write_file(dir_.file("rclone.conf"), "");
  argv_ = rclone_serve("webdav", root_, port_, dir_.file("rclone.conf"));
  argv_[9] = kUser;
  argv_[11] = kPassword;
  restart();
}

void WebdavServer::restart() {
  stop();
  process_ = std::make_unique<Process>(argv_, dir_.file("server.log"));
  wait_started(*process_, port_, "rclone serve webdav");
}

std::string WebdavServer::url(const std::string& dir, const std::string& password) const {
  return fmt::format("http://127.0.0.1:{}/?dir={}&login={}&secret={}", port_, dir, kUser, password);
}

std::string WebdavServer::store_table(const std::string& dir) const {
  return fmt::format("[snapshot.webdav]\nurl = \"{}\"\n", url(dir));
}

void WebdavServer::stop() {
  if (process_) process_->stop();
}

void WebdavServer::kill() {
  if (process_) process_->kill9();
}

SftpServer::SftpServer(std::string root)
    : root_(root.empty() ? dir_.file("root") : std::move(root)) {
  port_ = free_port();
  std::filesystem::create_directories(root_);
  write_file(dir_.file("rclone.conf"), "");
  // ECDSA keys: libssh2 1.10 (Debian 12) verifies ecdsa-sha2-nistp256 host keys and reads them
  // from known_hosts.
  for (const char* key : {"host_key", "other_host_key", "client_key"})
    run_or_throw({"ssh-keygen", "-q", "-t", "ecdsa", "-b", "256", "-N", "", "-f", dir_.file(key)},
                 "ssh-keygen");
  auto public_key = [&](const std::string& key) {
    std::string text = read_file(dir_.file(key + ".pub"));
    auto sp = text.find(' ', text.find(' ') + 1);  // type and key, without the comment
    return text.substr(0, sp);
  };
  write_file(dir_.file("known_hosts"),
             fmt::format("[127.0.0.1]:{} {}\n", port_, public_key("host_key")));
  write_file(dir_.file("wrong_known_hosts"),
             fmt::format("[127.0.0.1]:{} {}\n", port_, public_key("other_host_key")));
  write_file(dir_.file("authorized_keys"), public_key("client_key") + "\n");
  argv_ = rclone_serve("sftp", root_, port_, dir_.file("rclone.conf"));
  argv_[9] = kUser;
  argv_[11] = kPassword;
  argv_.insert(argv_.end(),
               {"--key", dir_.file("host_key"), "--authorized-keys", dir_.file("authorized_keys")});
  restart();
}

void SftpServer::restart() {
  stop();
  process_ = std::make_unique<Process>(argv_, dir_.file("server.log"));
  wait_started(*process_, port_, "rclone serve sftp");
}

std::string SftpServer::known_hosts_for(int port) const {
  std::string text = read_file(known_hosts());
  std::string path = dir_.file(fmt::format("known_hosts_{}", port));
  write_file(path, fmt::format("[127.0.0.1]:{}{}", port, text.substr(text.find(' '))));
  return path;
}

std::string SftpServer::url(const std::string& dir, const std::string& password) const {
  return fmt::format("sftp://{}:{}@127.0.0.1:{}/{}", kUser, password, port_, dir);
}

std::string SftpServer::store_table(const std::string& dir) const {
  return fmt::format("[snapshot.sftp]\nurl = \"{}\"\nknown_hosts = \"{}\"\n", url(dir),
                     known_hosts());
}

void SftpServer::stop() {
  if (process_) process_->stop();
}

void SftpServer::kill() {
  if (process_) process_->kill9();
}

namespace {

int listen_loopback(int& port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    ::close(fd);
    throw std::runtime_error("cannot listen on a loopback port for the proxy");
  }
  port = ntohs(addr.sin_port);
  return fd;
}

int connect_loopback(int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// The proxy's threads look at the stop flag this often (ms).
constexpr int kProxyPollMs = 20;

}  // namespace

TcpProxy::TcpProxy(int target_port) : target_port_(target_port) {
  listen_fd_ = listen_loopback(port_);
  acceptor_ = std::thread([this] { accept_loop(); });
}

TcpProxy::~TcpProxy() {
  stopping_ = true;
  acceptor_.join();
  std::lock_guard lock(mu_);
  for (auto& t : threads_) t.join();
  ::close(listen_fd_);
}

void TcpProxy::refuse_next(int n, bool http_503) {
  refuse_503_ = http_503;
  refuse_left_ = n;
}

void TcpProxy::hold_after(uint64_t bytes) {
  holding_ = false;
  hold_at_ = forwarded_ + bytes;
}

void TcpProxy::accept_loop() {
  while (!stopping_) {
    pollfd p{listen_fd_, POLLIN, 0};
    if (::poll(&p, 1, kProxyPollMs) <= 0) continue;
    int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (client < 0) continue;
    ++accepted_;
    if (refuse_left_ > 0) {
      --refuse_left_;
      ++refused_;
      if (refuse_503_) {
        constexpr std::string_view kReply =
            "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!::write(client, kReply.data(), kReply.size());
        ::shutdown(client, SHUT_WR);
        // Read what the client still sends until it closes, so the close is not a reset that
        // would hide the 503 (bounded: 1 s).
        char buf[4096];
        pollfd c{client, POLLIN, 0};
        while (::poll(&c, 1, 1000) > 0 && ::read(client, buf, sizeof buf) > 0) {
        }
      }
      ::close(client);
      continue;
    }
    std::lock_guard lock(mu_);
    threads_.emplace_back([this, client] { pump(client); });
  }
}

void TcpProxy::pump(int client) {
  int server = connect_loopback(target_port_);
  if (server < 0) {
    ::close(client);
    return;
  }
  char buf[16384];
  bool open = true;
  while (open && !stopping_) {
    // Client to server only below the hold point; server to client always, so a target that
    // goes away (EOF) ends the connection while the client's upload is held.
    bool from_client = forwarded_ < hold_at_;
    pollfd p[2] = {{server, POLLIN, 0}, {client, static_cast<short>(from_client ? POLLIN : 0), 0}};
    if (::poll(p, 2, kProxyPollMs) <= 0) continue;
    // A client that hung up while held: nothing more will come from it.
    if (!from_client && (p[1].revents & (POLLHUP | POLLERR))) break;
    if (p[0].revents) {
      ssize_t n = ::read(server, buf, sizeof buf);
      open = n > 0 && ::write(client, buf, static_cast<size_t>(n)) == n;
    }
    if (open && from_client && p[1].revents) {
      uint64_t room = hold_at_ - forwarded_;
      ssize_t n = ::read(client, buf, std::min<uint64_t>(sizeof buf, room));
      open = n > 0 && ::write(server, buf, static_cast<size_t>(n)) == n;
      if (n > 0) forwarded_ += static_cast<uint64_t>(n);
      if (forwarded_ >= hold_at_) holding_ = true;
    }
  }
  ::close(server);
  ::close(client);
}

struct LogCapture::Impl {
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink;
};

// Enough lines for one test's retries and progress; older ones are dropped.
constexpr size_t kCapturedLines = 2000;

LogCapture::LogCapture() : impl_(std::make_unique<Impl>()) {
  impl_->sink = std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(kCapturedLines);
  spdlog::default_logger()->sinks().push_back(impl_->sink);
}

LogCapture::~LogCapture() {
  auto& sinks = spdlog::default_logger()->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), impl_->sink), sinks.end());
}

std::vector<std::string> LogCapture::lines() const {
  return impl_->sink->last_formatted();
}

int LogCapture::count(const std::string& text) const {
  auto all = lines();
  return static_cast<int>(std::count_if(all.begin(), all.end(), [&](const std::string& l) {
    return l.find(text) != std::string::npos;
  }));
}

}  // namespace harmony::test
