// Command-line flags, Go style like HarmonyLite: -flag value, -flag=value, --flag; booleans as
// -flag or -flag=true/false. An unknown flag or bad value throws UsageError naming it (exit 2).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "shared/error.hpp"

namespace harmony {

struct CliOptions {
  std::string config_path;                 // -config
  std::optional<uint64_t> node_id;         // -node-id (1 .. 2^63-1)
  std::string cluster_addr;                // -cluster-addr host:port (embedded server routes)
  std::vector<std::string> cluster_peers;  // -cluster-peers nats://h:p/,nats://h:p/
  std::vector<std::string> leaf_servers;   // -leaf-servers
  bool cleanup = false;                    // -cleanup
  bool force = false;                      // -force (with -cleanup: drop unpublished changes too)
  bool save_snapshot = false;              // -save-snapshot
  bool schema_status = false;              // -schema-status
  bool schema_status_cluster = false;      // -schema-status-cluster
  bool held = false;                       // -held: list rows waiting to be applied
  std::string drop_held;                   // -drop-held id|all
  bool verify = false;                     // -verify: compare with peers, repair, report
  bool status = false;                     // -status: every node's status in one table
  bool json = false;                       // -json: -status as JSON
  bool version = false;                    // -version
  bool help = false;                       // -help / -h
  std::string pprof;                       // -pprof addr: accepted for compatibility, ignored
};

// Thrown for a bad command line; what() names the flag, e.g. "unknown flag -foo" or
// "invalid value \"x\" for flag -node-id: ...". Its own type so main() can exit with 2.
class UsageError : public Error {
 public:
  using Error::Error;
};

CliOptions parse_flags(int argc, const char* const* argv);
std::string usage_text();

}  // namespace harmony
