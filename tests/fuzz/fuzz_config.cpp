// libFuzzer target for the TOML configuration parser (replicator/config/config.cpp through
// parse_config_text, toml++ compiled in header-only mode so it is instrumented too). A config is
// either accepted or refused with a ConfigError whose message names the file; nothing else may
// escape, crash or trip a sanitizer. Accepted configs must hold the invariants later code relies
// on (normalised replicas, non-empty names, ...).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "replicator/config/config.hpp"

using namespace harmony;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_config: property violated: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::vector<std::string> warnings;
  Config c;
  try {
    c = parse_config_text(text, "fuzz.toml", warnings);
  } catch (const ConfigError& e) {
    if (std::string(e.what()).find("fuzz.toml") == std::string::npos)
      fail("a config error does not name the file");
    return 0;
  }
  const auto& r = c.replication_log;
  if (r.shards < 1 || r.shards > 64) fail("shards out of range");
  if (r.replicas < 1 || r.replicas > 5) fail("replicas not normalised to 1..5");
  if (c.snapshot.nats.replicas < 1 || c.snapshot.nats.replicas > 5)
    fail("snapshot replicas not normalised to 1..5");
  if (c.db_path.empty()) fail("empty db_path accepted");
  if (c.nats.stream_prefix.empty() || c.nats.subject_prefix.empty())
    fail("empty stream or subject prefix accepted");
  if (c.snapshot.leader_ttl_ms <= 0) fail("leader_ttl not normalised");
  if (c.scan_max_changes < 1) fail("scan_max_changes below 1 accepted");
  if (c.health_check.path.empty() || c.health_check.path.front() != '/')
    fail("health_check.path without a leading '/' accepted");
  for (const auto& w : warnings)
    if (w.find("fuzz.toml") == std::string::npos) fail("a warning does not name the file");
  return 0;
}
