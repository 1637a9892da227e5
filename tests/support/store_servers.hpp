// Real servers for the remote snapshot store tests, each on a free loopback port with its data
// in a TempDir, stopped on destruction:
// - S3Server: the npm package @20minutes/s3rver (a fork of s3rver that verifies SigV4
//   signatures; upstream s3rver 3.7 accepts any signature), installed by scripts/setup.sh into
//   /opt/harmony-test/node_modules (HARMONY_TEST_NODE_MODULES overrides), run by node.
// - WebdavServer, SftpServer: Debian's rclone (`rclone serve webdav|sftp`) with a user and
//   password; the SFTP server gets a host key made here, written to a known_hosts file, and a
//   client key accepted by public-key authentication.
// A server that cannot start throws std::runtime_error with the reason and its log, so the test
// that needs it fails instead of passing without it. Each can keep its data in a given directory
// (a small tmpfs for the disk-full cases) and be restarted on the same port.
// Also for the failure tests (with support.hpp's Tmpfs for a full disk): TcpProxy (a loopback proxy
// that refuses connections or holds an upload at a byte count, so a failure lands at a known
// point) and LogCapture (the lines this process logs, to count retries).
#pragma once
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "replicator/snapshot/object_store.hpp"
#include "tests/support/support.hpp"

namespace harmony::test {

class S3Server {
 public:
  // `data_dir`: where s3rver keeps buckets ("" for a directory of its own).
  explicit S3Server(std::string data_dir = "");
  std::string endpoint() const;  // host:port
  // The node config's [snapshot.s3] table for this server (`store = "s3"` chooses it).
  std::string store_table(const std::string& bucket, const std::string& path = "") const;
  // s3rver's built-in account.
  static constexpr const char* kAccessKey = "S3RVER";
  static constexpr const char* kSecret = "S3RVER";
  // The file that holds object `key` of `bucket` on the server's disk.
  std::string object_file(const std::string& bucket, const std::string& key) const;
  std::string data_dir() const { return data_dir_; }
  void stop();
  void restart();  // same port, same data

 private:
  TempDir dir_{"s3rver"};
  std::string data_dir_;
  int port_ = 0;
  std::vector<std::string> argv_;
  std::unique_ptr<Process> process_;
};

class WebdavServer {
 public:
  // `root`: the directory served ("" for a directory of its own).
  explicit WebdavServer(std::string root = "");
  // HarmonyLite's form: http://127.0.0.1:<port>/?dir=<dir>&login=<user>&secret=<password>
  std::string url(const std::string& dir, const std::string& password = kPassword) const;
  // The node config's [snapshot.webdav] table for this server.
  std::string store_table(const std::string& dir) const;
  std::string root() const { return root_; }
  int port() const { return port_; }
  void stop();
  void kill();     // SIGKILL: gone at once, whatever it was doing
  void restart();  // same port, same root
  static constexpr const char* kUser = "dav";
  static constexpr const char* kPassword = "dav-secret";

 private:
  TempDir dir_{"webdav"};
  std::string root_;
  int port_ = 0;
  std::vector<std::string> argv_;
  std::unique_ptr<Process> process_;
};

class SftpServer {
 public:
  // `root`: the directory served ("" for a directory of its own).
  explicit SftpServer(std::string root = "");
  // sftp://<user>:<password>@127.0.0.1:<port>/<dir>
  std::string url(const std::string& dir, const std::string& password = kPassword) const;
  // The node config's [snapshot.sftp] table for this server, its host key checked against
  // known_hosts().
  std::string store_table(const std::string& dir) const;
  std::string root() const { return root_; }
  int port() const { return port_; }
  // A known_hosts file with this server's host key, and one with another key for it.
  std::string known_hosts() const { return dir_.file("known_hosts"); }
  // A known_hosts file with this server's host key for 127.0.0.1:`port` (a proxy in front).
  std::string known_hosts_for(int port) const;
  std::string wrong_known_hosts() const { return dir_.file("wrong_known_hosts"); }
  std::string client_key() const { return dir_.file("client_key"); }
  void stop();
  void kill();     // SIGKILL: gone at once, whatever it was doing
  void restart();  // same port, same root, same keys
  static constexpr const char* kUser = "snap";
  static constexpr const char* kPassword = "sftp-secret";

 private:
  TempDir dir_{"sftp"};
  std::string root_;
  int port_ = 0;
  std::vector<std::string> argv_;
  std::unique_ptr<Process> process_;
};

// A harmonylite database with `rows` rows of ~1 KB in TempDir `dir`, and a snapshot file of it
// at dir.file(name).
SnapshotMeta make_snapshot(const TempDir& dir, const std::string& name, int rows);

// The message of the exception that `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// True when something accepts TCP connections on 127.0.0.1:port.
bool port_open(int port);

// A TCP proxy on a free loopback port in front of 127.0.0.1:`target_port`, one thread per
// connection. refuse_next(n): the next n connections are accepted and closed at once (the
// client sees an empty reply) or, with `http_503`, answered "503 Service Unavailable".
// hold_after(n): once n bytes in total went from clients to the target, nothing more is
// forwarded that way (the client's upload stalls at a known point) until the target goes away,
// which cuts the client's connection too.
class TcpProxy {
 public:
  explicit TcpProxy(int target_port);
  ~TcpProxy();
  TcpProxy(const TcpProxy&) = delete;
  TcpProxy& operator=(const TcpProxy&) = delete;
  int port() const { return port_; }
  void refuse_next(int n, bool http_503 = false);
  void hold_after(uint64_t bytes);  // counted from now
  void release() { hold_at_ = UINT64_MAX; }
  bool holding() const { return holding_; }  // the hold point was reached
  int accepted() const { return accepted_; }
  int refused() const { return refused_; }

 private:
  void accept_loop();
  void pump(int client);

  int target_port_ = 0, port_ = 0, listen_fd_ = -1;
  std::atomic<bool> stopping_{false}, holding_{false};
  std::atomic<int> accepted_{0}, refused_{0}, refuse_left_{0};
  std::atomic<bool> refuse_503_{false};
  std::atomic<uint64_t> forwarded_{0}, hold_at_{UINT64_MAX};
  std::mutex mu_;
  std::vector<std::thread> threads_;
  std::thread acceptor_;
};

// The lines this process logs (spdlog's default logger) while the object lives.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;
  std::vector<std::string> lines() const;
  int count(const std::string& text) const;  // lines that contain `text`

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace harmony::test
