// load_config: HarmonyLite's keys and defaults, our extra keys, normalisation, unknown-key
// warnings, and ConfigError messages that name the key and the file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "replicator/config/config.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using harmony::test::TempDir;
using harmony::test::write_file;

namespace {

struct Loaded {
  Config cfg;
  std::vector<std::string> warnings;
};

Loaded load_text(const TempDir& dir, const std::string& text,
                 const std::string& name = "node.toml") {
  std::string path = dir.file(name);
  write_file(path, text);
  Loaded l;
  l.cfg = load_config(path, l.warnings);
  return l;
}

// The ConfigError message for `text`, or "" when it loads.
std::string error_for(const TempDir& dir, const std::string& text) {
  std::string path = dir.file("bad.toml");
  write_file(path, text);
  std::vector<std::string> warnings;
  try {
    load_config(path, warnings);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("empty config file gives every default", "[config]") {
  TempDir dir("config");
  auto l = load_text(dir, "");
  const Config& c = l.cfg;
  CHECK(l.warnings.empty());
  CHECK(c.source_path == dir.file("node.toml"));
  CHECK(c.db_path == "/tmp/harmonylite.db");
  CHECK(c.seq_map_path.empty());
  CHECK(c.node_id == 0);
  CHECK(c.publish);
  CHECK(c.replicate);
  CHECK(c.scan_max_changes == 100000);
  CHECK(c.apply_batch_rows == 20000);
  CHECK(c.cleanup_interval_ms == 5000);
  CHECK(c.sleep_timeout_ms == 0);
  CHECK(c.polling_interval_ms == 0);
  CHECK(c.max_clock_drift_ms == 60000);
  CHECK(c.include_tables.empty());
  CHECK(c.exclude_tables.empty());
  CHECK_FALSE(c.capture_existing_rows);

  CHECK(c.replication_log.shards == 1);
  CHECK(c.replication_log.max_entries == 1024);
  CHECK(c.replication_log.replicas == 1);
  CHECK(c.replication_log.compress);
  CHECK_FALSE(c.replication_log.update_existing);
  CHECK(c.replication_log.max_age_ms == 0);
  CHECK(c.replication_log.duplicate_window_ms == 120000);

  CHECK(c.snapshot.enabled);
  CHECK(c.snapshot.interval_ms == 0);
  CHECK(c.snapshot.leader_ttl_ms == 30000);
  CHECK(c.snapshot.store == "nats");
  CHECK(c.snapshot.every_entries == 0);
  CHECK(c.snapshot.nats.replicas == 1);
  CHECK(c.snapshot.nats.bucket.empty());
  CHECK(c.snapshot.s3.endpoint.empty());
  CHECK(c.snapshot.s3.path.empty());
  CHECK(c.snapshot.s3.bucket.empty());
  CHECK_FALSE(c.snapshot.s3.use_ssl);
  CHECK(c.snapshot.s3.access_key.empty());
  CHECK(c.snapshot.s3.secret.empty());
  CHECK(c.snapshot.s3.session_token.empty());
  CHECK(c.snapshot.webdav.url.empty());
  CHECK(c.snapshot.sftp.url.empty());
  CHECK(c.snapshot.file.dir.empty());

  CHECK(c.nats.urls.empty());
  CHECK(c.nats.subject_prefix == "harmonylite-change-log");
  CHECK(c.nats.stream_prefix == "harmonylite-changes");
  CHECK(c.nats.server_config.empty());
  CHECK(c.nats.seed_file.empty());
  CHECK(c.nats.user_name.empty());
  CHECK(c.nats.user_password.empty());
  CHECK(c.nats.ca_file.empty());
  CHECK(c.nats.cert_file.empty());
  CHECK(c.nats.key_file.empty());
  CHECK(c.nats.bind_address == "127.0.0.1:-1");
  CHECK(c.nats.connect_retries == 5);
  CHECK(c.nats.reconnect_wait_seconds == 2);
  CHECK(c.nats.server_binary == "nats-server");
  CHECK(c.nats.store_dir.empty());

  CHECK_FALSE(c.logging.verbose);
  CHECK(c.logging.format == "console");
  CHECK_FALSE(c.prometheus.enable);
  CHECK(c.prometheus.bind == "127.0.0.1:3010");  // ours: loopback (HarmonyLite ":3010")
  CHECK(c.prometheus.namespace_ == "harmonylite");
  CHECK(c.prometheus.subsystem.empty());
  CHECK_FALSE(c.health_check.enable);
  CHECK(c.health_check.bind == "127.0.0.1:8090");  // ours: loopback (HarmonyLite "0.0.0.0:8090")
  CHECK(c.health_check.path == "/health");
  CHECK_FALSE(c.health_check.detailed);  // ours: no details unless configured
}

TEST_CASE("HarmonyLite's node-1 example config loads without warnings", "[config]") {
  TempDir dir("config");
  auto l = load_text(dir, R"(# HarmonyLite examples/node-1-config.toml
seq_map_path="/tmp/harmonylite-1-sm.cbor"
db_path="/tmp/harmonylite-1.db"

[replication_log]
shards=2
max_entries=2048
replicas=1
compress=true

[nats]
user_name="harmonylite"
user_password="secure-password-here"
reconnect_wait_seconds=5
server_config="examples/nats-server-1.conf"

[logging]
verbose=false
format="console"

[prometheus]
enable=true
bind="0.0.0.0:3010"

[health_check]
enable=true
bind="0.0.0.0:8090"
path="/health"
detailed=true

[snapshot]
enabled=true
interval=60000
leader_ttl=30000
)",
                     "node-1-config.toml");
  const Config& c = l.cfg;
  CHECK(l.warnings.empty());
  CHECK(c.seq_map_path == "/tmp/harmonylite-1-sm.cbor");
  CHECK(c.db_path == "/tmp/harmonylite-1.db");
  CHECK(c.replication_log.shards == 2);
  CHECK(c.replication_log.max_entries == 2048);
  CHECK(c.replication_log.replicas == 1);
  CHECK(c.replication_log.compress);
  CHECK(c.nats.user_name == "harmonylite");
  CHECK(c.nats.user_password == "secure-password-here");
  CHECK(c.nats.reconnect_wait_seconds == 5);
  CHECK(c.nats.server_config == "examples/nats-server-1.conf");  // relative path kept as written
  CHECK_FALSE(c.logging.verbose);
  CHECK(c.logging.format == "console");
  CHECK(c.prometheus.enable);
  CHECK(c.prometheus.bind == "0.0.0.0:3010");
  CHECK(c.health_check.enable);
  CHECK(c.health_check.bind == "0.0.0.0:8090");
  CHECK(c.health_check.path == "/health");
  CHECK(c.health_check.detailed);
  CHECK(c.snapshot.enabled);
  CHECK(c.snapshot.interval_ms == 60000);
  CHECK(c.snapshot.leader_ttl_ms == 30000);
  // Untouched keys keep their defaults.
  CHECK(c.node_id == 0);
  CHECK(c.nats.urls.empty());
  CHECK(c.snapshot.store == "nats");
}

TEST_CASE("every key maps to its field", "[config]") {
  TempDir dir("config");
  auto l = load_text(dir, R"(
db_path = "data/app.db"
seq_map_path = "/tmp/sm.cbor"
node_id = 9223372036854775807
publish = false
replicate = false
scan_max_changes = 512
cleanup_interval = 7000
sleep_timeout = 15000
polling_interval = 250
max_clock_drift = 5000
include_tables = ["Books", "Authors"]
exclude_tables = ["sessions"]
capture_existing_rows = true

[replication_log]
shards = 8
max_entries = 4096
replicas = 3
compress = false
update_existing = true
max_age = 86400000
duplicate_window = 60000

[snapshot]
enabled = false
interval = 3600000
leader_ttl = 45000
store = "file"
every_entries = 10000

[snapshot.nats]
replicas = 2
bucket = "my-snapshots"

[snapshot.s3]
endpoint = "s3.example.com"
path = "snapshots/node"
bucket = "backups"
use_ssl = true
access_key = "AK"
secret = "SK"
session_token = "ST"

[snapshot.webdav]
url = "https://dav.example.com/?dir=/snap&login=u&secret=p"

[snapshot.sftp]
url = "sftp://u:p@host:22/snap"

[snapshot.file]
dir = "snapshots"

[nats]
urls = ["nats://a:4222", "nats://b:4222"]
subject_prefix = "app.change-log"
stream_prefix = "app-changes"
server_config = "conf/nats.conf"
seed_file = "keys/seed.nk"
user_name = "u"
user_password = "p"
ca_file = "tls/ca.pem"
cert_file = "tls/cert.pem"
key_file = "tls/key.pem"
bind_address = "0.0.0.0:4222"
connect_retries = 10
reconnect_wait_seconds = 3
server_binary = "/usr/sbin/nats-server"
store_dir = "js"

[logging]
verbose = true
format = "json"

[prometheus]
enable = true
bind = "127.0.0.1:9100"
namespace = "hl"
subsystem = "node"

[health_check]
enable = true
bind = ":8091"
path = "/healthz"
detailed = false
)");
  const Config& c = l.cfg;
  CHECK(l.warnings.empty());
  CHECK(c.db_path == "data/app.db");
  CHECK(c.seq_map_path == "/tmp/sm.cbor");
  CHECK(c.node_id == 9223372036854775807ULL);
  CHECK_FALSE(c.publish);
  CHECK_FALSE(c.replicate);
  CHECK(c.scan_max_changes == 512);
  CHECK(c.cleanup_interval_ms == 7000);
  CHECK(c.sleep_timeout_ms == 15000);
  CHECK(c.polling_interval_ms == 250);
  CHECK(c.max_clock_drift_ms == 5000);
  CHECK(c.include_tables == std::vector<std::string>{"Books", "Authors"});
  CHECK(c.exclude_tables == std::vector<std::string>{"sessions"});
  CHECK(c.capture_existing_rows);

  CHECK(c.replication_log.shards == 8);
  CHECK(c.replication_log.max_entries == 4096);
  CHECK(c.replication_log.replicas == 3);
  CHECK_FALSE(c.replication_log.compress);
  CHECK(c.replication_log.update_existing);
  CHECK(c.replication_log.max_age_ms == 86400000);
  CHECK(c.replication_log.duplicate_window_ms == 60000);

  CHECK_FALSE(c.snapshot.enabled);
  CHECK(c.snapshot.interval_ms == 3600000);
  CHECK(c.snapshot.leader_ttl_ms == 45000);
  CHECK(c.snapshot.store == "file");
  CHECK(c.snapshot.every_entries == 10000);
  CHECK(c.snapshot.nats.replicas == 2);
  CHECK(c.snapshot.nats.bucket == "my-snapshots");
  CHECK(c.snapshot.s3.endpoint == "s3.example.com");
  CHECK(c.snapshot.s3.path == "snapshots/node");
  CHECK(c.snapshot.s3.bucket == "backups");
  CHECK(c.snapshot.s3.use_ssl);
  CHECK(c.snapshot.s3.access_key == "AK");
  CHECK(c.snapshot.s3.secret == "SK");
  CHECK(c.snapshot.s3.session_token == "ST");
  CHECK(c.snapshot.webdav.url == "https://dav.example.com/?dir=/snap&login=u&secret=p");
  CHECK(c.snapshot.sftp.url == "sftp://u:p@host:22/snap");
  CHECK(c.snapshot.file.dir == "snapshots");

  CHECK(c.nats.urls == std::vector<std::string>{"nats://a:4222", "nats://b:4222"});
  CHECK(c.nats.subject_prefix == "app.change-log");
  CHECK(c.nats.stream_prefix == "app-changes");
  CHECK(c.nats.server_config == "conf/nats.conf");
  CHECK(c.nats.seed_file == "keys/seed.nk");
  CHECK(c.nats.user_name == "u");
  CHECK(c.nats.user_password == "p");
  CHECK(c.nats.ca_file == "tls/ca.pem");
  CHECK(c.nats.cert_file == "tls/cert.pem");
  CHECK(c.nats.key_file == "tls/key.pem");
  CHECK(c.nats.bind_address == "0.0.0.0:4222");
  CHECK(c.nats.connect_retries == 10);
  CHECK(c.nats.reconnect_wait_seconds == 3);
  CHECK(c.nats.server_binary == "/usr/sbin/nats-server");
  CHECK(c.nats.store_dir == "js");

  CHECK(c.logging.verbose);
  CHECK(c.logging.format == "json");
  CHECK(c.prometheus.enable);
  CHECK(c.prometheus.bind == "127.0.0.1:9100");
  CHECK(c.prometheus.namespace_ == "hl");
  CHECK(c.prometheus.subsystem == "node");
  CHECK(c.health_check.enable);
  CHECK(c.health_check.bind == ":8091");
  CHECK(c.health_check.path == "/healthz");
  CHECK_FALSE(c.health_check.detailed);
}

TEST_CASE("normalisation: leader_ttl 0 and replicas below 1 or above 5", "[config]") {
  TempDir dir("config");
  CHECK(load_text(dir, "[snapshot]\nleader_ttl = 0\n").cfg.snapshot.leader_ttl_ms == 30000);
  CHECK(load_text(dir, "[replication_log]\nshards = 4\nreplicas = 0\n")
            .cfg.replication_log.replicas == 3);
  CHECK(load_text(dir, "[replication_log]\nshards = 1\nreplicas = -1\n")
            .cfg.replication_log.replicas == 1);
  CHECK(load_text(dir, "[replication_log]\nshards = 64\nreplicas = 0\n")
            .cfg.replication_log.replicas == 5);
  CHECK(load_text(dir, "[replication_log]\nreplicas = 9\n").cfg.replication_log.replicas == 5);
  CHECK(load_text(dir, "[snapshot.nats]\nreplicas = 0\n").cfg.snapshot.nats.replicas == 1);
  CHECK(load_text(dir, "[snapshot.nats]\nreplicas = 7\n").cfg.snapshot.nats.replicas == 5);
}

TEST_CASE("inline tables and dotted keys work like sections", "[config]") {
  TempDir dir("config");
  auto l = load_text(dir, "replication_log = { shards = 3 }\nsnapshot.nats.bucket = \"b\"\n");
  CHECK(l.warnings.empty());
  CHECK(l.cfg.replication_log.shards == 3);
  CHECK(l.cfg.snapshot.nats.bucket == "b");
}

TEST_CASE("unknown keys are warnings naming key and file, never errors", "[config]") {
  TempDir dir("config");
  auto l = load_text(dir, R"(
db_path = "/tmp/x.db"
colour = "blue"

[replication_log]
shards = 2
sharding = 3

[snapshot]
bogus = 1

[snapshot.nats]
extra = true

[snapshot.cloud]
url = "x"

[nats]
url = "nats://oops:4222"

[mystery]
a = 1
)");
  std::string file = dir.file("node.toml");
  CHECK(l.cfg.db_path == "/tmp/x.db");
  CHECK(l.cfg.replication_log.shards == 2);
  std::vector<std::string> expected = {
      "unknown key 'colour' in " + file + " (ignored)",
      "unknown key 'mystery' in " + file + " (ignored)",
      "unknown key 'replication_log.sharding' in " + file + " (ignored)",
      "unknown key 'snapshot.bogus' in " + file + " (ignored)",
      "unknown key 'snapshot.cloud' in " + file + " (ignored)",
      "unknown key 'snapshot.nats.extra' in " + file + " (ignored)",
      "unknown key 'nats.url' in " + file + " (ignored)",
  };
  CHECK(l.warnings.size() == expected.size());
  for (const auto& w : expected) {
    INFO(w);
    CHECK(std::find(l.warnings.begin(), l.warnings.end(), w) != l.warnings.end());
  }
}

TEST_CASE("wrong types and bad values throw ConfigError naming key and file", "[config]") {
  TempDir dir("config");
  std::string file = dir.file("bad.toml");
  struct Case {
    std::string toml;
    std::string key;       // must appear in the message
    std::string fragment;  // and so must this
  };
  std::vector<Case> cases = {
      {"[replication_log]\nshards = \"two\"\n", "replication_log.shards",
       "must be an integer between 1 and 64 (got \"two\")"},
      {"[replication_log]\nshards = 0\n", "replication_log.shards", "(got 0)"},
      {"[replication_log]\nshards = 65\n", "replication_log.shards", "between 1 and 64"},
      {"[replication_log]\nshards = 2.0\n", "replication_log.shards", "integer"},
      {"[replication_log]\nmax_entries = 0\n", "replication_log.max_entries", "positive integer"},
      {"[replication_log]\nreplicas = 3000000000\n", "replication_log.replicas",
       "(got 3000000000)"},
      {"[replication_log]\ncompress = \"yes\"\n", "replication_log.compress",
       "must be true or false"},
      {"[replication_log]\nmax_age = -1\n", "replication_log.max_age", "non-negative"},
      {"[replication_log]\nduplicate_window = -5\n", "replication_log.duplicate_window",
       "non-negative"},
      {"cleanup_interval = -1\n", "cleanup_interval", "non-negative integer (milliseconds)"},
      {"sleep_timeout = -1\n", "sleep_timeout", "non-negative"},
      {"polling_interval = \"1s\"\n", "polling_interval", "(got \"1s\")"},
      {"max_clock_drift = 0\n", "max_clock_drift", "between 1 and 86400000 (milliseconds)"},
      {"max_clock_drift = 86400001\n", "max_clock_drift", "(got 86400001)"},
      {"max_clock_drift = \"60s\"\n", "max_clock_drift", "(got \"60s\")"},
      {"[snapshot]\ninterval = -60000\n", "snapshot.interval", "non-negative"},
      {"[snapshot]\nleader_ttl = -1\n", "snapshot.leader_ttl", "non-negative"},
      {"[snapshot]\nstore = \"ftp\"\n", "snapshot.store",
       "must be \"nats\", \"file\", \"s3\", \"webdav\" or \"sftp\" (got \"ftp\")"},
      {"[snapshot]\nevery_entries = -1\n", "snapshot.every_entries", "non-negative"},
      {"[snapshot]\nenabled = 1\n", "snapshot.enabled", "true or false"},
      {"[snapshot.nats]\nbucket = \"a b\"\n", "snapshot.nats.bucket", "letters, digits"},
      {"[snapshot.s3]\nuse_ssl = \"true\"\n", "snapshot.s3.use_ssl", "true or false"},
      {"[snapshot.file]\ndir = 5\n", "snapshot.file.dir", "must be a string (got 5)"},
      {"[logging]\nformat = \"xml\"\n", "logging.format",
       "must be \"console\" or \"json\" (got \"xml\")"},
      {"node_id = -1\n", "node_id", "must be a non-negative integer (got -1)"},
      {"node_id = \"7\"\n", "node_id", "(got \"7\")"},
      {"scan_max_changes = 0\n", "scan_max_changes", "positive integer"},
      {"apply_batch_rows = 0\n", "apply_batch_rows", "positive integer"},
      {"db_path = \"\"\n", "db_path", "must not be empty"},
      {"db_path = 42\n", "db_path", "must be a string"},
      {"publish = \"false\"\n", "publish", "true or false"},
      {"[nats]\nbind_address = \"localhost\"\n", "nats.bind_address", "host:port"},
      {"[nats]\nbind_address = \"0.0.0.0:99999\"\n", "nats.bind_address", "host:port"},
      {"[nats]\nbind_address = \"host:abc\"\n", "nats.bind_address", "host:port"},
      {"[nats]\nurls = \"nats://a:4222\"\n", "nats.urls", "array of strings"},
      {"[nats]\nurls = [\"nats://a:4222\", 5]\n", "nats.urls", "array of strings"},
      {"[nats]\nconnect_retries = 3000000000\n", "nats.connect_retries",
       "between 0 and 2147483647 (got 3000000000)"},
      {"[nats]\nreconnect_wait_seconds = -2\n", "nats.reconnect_wait_seconds", "(got -2)"},
      {"[nats]\nstream_prefix = \"bad.name\"\n", "nats.stream_prefix", "letters, digits"},
      {"[nats]\nsubject_prefix = \"a.*\"\n", "nats.subject_prefix", "subject prefix"},
      {"[nats]\nserver_binary = \"\"\n", "nats.server_binary", "must not be empty"},
      {"[prometheus]\nbind = \"3010\"\n", "prometheus.bind", "host:port"},
      {"[prometheus]\nnamespace = 1\n", "prometheus.namespace", "must be a string"},
      {"[health_check]\npath = \"health\"\n", "health_check.path", "must start with '/'"},
      {"[health_check]\ndetailed = \"no\"\n", "health_check.detailed", "true or false"},
      {"include_tables = \"Books\"\n", "include_tables", "array of strings"},
      {"exclude_tables = [\"\"]\n", "exclude_tables", "empty strings"},
      {"include_tables = [\"Books\"]\nexclude_tables = [\"books\"]\n", "include_tables",
       "exclude_tables both name table \"Books\""},
      {"capture_existing_rows = \"yes\"\n", "capture_existing_rows", "true or false"},
      {"replication_log = 5\n", "replication_log", "must be a table (got 5)"},
      {"[[snapshot]]\nenabled = true\n", "snapshot", "must be a table"},
      {"[snapshot]\nnats = \"x\"\n", "snapshot.nats", "must be a table"},
  };
  for (const auto& c : cases) {
    INFO(c.toml);
    std::string msg = error_for(dir, c.toml);
    INFO(msg);
    CHECK(contains(msg, "config error in " + file + ": "));
    CHECK(contains(msg, c.key));
    CHECK(contains(msg, c.fragment));
  }
  // The exact form of the example in the contract.
  CHECK(error_for(dir, "[replication_log]\nshards = \"two\"\n") ==
        "config error in " + file +
            ": replication_log.shards must be an integer between 1 and 64 (got \"two\")");
}

TEST_CASE("TOML syntax errors name file, line and column", "[config]") {
  TempDir dir("config");
  std::string file = dir.file("bad.toml");
  std::string msg = error_for(dir, "db_path = \"/tmp/a.db\"\n[nats]\nurls = = 2\n");
  INFO(msg);
  CHECK(contains(msg, "config error in " + file));
  CHECK(contains(msg, "line 3, column"));
  CHECK(contains(msg, "urls = = 2"));

  // A node id beyond 2^63-1 cannot be a TOML integer: a syntax error that shows the key's line.
  msg = error_for(dir, "node_id = 9223372036854775808\n");
  INFO(msg);
  CHECK(contains(msg, "config error in " + file));
  CHECK(contains(msg, "line 1, column"));
  CHECK(contains(msg, "node_id"));

  msg = error_for(dir, "a = 1\na = 2\n");
  CHECK(contains(msg, "line 2"));
  msg = error_for(dir, "[nats]\nurls = [\"a\"\n");
  CHECK(contains(msg, file));
  CHECK(contains(msg, "line"));
}

TEST_CASE("missing or unreadable config file is a ConfigError", "[config]") {
  TempDir dir("config");
  std::vector<std::string> warnings;
  std::string missing = dir.file("nope.toml");
  try {
    load_config(missing, warnings);
    FAIL("no error for a missing file");
  } catch (const ConfigError& e) {
    CHECK(contains(e.what(), missing));
    CHECK(contains(e.what(), "not found"));
  }
  try {
    load_config(dir.path(), warnings);
    FAIL("no error for a directory");
  } catch (const ConfigError& e) {
    CHECK(contains(e.what(), dir.path()));
    CHECK(contains(e.what(), "directory"));
  }
}

TEST_CASE("relative paths are kept as written", "[config]") {
  TempDir dir("config");
  auto l = load_text(dir, R"(
db_path = "./db/node.db"
[nats]
server_config = "examples/nats-server-1.conf"
seed_file = "../seed.nk"
ca_file = "ca.pem"
cert_file = "cert.pem"
key_file = "key.pem"
store_dir = "js/store"
[snapshot.file]
dir = "snaps"
)");
  CHECK(l.cfg.db_path == "./db/node.db");
  CHECK(l.cfg.nats.server_config == "examples/nats-server-1.conf");
  CHECK(l.cfg.nats.seed_file == "../seed.nk");
  CHECK(l.cfg.nats.ca_file == "ca.pem");
  CHECK(l.cfg.nats.cert_file == "cert.pem");
  CHECK(l.cfg.nats.key_file == "key.pem");
  CHECK(l.cfg.nats.store_dir == "js/store");
  CHECK(l.cfg.snapshot.file.dir == "snaps");
}

TEST_CASE("host:port forms accepted for bind addresses", "[config]") {
  TempDir dir("config");
  for (std::string addr : {":-1", "127.0.0.1:-1", "0.0.0.0:4222", "[::1]:4222", "localhost:0"}) {
    INFO(addr);
    CHECK(load_text(dir, "[nats]\nbind_address = \"" + addr + "\"\n").cfg.nats.bind_address ==
          addr);
  }
  // -1 (random port) only makes sense for the embedded server's client port.
  CHECK_FALSE(error_for(dir, "[prometheus]\nbind = \":-1\"\n").empty());
}

TEST_CASE("route credentials and the embedded server's TLS keys", "[config]") {
  TempDir dir("config");
  auto l = load_text(dir,
                     "[nats]\ncluster_user = \"ru\"\ncluster_password = \"rp\"\n"
                     "tls_ca_file = \"ca.pem\"\ntls_cert_file = \"n.pem\"\n"
                     "tls_key_file = \"n-key.pem\"\ntls_verify = true\n");
  CHECK(l.warnings.empty());
  CHECK(l.cfg.nats.cluster_user == "ru");
  CHECK(l.cfg.nats.cluster_password == "rp");
  CHECK_FALSE(l.cfg.nats.cluster_insecure);
  CHECK(l.cfg.nats.tls_cert_file == "n.pem");
  CHECK(l.cfg.nats.tls_verify);
  CHECK(load_text(dir, "[nats]\ncluster_insecure = true\n").cfg.nats.cluster_insecure);
  // One without the other is an error naming the key; the password itself is never shown.
  CHECK(contains(error_for(dir, "[nats]\ncluster_user = \"ru\"\n"), "nats.cluster_user"));
  const std::string msg = error_for(dir, "[nats]\ncluster_password = \"s3cret\"\n");
  CHECK(contains(msg, "nats.cluster_password needs cluster_user"));
  CHECK_FALSE(contains(msg, "s3cret"));
  CHECK(contains(error_for(dir, "[nats]\ntls_cert_file = \"n.pem\"\n"), "nats.tls_cert_file"));
  CHECK(contains(error_for(dir, "[nats]\ntls_verify = true\n"), "nats.tls_verify"));
}
