// Real servers for the remote snapshot store tests, each on a free loopback port with its data
// in a TempDir, stopped on destruction:
// - S3Server: the npm package @20minutes/s3rver (a fork of s3rver that verifies SigV4
//   signatures; upstream s3rver 3.7 accepts any signature), installed by scripts/setup.sh into
//   /opt/harmony-test/node_modules (HARMONY_TEST_NODE_MODULES overrides), run by node.
// - WebdavServer, SftpServer: Debian's rclone (`rclone serve webdav|sftp`) with a user and
//   password; the SFTP server gets a host key made here, written to a known_hosts file, and a
//   client key accepted by public-key authentication.
// A server that cannot start throws std::runtime_error with the reason and its log, so the test
// that needs it fails instead of passing without it.
#pragma once
#include <memory>
#include <string>

#include "tests/support/support.hpp"

namespace harmony::test {

class S3Server {
 public:
  S3Server();
  std::string endpoint() const;  // host:port
  // s3rver's built-in account.
  static constexpr const char* kAccessKey = "S3RVER";
  static constexpr const char* kSecret = "S3RVER";
  // The file that holds object `key` of `bucket` on the server's disk.
  std::string object_file(const std::string& bucket, const std::string& key) const;
  void stop();

 private:
  TempDir dir_{"s3rver"};
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

class WebdavServer {
 public:
  WebdavServer();
  // HarmonyLite's form: http://127.0.0.1:<port>/?dir=<dir>&login=<user>&secret=<password>
  std::string url(const std::string& dir, const std::string& password = kPassword) const;
  std::string root() const { return dir_.file("root"); }
  void stop();
  static constexpr const char* kUser = "dav";
  static constexpr const char* kPassword = "dav-secret";

 private:
  TempDir dir_{"webdav"};
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

class SftpServer {
 public:
  SftpServer();
  // sftp://<user>:<password>@127.0.0.1:<port>/<dir>
  std::string url(const std::string& dir, const std::string& password = kPassword) const;
  std::string root() const { return dir_.file("root"); }
  // A known_hosts file with this server's host key, and one with another key for it.
  std::string known_hosts() const { return dir_.file("known_hosts"); }
  std::string wrong_known_hosts() const { return dir_.file("wrong_known_hosts"); }
  std::string client_key() const { return dir_.file("client_key"); }
  void stop();
  static constexpr const char* kUser = "snap";
  static constexpr const char* kPassword = "sftp-secret";

 private:
  TempDir dir_{"sftp"};
  int port_ = 0;
  std::unique_ptr<Process> process_;
};

// True when something accepts TCP connections on 127.0.0.1:port.
bool port_open(int port);

}  // namespace harmony::test
