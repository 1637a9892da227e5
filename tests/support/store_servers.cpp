// Starting and stopping the S3, WebDAV and SFTP test servers (see store_servers.hpp).
#include "tests/support/store_servers.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <stdexcept>

#include <fmt/format.h>

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

S3Server::S3Server() {
  std::string modules = node_modules();
  if (!std::filesystem::exists(modules + "/@20minutes/s3rver"))
    throw std::runtime_error(fmt::format(
        "the S3 test server @20minutes/s3rver is not installed in {} (run scripts/setup.sh, or "
        "set HARMONY_TEST_NODE_MODULES)",
        modules));
  port_ = free_port();
  std::filesystem::create_directories(dir_.file("data"));
  // The package's CLI wants node >= 24 for its argument parser; its server runs on Debian's
  // node, started through the library.
  std::string script =
      "const S3rver = require('@20minutes/s3rver');"
      "new S3rver({address: '127.0.0.1', port: Number(process.argv[2]),"
      " directory: process.argv[1], silent: true}).run()"
      ".then(() => console.log('s3rver ready'));";
  process_ = std::make_unique<Process>(
      std::vector<std::string>{"node", "-e", script, dir_.file("data"), std::to_string(port_)},
      dir_.file("server.log"), std::map<std::string, std::string>{{"NODE_PATH", modules}});
  wait_started(*process_, port_, "the S3 test server (node, @20minutes/s3rver)");
}

std::string S3Server::endpoint() const {
  return fmt::format("127.0.0.1:{}", port_);
}

std::string S3Server::object_file(const std::string& bucket, const std::string& key) const {
  return dir_.file("data") + "/" + bucket + "/" + key + "._S3rver_object";
}

void S3Server::stop() {
  if (process_) process_->stop();
}

WebdavServer::WebdavServer() {
  port_ = free_port();
  std::filesystem::create_directories(root());
  write_file(dir_.file("rclone.conf"), "");
  auto argv = rclone_serve("webdav", root(), port_, dir_.file("rclone.conf"));
  argv[9] = kUser;
  argv[11] = kPassword;
  process_ = std::make_unique<Process>(argv, dir_.file("server.log"));
  wait_started(*process_, port_, "rclone serve webdav");
}

std::string WebdavServer::url(const std::string& dir, const std::string& password) const {
  return fmt::format("http://127.0.0.1:{}/?dir={}&login={}&secret={}", port_, dir, kUser, password);
}

void WebdavServer::stop() {
  if (process_) process_->stop();
}

SftpServer::SftpServer() {
  port_ = free_port();
  std::filesystem::create_directories(root());
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
  auto argv = rclone_serve("sftp", root(), port_, dir_.file("rclone.conf"));
  argv[9] = kUser;
  argv[11] = kPassword;
  argv.insert(argv.end(),
              {"--key", dir_.file("host_key"), "--authorized-keys", dir_.file("authorized_keys")});
  process_ = std::make_unique<Process>(argv, dir_.file("server.log"));
  wait_started(*process_, port_, "rclone serve sftp");
}

std::string SftpServer::url(const std::string& dir, const std::string& password) const {
  return fmt::format("sftp://{}:{}@127.0.0.1:{}/{}", kUser, password, port_, dir);
}

void SftpServer::stop() {
  if (process_) process_->stop();
}

}  // namespace harmony::test
