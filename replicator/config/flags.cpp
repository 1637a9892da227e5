// Command-line parsing with Go `flag` package syntax (HarmonyLite's flags, docs/configuration.md)
// and the usage screen. Errors throw UsageError naming the flag; the caller prints usage and
// exits 2.
#include "replicator/config/flags.hpp"

#include <charconv>
#include <functional>
#include <limits>
#include <optional>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "replicator/common/address.hpp"

namespace harmony {

namespace {

constexpr uint64_t kMaxNodeId = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

enum class Kind { kBool, kString };

struct FlagSpec {
  std::string_view name;
  Kind kind;
  std::string_view type_name;  // shown in usage for value flags, like Go ("string", "uint", ...)
  std::string_view usage;
  std::string_view default_text;
};

// In Go's PrintDefaults order: sorted by name.
constexpr FlagSpec kFlags[] = {
    {"cleanup", Kind::kBool, "",
     "remove harmonylite's triggers and change-log tables from the database, then exit", "false"},
    {"cluster-addr", Kind::kString, "host:port",
     "cluster (route) listen address of the embedded nats-server", "none, no cluster"},
    {"cluster-peers", Kind::kString, "urls",
     "comma-separated route URLs of the other nodes (nats://host:port/ or dns://name:port/)",
     "none"},
    {"config", Kind::kString, "path", "TOML configuration file", "none"},
    {"force", Kind::kBool, "", "with -cleanup: also drop changes that were not published yet",
     "false"},
    {"drop-held", Kind::kString, "id|all",
     "move a held entry (see -held), or all, to the dead letters, then exit", "none"},
    {"h", Kind::kBool, "", "same as -help", "false"},
    {"held", Kind::kBool, "", "list the received rows held until they can be applied, then exit",
     "false"},
    {"help", Kind::kBool, "", "print this usage text and exit", "false"},
    {"json", Kind::kBool, "", "with -status: print JSON instead of a table", "false"},
    {"leaf-servers", Kind::kString, "urls",
     "comma-separated leaf-node remote URLs for the embedded nats-server", "none"},
    {"node-id", Kind::kString, "uint",
     "node id, 1..9223372036854775807; overrides node_id in the config file",
     "from the config, else the id stored in the database"},
    {"pprof", Kind::kString, "addr", "accepted for compatibility with HarmonyLite; ignored",
     "none"},
    {"save-snapshot", Kind::kBool, "",
     "save a snapshot of the database to the snapshot store, then exit", "false"},
    {"schema-status", Kind::kBool, "", "print the local schema status, then exit", "false"},
    {"schema-status-cluster", Kind::kBool, "",
     "print the schema status of every node in the cluster, then exit", "false"},
    {"status", Kind::kBool, "",
     "print one table of every node of the cluster (health, streams, lag, held rows, skew), "
     "then exit (0: every known node answered and is healthy)",
     "false"},
    {"verify", Kind::kBool, "",
     "compare content digests with every reachable node, repair this node, print per table, "
     "then exit (0: all agree)",
     "false"},
    {"version", Kind::kBool, "", "print version information, then exit", "false"},
};

const FlagSpec* find_flag(std::string_view name) {
  for (const auto& f : kFlags) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// Go's strconv.ParseBool.
bool parse_bool(std::string_view name, std::string_view v) {
  if (v == "1" || v == "t" || v == "T" || v == "true" || v == "TRUE" || v == "True") return true;
  if (v == "0" || v == "f" || v == "F" || v == "false" || v == "FALSE" || v == "False") {
    return false;
  }
  throw UsageError{
      fmt::format("invalid boolean value \"{}\" for flag -{}: must be true or false", v, name)};
}

bool is_bool_literal(std::string_view v) {
  return v == "true" || v == "false" || v == "1" || v == "0" || v == "TRUE" || v == "FALSE" ||
         v == "True" || v == "False" || v == "t" || v == "f" || v == "T" || v == "F";
}

std::string trim(std::string_view s) {
  size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return {};
  size_t e = s.find_last_not_of(" \t\r\n");
  return std::string(s.substr(b, e - b + 1));
}

// Comma-separated list: entries trimmed, empty entries dropped.
std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) comma = s.size();
    std::string item = trim(s.substr(start, comma - start));
    if (!item.empty()) out.push_back(std::move(item));
    start = comma + 1;
  }
  return out;
}

[[noreturn]] void bad_value(std::string_view name, std::string_view value, std::string_view why) {
  throw UsageError{fmt::format("invalid value \"{}\" for flag -{}: {}", value, name, why)};
}

void set_value(CliOptions& o, std::string_view name, const std::string& v) {
  if (name == "config") {
    o.config_path = v;
  } else if (name == "node-id") {
    uint64_t id = 0;
    auto [ptr, ec] = std::from_chars(v.data(), v.data() + v.size(), id);
    if (v.empty() || ec != std::errc() || ptr != v.data() + v.size() || id < 1 || id > kMaxNodeId) {
      bad_value(name, v, fmt::format("must be an integer between 1 and {}", kMaxNodeId));
    }
    o.node_id = id;
  } else if (name == "cluster-addr") {
    if (!parse_host_port(v)) bad_value(name, v, "must be host:port, e.g. localhost:4221");
    o.cluster_addr = v;
  } else if (name == "cluster-peers") {
    o.cluster_peers = split_list(v);
  } else if (name == "leaf-servers") {
    o.leaf_servers = split_list(v);
  } else if (name == "pprof") {
    o.pprof = v;
  } else if (name == "drop-held") {
    o.drop_held = v;
  }
}

void set_bool(CliOptions& o, std::string_view name, bool v) {
  if (name == "cleanup") o.cleanup = v;
  if (name == "force") o.force = v;
  if (name == "save-snapshot") o.save_snapshot = v;
  if (name == "schema-status") o.schema_status = v;
  if (name == "schema-status-cluster") o.schema_status_cluster = v;
  if (name == "held") o.held = v;
  if (name == "verify") o.verify = v;
  if (name == "status") o.status = v;
  if (name == "json") o.json = v;
  if (name == "version") o.version = v;
  if (name == "help" || name == "h") o.help = v;
}

}  // namespace

CliOptions parse_flags(int argc, const char* const* argv) {
  CliOptions o;
  std::string_view prev_bool_flag;  // a boolean flag given without '=' just before, for hints
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i] ? argv[i] : "";
    if (arg.size() < 2 || arg[0] != '-') {
      // Go stops at the first non-flag argument; harmonylite takes none, so it is an error.
      if (!prev_bool_flag.empty() && is_bool_literal(arg)) {
        throw UsageError{fmt::format(
            "unexpected argument \"{}\" (boolean flags take no separate value: use -{}={})", arg,
            prev_bool_flag, arg)};
      }
      throw UsageError{fmt::format("unexpected argument \"{}\"", arg)};
    }
    prev_bool_flag = {};
    std::string_view body = arg.substr(1);
    if (body[0] == '-') {
      body = body.substr(1);
      if (body.empty()) {  // "--" ends the flags; anything after it would be positional
        if (i + 1 < argc) throw UsageError{fmt::format("unexpected argument \"{}\"", argv[i + 1])};
        break;
      }
    }
    if (body.empty() || body[0] == '-' || body[0] == '=') {
      throw UsageError{fmt::format("bad flag syntax: {}", arg)};
    }
    std::string_view name = body;
    std::optional<std::string> value;
    if (auto eq = body.find('='); eq != std::string_view::npos) {
      name = body.substr(0, eq);
      value = std::string(body.substr(eq + 1));
    }
    const FlagSpec* spec = find_flag(name);
    if (!spec) throw UsageError{fmt::format("unknown flag -{}", name)};
    if (spec->kind == Kind::kBool) {
      bool v = value ? parse_bool(name, *value) : true;
      set_bool(o, name, v);
      if (!value) prev_bool_flag = spec->name;
      if ((name == "help" || name == "h") && v) return o;  // like Go: stop at -help
      continue;
    }
    if (!value) {
      // Go takes the next argument as the value, even when it starts with '-'.
      if (i + 1 >= argc) throw UsageError{fmt::format("flag -{} needs a value", name)};
      value = std::string(argv[++i] ? argv[i] : "");
    }
    set_value(o, spec->name, *value);
  }
  return o;
}

std::string usage_text() {
  std::string out =
      "Usage: harmonylite [flags]\n"
      "\n"
      "Leaderless replication of a SQLite database over NATS JetStream.\n"
      "Flags take Go syntax: -name value, -name=value, --name value; boolean flags are given\n"
      "alone (-cleanup) or as -name=true / -name=false.\n"
      "\n"
      "Flags:\n";
  for (const auto& f : kFlags) {
    if (f.kind == Kind::kBool) {
      out += fmt::format("  -{}\n", f.name);
    } else {
      out += fmt::format("  -{} {}\n", f.name, f.type_name);
    }
    out += fmt::format("        {} (default: {})\n", f.usage, f.default_text);
  }
  out +=
      "\n"
      "Example:\n"
      "  harmonylite -config examples/node-1-config.toml -node-id 1 -cluster-addr localhost:4221 "
      "\\\n"
      "      -cluster-peers 'nats://localhost:4222/,nats://localhost:4223/'\n";
  return out;
}

}  // namespace harmony
