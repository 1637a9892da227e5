// Integration-test cluster of harmonylite processes (see cluster.hpp).
#include "tests/support/cluster.hpp"

#include <climits>
#include <cstdio>
#include <filesystem>
#include <optional>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "replicator/common/address.hpp"
#include "replicator/config/config.hpp"
#include "shared/capture.hpp"
#include "shared/content_digest.hpp"
#include "shared/names.hpp"
#include "shared/outbox.hpp"
#include "shared/sqlite_db.hpp"
#include "shared/status.hpp"
#include "tests/support/http.hpp"

namespace harmony::test {

namespace {

constexpr const char* kStartMarker = "===== start =====";
// Readiness is polled: often enough that a test does not wait long past the moment, rarely
// enough that a 2-core machine running several clusters is not kept busy answering.
constexpr auto kReadyPoll = 100ms;

// Where and how to ask node's health endpoint whether it replicates, read from its config as
// harmonylite reads it; nullopt when the endpoint cannot tell (see wait_ready).
struct HealthProbe {
  int port = 0;
  std::string path;
  size_t streams = 0;  // one consumer per shard
};

std::optional<HealthProbe> health_probe(const std::string& config_path) {
  Config config;
  try {
    std::vector<std::string> warnings;
    config = load_config(config_path, warnings);
  } catch (const std::exception&) {  // ConfigError included
    return std::nullopt;  // a test of a bad config: harmonylite itself will say what is wrong
  }
  const auto& health = config.health_check;
  if (!health.enable || !health.detailed || !config.replicate) return std::nullopt;
  const auto address = parse_host_port(health.bind);
  if (!address || address->port <= 0) return std::nullopt;
  const std::string& host = address->host;
  if (!host.empty() && host != "0.0.0.0" && host != "127.0.0.1" && host != "localhost")
    return std::nullopt;  // only loopback IPv4 is asked (http_get)
  return HealthProbe{address->port, health.path,
                     static_cast<size_t>(config.replication_log.shards)};
}

bool health_says_ready(const HealthProbe& probe) {
  const HttpResult r = http_get(probe.port, probe.path);
  if (r.status != 200) return false;
  const auto body = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (!body.is_object() || !body.contains("streams") || !body["streams"].is_object()) return false;
  return body["streams"].size() >= probe.streams;
}

}  // namespace

TestCluster::TestCluster(ClusterOptions options) : options_(std::move(options)), dir_("cluster") {
  nodes_.resize(static_cast<size_t>(options_.nodes));
  for (int i = 0; i < size(); ++i) {
    Node& n = nodes_[static_cast<size_t>(i)];
    if (options_.separate_dirs) {
      std::string sub = dir_.file(fmt::format("node-{}", i + 1));
      std::filesystem::create_directories(sub);
      n.db = sub + "/data.db";
    } else {
      n.db = dir_.file(fmt::format("node-{}.db", i + 1));
    }
    n.config = dir_.file(fmt::format("node-{}.toml", i + 1));
    n.log = dir_.file(fmt::format("node-{}.log", i + 1));
    n.cluster_port = free_port();
    n.health_port = free_port();
    Db db = Db::open(n.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL;");
    db.exec(options_.schema);
    write_config(i);
  }
}

TestCluster::~TestCluster() {
  for (int i = 0; i < size(); ++i)
    if (nodes_[static_cast<size_t>(i)].process) stop(i);
}

void TestCluster::write_config(int i) {
  Node& n = nodes_.at(static_cast<size_t>(i));
  std::string nats =
      options_.external_nats_url.empty()
          ? fmt::format("store_dir = \"{}\"\n", dir_.file(fmt::format("nats-{}", i + 1)))
          : fmt::format("urls = [\"{}\"]\n", options_.external_nats_url);
  // Clustered nodes need route credentials (harmonylite refuses routes without them), unless
  // the test gives its own.
  if (options_.external_nats_url.empty() && size() > 1 &&
      options_.nats_extra.find("cluster_user") == std::string::npos &&
      options_.nats_extra.find("cluster_insecure") == std::string::npos)
    nats += "cluster_user = \"test\"\ncluster_password = \"test-routes\"\n";
  std::string toml = fmt::format(
      "db_path = \"{}\"\nnode_id = {}\n{}\n{}\n"
      "[replication_log]\nshards = {}\nreplicas = {}\nmax_entries = {}\ncompress = true\n"
      "[nats]\n{}reconnect_wait_seconds = 1\n{}\n"
      "[logging]\nverbose = {}\nformat = \"{}\"\n{}",
      n.db, i + 1, n.top_level_extra, options_.extra_config, options_.shards, options_.replicas,
      options_.max_entries, nats, options_.nats_extra, options_.verbose ? "true" : "false",
      options_.log_format, n.sections);
  // Where the test sets its own [health_check] a second table would be a TOML error: the test's
  // endpoint is used for readiness when it can tell (wait_ready).
  const bool own_health = n.sections.find("[health_check]") != std::string::npos;
  if (!own_health)
    toml += fmt::format(
        "[health_check]\nenable = true\nbind = \"127.0.0.1:{}\"\npath = \"/health\"\n"
        "detailed = true\n",
        n.health_port);
  write_file(n.config, toml);
}

void TestCluster::set_node_config(int i, const std::string& top_level_extra) {
  nodes_.at(static_cast<size_t>(i)).top_level_extra = top_level_extra;
  write_config(i);
}

void TestCluster::set_node_sections(int i, const std::string& sections) {
  nodes_.at(static_cast<size_t>(i)).sections = sections;
  write_config(i);
}

void TestCluster::start(int i, const std::vector<std::string>& extra_flags,
                        const std::map<std::string, std::string>& env) {
  Node& n = nodes_.at(static_cast<size_t>(i));
  std::vector<std::string> argv = {options_.binary.empty() ? harmonylite_path() : options_.binary,
                                   "-config", n.config};
  // A lone clustered server waits for routes forever: cluster only when there are peers.
  if (options_.external_nats_url.empty() && size() > 1) {
    argv.push_back("-cluster-addr");
    argv.push_back(fmt::format("127.0.0.1:{}", n.cluster_port));
    std::string peers;
    for (int j = 0; j < size(); ++j) {
      if (j == i) continue;
      if (!peers.empty()) peers += ",";
      peers += fmt::format("{}:{}/", options_.dns_peers ? "dns://localhost" : "nats://127.0.0.1",
                           nodes_[static_cast<size_t>(j)].cluster_port);
    }
    if (!peers.empty()) {
      argv.push_back("-cluster-peers");
      argv.push_back(peers);
    }
  }
  for (const auto& f : extra_flags) argv.push_back(f);
  write_file(n.log, read_file(n.log) + "\n" + kStartMarker + "\n");
  n.process = std::make_unique<Process>(argv, n.log, env);
}

void TestCluster::start_all() {
  for (int i = 0; i < size(); ++i) start(i);
}

int TestCluster::stop(int i) {
  auto& p = nodes_.at(static_cast<size_t>(i)).process;
  if (!p) return 0;
  int rc = p->stop(20s);
  if (rc == INT_MIN) p->kill9();
  p.reset();
  return rc;
}

void TestCluster::kill9(int i) {
  auto& p = nodes_.at(static_cast<size_t>(i)).process;
  if (p) p->kill9();
  p.reset();
}

bool TestCluster::running(int i) {
  auto& p = nodes_.at(static_cast<size_t>(i)).process;
  return p && p->running();
}

std::string TestCluster::log(int i) const {
  return read_file(nodes_.at(static_cast<size_t>(i)).log);
}

int TestCluster::health_port(int i) const {
  const Node& n = nodes_.at(static_cast<size_t>(i));
  return n.sections.find("[health_check]") == std::string::npos ? n.health_port : 0;
}

bool TestCluster::logged_ready(int i) const {
  std::string l = log(i);
  auto start = l.rfind(kStartMarker);
  return l.find("is replicating", start == std::string::npos ? 0 : start) != std::string::npos;
}

bool TestCluster::wait_ready(int i, std::chrono::milliseconds timeout) {
  const auto probe = health_probe(config(i));
  // A node that exited answers nothing: stop asking at once.
  const bool ready = probe ? wait_until([&] { return !running(i) || health_says_ready(*probe); },
                                        timeout, kReadyPoll) &&
                                 running(i)
                           : wait_until([&] { return logged_ready(i); }, timeout, kReadyPoll);
  // Most tests REQUIRE readiness before they attach the logs: say here why the node is not ready.
  if (!ready)
    std::fprintf(stderr, "node %d not ready (%s); its log:\n%s\n", i + 1,
                 running(i) ? "still running" : "exited", log(i).c_str());
  return ready;
}

std::string TestCluster::checksum(int i) const {
  Db db = Db::open(this->db(i), SQLITE_OPEN_READONLY);
  db.set_busy_timeout(2000);
  std::string sum;
  for (const auto& name : list_tables(db))
    if (!names::is_reserved(name)) sum += name + ":" + table_checksum(db, name) + ";";
  return sum;
}

int64_t TestCluster::pending(int i) const {
  Db db = Db::open(this->db(i), SQLITE_OPEN_READONLY);
  db.set_busy_timeout(2000);
  return total_pending(db, captured_tables(db));
}

int64_t TestCluster::query_int(int i, const std::string& sql) const {
  Db db = Db::open(this->db(i), SQLITE_OPEN_READONLY);
  db.set_busy_timeout(2000);
  return db.query_int(sql, -1);
}

std::string TestCluster::query_text(int i, const std::string& sql) const {
  Db db = Db::open(this->db(i), SQLITE_OPEN_READONLY);
  db.set_busy_timeout(2000);
  auto v = db.query_value(sql);
  if (!v) return "";
  if (auto t = std::get_if<Text>(&*v)) return t->bytes;
  if (auto n = std::get_if<int64_t>(&*v)) return std::to_string(*n);
  return "";
}

void TestCluster::exec(int i, const std::string& sql) const {
  if (options_.app_connections) {
    auto& app = nodes_.at(static_cast<size_t>(i)).app;
    if (!app) {
      app = std::make_shared<Db>(Db::open(db(i)));
      app->set_busy_timeout(5000);
    }
    try {
      app->exec(sql);
    } catch (const std::exception& e) {
      throw std::runtime_error(
          fmt::format("app connection failed on node {}: {}", i + 1, e.what()));
    }
    return;
  }
  auto r = sqlite_shell(db(i), sql);
  if (r.exit_code != 0)
    throw std::runtime_error(fmt::format("sqlite3 failed on node {}: {}", i + 1, r.output));
}

bool TestCluster::wait_converged(std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        try {
          std::string first;
          for (int i = 0; i < size(); ++i) {
            if (!nodes_[static_cast<size_t>(i)].process) continue;
            if (pending(i) != 0) return false;
            std::string c = checksum(i);
            if (first.empty())
              first = c;
            else if (c != first)
              return false;
          }
          return true;
        } catch (const std::exception&) {
          return false;  // a database busy for a moment: try again
        }
      },
      timeout, 200ms);
}

std::string TestCluster::all_logs() const {
  std::string out;
  for (int i = 0; i < size(); ++i) out += fmt::format("----- node {} -----\n{}\n", i + 1, log(i));
  return out;
}

std::unique_ptr<Process> start_external_nats(const TempDir& dir, int port) {
  auto p = std::make_unique<Process>(
      std::vector<std::string>{"nats-server", "-js", "-sd", dir.file("js"), "-a", "127.0.0.1", "-p",
                               std::to_string(port)},
      dir.file("nats.log"));
  if (!wait_until(
          [&] {
            return read_file(dir.file("nats.log")).find("Server is ready") != std::string::npos;
          },
          std::chrono::seconds(10)))
    throw std::runtime_error("nats-server did not start:\n" + read_file(dir.file("nats.log")));
  return p;
}

std::string stored_digest_text(const TestCluster& c, int i, const std::string& table) {
  return c.query_text(
      i, fmt::format("SELECT group_concat(chunk || ':' || hex(hashes), ',') FROM (SELECT d.chunk, "
                     "d.hashes FROM __harmony_digest_chunks d JOIN __harmony_tables t ON t.id = "
                     "d.tbl WHERE t.name = '{}' AND d.hashes != zeroblob({}) ORDER BY d.chunk)",
                     table, kDigestChunkBuckets * 8));
}

}  // namespace harmony::test
