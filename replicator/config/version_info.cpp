// Version report for -version: harmonylite, git commit, build date, and the versions of the
// SQLite, nats.c and nats-server it runs with.
#include "replicator/config/version_info.hpp"

#include <nats/nats.h>
#include <sqlite3.h>

#include <cstdio>

#include <fmt/format.h>

#include "harmony_version.hpp"

namespace harmony {

std::string nats_server_version(const std::string& binary) {
  std::string cmd = binary + " --version 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "not found";
  char buf[256] = {0};
  std::string out;
  while (fgets(buf, sizeof buf, p)) out += buf;
  int rc = pclose(p);
  if (rc != 0 || out.empty()) return "not found (" + binary + ")";
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  auto pos = out.find(" v");
  return pos == std::string::npos ? out : out.substr(pos + 1);
}

std::string version_report(const std::string& nats_server_binary) {
  return fmt::format(
      "harmonylite {} (git {}, built {})\n  SQLite {}\n  nats.c {}\n  nats-server {}\n",
      build::kVersion, build::kGitCommit, build::kBuildDate, sqlite3_libversion(),
      nats_GetVersion(), nats_server_version(nats_server_binary));
}

}  // namespace harmony
