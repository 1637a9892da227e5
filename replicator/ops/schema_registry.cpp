// Schema registry in a JetStream KV bucket, the consistency report, and the -schema-status /
// -schema-status-cluster commands (see schema_registry.hpp).
#include "replicator/ops/schema_registry.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "harmony_version.hpp"
#include "replicator/common/database.hpp"
#include "replicator/common/runtime_info.hpp"
#include "replicator/common/schema_guard.hpp"
#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_config.hpp"
#include "replicator/ops/health.hpp"
#include "shared/app_triggers.hpp"
#include "shared/capture.hpp"
#include "shared/names.hpp"

namespace harmony {

// --- entries ---------------------------------------------------------------------------------

nlohmann::json to_json(const RegistryEntry& e) {
  nlohmann::json j;
  j["node_id"] = e.node_id;
  j["tables"] = e.tables;
  j["previous"] = e.previous;
  j["version"] = e.version;
  j["updated_at"] = e.updated_at;
  return j;
}

RegistryEntry registry_entry_from_json(const nlohmann::json& j) {
  RegistryEntry e;
  e.node_id = j.at("node_id").get<uint64_t>();
  e.tables = j.at("tables").get<std::map<std::string, std::string>>();
  if (j.contains("previous") && j["previous"].is_object())
    e.previous = j["previous"].get<std::map<std::string, std::string>>();
  e.version = j.value("version", "");
  e.updated_at = j.value("updated_at", "");
  return e;
}

RegistryEntry make_registry_entry(uint64_t node_id,
                                  const std::map<std::string, TableSchemaState>& schema,
                                  int64_t now_ms) {
  RegistryEntry e;
  e.node_id = node_id;
  for (const auto& [name, st] : schema) {
    e.tables[name] = st.hash;
    if (!st.previous.empty()) e.previous[name] = st.previous.front();
  }
  e.version = build::kVersion;
  e.updated_at = rfc3339_or_null(now_ms).get<std::string>();
  return e;
}

ConsistencyReport check_consistency(const std::vector<RegistryEntry>& entries) {
  ConsistencyReport r;
  if (entries.empty()) {
    r.consistent = false;
    r.findings.push_back("no node is registered (is any replicator running?)");
    return r;
  }
  // Table names compare case-insensitively, as SQLite compares identifiers.
  auto lower = [](std::string s) {
    for (auto& c : s)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return s;
  };
  std::map<std::string, std::string> spelled;  // lower -> a spelling, for messages
  for (const auto& e : entries)
    for (const auto& [t, h] : e.tables) spelled.emplace(lower(t), t);
  for (const auto& [key, name] : spelled) {
    std::map<std::string, std::vector<uint64_t>> by_hash;
    std::vector<uint64_t> missing;
    std::map<uint64_t, std::string> previous_of;  // node -> its previous hash of this table
    for (const auto& e : entries) {
      const std::string* hash = nullptr;
      for (const auto& [t, h] : e.tables)
        if (lower(t) == key) hash = &h;
      for (const auto& [t, h] : e.previous)
        if (lower(t) == key) previous_of[e.node_id] = h;
      if (hash)
        by_hash[*hash].push_back(e.node_id);
      else
        missing.push_back(e.node_id);
    }
    if (by_hash.size() <= 1 && missing.empty()) continue;
    r.consistent = false;
    std::vector<std::string> parts;
    for (const auto& [h, nodes] : by_hash)
      parts.push_back(fmt::format("{} on node {}", h, fmt::join(nodes, ", ")));
    std::string line = fmt::format("table {}: {}", name, fmt::join(parts, "; "));
    if (!missing.empty())
      line += fmt::format("; not replicated on node {}", fmt::join(missing, ", "));
    // A node still on the hash another node had before: a rolling upgrade in progress.
    std::vector<std::string> upgrade;
    for (const auto& [h, nodes] : by_hash)
      for (const auto& [node, prev] : previous_of)
        if (prev == h && std::find(nodes.begin(), nodes.end(), node) == nodes.end())
          upgrade.push_back(fmt::format("node {} still has the schema node {} had before",
                                        fmt::join(nodes, ", "), node));
    if (!upgrade.empty())
      line += fmt::format(" ({}: rolling upgrade in progress)", fmt::join(upgrade, "; "));
    r.findings.push_back(line);
  }
  return r;
}

std::string registry_bucket(const Config& config) {
  return config.nats.stream_prefix + "-schema-registry";
}

// --- KV bucket ---------------------------------------------------------------------------------

SchemaRegistry::SchemaRegistry(natsConnection* nc, std::string bucket, int replicas)
    : js_(make_js_context(nc, nullptr)),
      bucket_(std::move(bucket)),
      replicas_(std::max(1, replicas)) {}

SchemaRegistry::~SchemaRegistry() = default;

namespace {
KvStorePtr bind_bucket(jsCtx* js, const std::string& bucket, natsStatus& status) {
  kvStore* raw = nullptr;
  status = js_KeyValue(&raw, js, bucket.c_str());
  return KvStorePtr(status == NATS_OK ? raw : nullptr);
}
}  // namespace

bool SchemaRegistry::bind(bool create, std::string& error) {
  if (kv_) return true;
  natsStatus s = NATS_OK;
  kv_ = bind_bucket(js_.get(), bucket_, s);
  if (kv_) return true;
  error = fmt::format("schema registry {}: {}", bucket_, nats_error_text(s));
  if (!create) return false;
  kvConfig cfg;
  kvConfig_Init(&cfg);
  cfg.Bucket = bucket_.c_str();
  cfg.Description = "harmonylite schema hashes per node";
  cfg.History = 1;
  cfg.TTL = std::chrono::duration_cast<std::chrono::nanoseconds>(kRegistryTtl).count();
  cfg.StorageType = js_FileStorage;
  cfg.Replicas = std::min(replicas_, 5);
  kvStore* created = nullptr;
  s = js_CreateKeyValue(&created, js_.get(), &cfg);
  if (s == NATS_OK) {
    kv_.reset(created);
    return true;
  }
  error = fmt::format("cannot create schema registry {}: {}", bucket_, nats_error_text(s));
  // Another node may have created it meanwhile (with other settings): use theirs.
  kv_ = bind_bucket(js_.get(), bucket_, s);
  return kv_ != nullptr;
}

bool SchemaRegistry::put(const RegistryEntry& entry, std::string& error) {
  if (!bind(true, error)) return false;
  const std::string key = fmt::format("node-{}", entry.node_id);
  const std::string value = to_json(entry).dump();
  uint64_t rev = 0;
  natsStatus s = kvStore_PutString(&rev, kv_.get(), key.c_str(), value.c_str());
  if (s == NATS_OK) return true;
  error = fmt::format("schema registry {}: put {}: {}", bucket_, key, nats_error_text(s));
  kv_.reset();  // bind again next time (the bucket may have been deleted)
  return false;
}

std::optional<std::vector<RegistryEntry>> SchemaRegistry::list(std::string& error) {
  if (!bind(false, error)) return std::nullopt;
  kvKeysList keys{nullptr, 0};
  kvWatchOptions wo;
  kvWatchOptions_Init(&wo);
  wo.Timeout = 5000;
  natsStatus s = kvStore_Keys(&keys, kv_.get(), &wo);
  std::vector<RegistryEntry> out;
  if (s == NATS_NOT_FOUND) return out;  // an empty bucket
  if (s != NATS_OK) {
    error = fmt::format("schema registry {}: listing keys: {}", bucket_, nats_error_text(s));
    return std::nullopt;
  }
  for (int i = 0; i < keys.Count; ++i) {
    kvEntry* raw = nullptr;
    if (kvStore_Get(&raw, kv_.get(), keys.Keys[i]) != NATS_OK) continue;  // expired meanwhile
    KvEntryPtr e(raw);
    try {
      out.push_back(registry_entry_from_json(nlohmann::json::parse(kvEntry_ValueString(e.get()))));
    } catch (const std::exception& ex) {
      error += fmt::format("{}entry {} is malformed ({})", error.empty() ? "" : "; ", keys.Keys[i],
                           ex.what());
    }
  }
  kvKeysList_Destroy(&keys);
  std::sort(out.begin(), out.end(),
            [](const auto& a, const auto& b) { return a.node_id < b.node_id; });
  return out;
}

// --- commands -------------------------------------------------------------------------------

int run_schema_status(const Config& config) {
  if (access(config.db_path.c_str(), R_OK) != 0)
    throw Error(fmt::format("database {} does not exist or is not readable", config.db_path));
  Db db = Db::open(config.db_path, SQLITE_OPEN_READONLY);
  db.set_busy_timeout(2000);
  const bool installed = db.query_int(
                             "SELECT count(*) FROM sqlite_schema WHERE type='table' AND "
                             "name='__harmony_tables'") > 0;
  std::printf("database %s", config.db_path.c_str());
  if (installed) std::printf(" (node %llu)", static_cast<unsigned long long>(node_id(db)));
  std::printf("\n");
  std::vector<CapturedTable> captured;
  if (installed) captured = captured_tables(db);
  const LocalSchema local =
      LocalSchema::from(captured, recorded_schema_hashes(db), recorded_previous_hashes(db));
  const auto recorded = recorded_schema_hashes(db);
  std::printf("%-24s %-32s %-32s %s\n", "table", "schema hash", "previous hash", "capture");
  std::vector<std::string> not_replicated;
  for (const auto& name : list_tables(db)) {
    if (names::is_reserved(name)) continue;
    const CapturedTable* cap = nullptr;
    for (const auto& t : captured)
      if (same_ident(t.name, name)) cap = &t;
    if (!cap) {
      if (auto why = ineligibility(db, name)) {
        not_replicated.push_back(*why);
        continue;
      }
      std::printf("%-24s %-32s %-32s %s\n", name.c_str(),
                  describe_table(db, name).schema_hash().c_str(), "-",
                  installed ? "not captured yet (the replicator adds it after a schema change)"
                            : "not installed (the replicator installs it at start-up)");
      continue;
    }
    const TableSchemaState* st = local.find(name);
    std::string state = triggers_installed(db, *cap)
                            ? fmt::format("installed, {} pending", pending_changes(db, *cap))
                            : "triggers missing or out of date (the replicator repairs them)";
    std::string lower = name;
    for (auto& c : lower)
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (auto it = recorded.find(lower); it != recorded.end() && it->second != st->hash)
      state += "; changed since the replicator last recorded it";
    std::printf("%-24s %-32s %-32s %s\n", name.c_str(), st->hash.c_str(),
                st->previous.empty() ? "-" : st->previous.front().c_str(), state.c_str());
  }
  for (const auto& why : not_replicated) std::printf("not replicated: %s\n", why.c_str());
  // Application triggers on captured tables and the tables they write (issue 15 case 8): the
  // sound set-ups are named as such so an operator sees the check was made.
  for (const auto& w : app_trigger_writes(db)) {
    if (w.diverges())
      std::printf("warning: %s\n", describe_divergence(w).c_str());
    else
      std::printf("trigger %s on %s writes %s: %s\n", w.trigger.c_str(), w.source.c_str(),
                  w.target.c_str(),
                  w.target_captured ? "guarded by __harmony_mute, replicated (sound)"
                                    : "not replicated, each node fills it locally (sound)");
  }
  return 0;
}

int run_schema_status_cluster(const Config& config) {
  // [nats] credentials and TLS as a node uses them, under this command's name.
  ConnectOptions opts = connect_options(config, 0);
  opts.name = "harmonylite-schema-status";
  if (opts.urls.empty()) {
    // Embedded mode: ask the server of the replicator running on this database.
    auto running = running_replicator(config.db_path);
    if (!running || running->nats_url.empty()) {
      spdlog::error(
          "-schema-status-cluster needs NATS: set [nats] urls, or run it while the replicator "
          "for {} is running (its embedded nats-server is used)",
          config.db_path);
      return 1;
    }
    opts.urls = {running->nats_url};
  }
  auto conn = NatsConnection::connect_once(opts);
  SchemaRegistry registry(conn->get(), registry_bucket(config), config.replication_log.replicas);
  std::string error;
  auto entries = registry.list(error);
  if (!entries) {
    spdlog::error("{}", error);
    return 1;
  }
  if (!error.empty()) spdlog::warn("{}", error);
  std::printf("schema registry %s: %zu node(s)\n", registry_bucket(config).c_str(),
              entries->size());
  for (const auto& e : *entries) {
    std::printf("node %llu (harmonylite %s, updated %s)\n",
                static_cast<unsigned long long>(e.node_id), e.version.c_str(),
                e.updated_at.c_str());
    for (const auto& [t, h] : e.tables) {
      auto p = e.previous.find(t);
      std::printf("  %-24s %s%s\n", t.c_str(), h.c_str(),
                  p == e.previous.end() ? "" : fmt::format("  (previous {})", p->second).c_str());
    }
  }
  const auto report = check_consistency(*entries);
  for (const auto& f : report.findings) std::printf("inconsistent: %s\n", f.c_str());
  std::printf("%s\n", report.consistent
                          ? "consistent: every node has the same schema hash for every table"
                          : "INCONSISTENT");
  return report.consistent ? 0 : 1;
}

}  // namespace harmony
