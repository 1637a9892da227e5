// Replicator configuration: HarmonyLite's TOML keys and defaults plus ours
// (docs/configuration.md).
// load_config() reads a file; apply_flags() puts command-line values on top. Units are in the
// field names; defaults are HarmonyLite's unless a comment says why ours differ.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "replicator/common/capture_sync.hpp"
#include "shared/conflict_log.hpp"
#include "shared/dead_letters.hpp"
#include "shared/error.hpp"
#include "shared/held.hpp"
#include "shared/hlc.hpp"

namespace harmony {

struct ReplicationLogConfig {
  int shards = 1;
  int64_t max_entries = 1024;  // JetStream MaxMsgs per shard stream
  int replicas = 1;            // < 1 means shards/2 + 1 (HarmonyLite rule), capped at 5
  bool compress = true;
  bool update_existing = false;  // update an existing stream whose config differs
  int64_t max_age_ms = 0;        // ours: optional age limit (0 = none); HarmonyLite had none
  int64_t duplicate_window_ms = 120000;  // ours: JetStream dedup window for Nats-Msg-Id
  // ours: check what was read against the stream leader's copy (replicator/receive/
  // stream_audit.hpp); false = no leader reads at all, anti-entropy alone repairs what a
  // diverged stream replica served (docs/anti-entropy.md "Stream audit and anti-entropy")
  bool stream_audit = true;
};

struct SnapshotNatsConfig {
  int replicas = 1;
  std::string bucket;  // "" = <stream_prefix>-snapshot-store
};
struct SnapshotS3Config {
  // Empty access_key and secret: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN
  // from the environment, else anonymous (HarmonyLite's order).
  std::string endpoint, path, bucket, access_key, secret, session_token;
  bool use_ssl = false;
  std::string region = "us-east-1";  // ours: SigV4 signs for a region; HarmonyLite had none
};
struct SnapshotWebdavConfig {
  std::string url;
};
struct SnapshotSftpConfig {
  std::string url;  // sftp://user:password@host:port/path
  // ours: host keys are checked against this file ("" = ~/.ssh/known_hosts); unknown or
  // changed keys are refused unless insecure_ignore_host_key (HarmonyLite never checked).
  std::string known_hosts;
  bool insecure_ignore_host_key = false;
  std::string key_file;  // ours: private key for public-key authentication
};
struct SnapshotFileConfig {  // ours: store = "file"
  std::string dir;
};

struct SnapshotConfig {
  bool enabled = true;
  int64_t interval_ms = 0;        // 0 = no periodic snapshots
  int64_t leader_ttl_ms = 30000;  // 0 in the file means 30000 (HarmonyLite)
  std::string store = "nats";     // nats | file | s3 | webdav | sftp
  int64_t every_entries = 0;      // ours: also snapshot after this many published entries (0 = off)
  SnapshotNatsConfig nats;
  SnapshotS3Config s3;
  SnapshotWebdavConfig webdav;
  SnapshotSftpConfig sftp;
  SnapshotFileConfig file;
};

struct NatsConfig {
  std::vector<std::string> urls;  // empty = start an embedded nats-server
  std::string subject_prefix = "harmonylite-change-log";
  std::string stream_prefix = "harmonylite-changes";
  std::string server_config;  // nats-server config file for the embedded server
  std::string seed_file;      // nkey seed file
  std::string user_name;
  std::string user_password;
  std::string ca_file, cert_file, key_file;
  std::string bind_address = "127.0.0.1:-1";  // ours: loopback by default (HarmonyLite: ":-1")
  int connect_retries = 5;  // initial connect attempts before reporting; we never give up
  int reconnect_wait_seconds = 2;
  std::string server_binary = "nats-server";  // ours: path of the embedded server binary
  std::string store_dir;  // ours: embedded JetStream store ("" = next to the database)
  // ours: file holding the cluster key (hex, >= 32 bytes, mode 0600) that tags and checks every
  // replication message ("" = messages are not authenticated); see
  // replicator/wire/message_auth.hpp.
  std::string cluster_key_file;
  std::string cluster_key_mode = "verify";  // verify | sign-only (while rolling the key out)
  // ours: the embedded server's cluster routes require these (docs/configuration.md "Cluster
  // routes"); when empty, the -cluster-peers URLs' user:password is used instead
  std::string cluster_user, cluster_password;
  // ours: routes without any credentials are refused unless this is set (anyone who reaches
  // -cluster-addr could then join the cluster and write into every database)
  bool cluster_insecure = false;
  // ours: TLS of the embedded server, its client port and its routes (one certificate for both;
  // routes always verify the peer's certificate against tls_ca_file)
  std::string tls_ca_file, tls_cert_file, tls_key_file;
  bool tls_verify = false;  // the client port also requires client certificates
};

struct LoggingConfig {
  bool verbose = false;
  std::string format = "console";  // console | json
};

struct PrometheusConfig {
  bool enable = false;
  // ours: loopback by default (HarmonyLite: ":3010", every interface); the metrics name tables
  // and streams, and an operator opens them to the network by choice
  std::string bind = "127.0.0.1:3010";
  std::string namespace_ = "harmonylite";  // TOML key: namespace
  std::string subsystem;
};

struct HealthCheckConfig {
  bool enable = false;
  std::string bind = "127.0.0.1:8090";  // ours: loopback (HarmonyLite: "0.0.0.0:8090")
  std::string path = "/health";
  // ours: false (HarmonyLite: true); the detailed body reveals node ids, stream positions and
  // the schema, so it is given only where configured
  bool detailed = false;
};

// ours: [anti_entropy] (docs/anti-entropy.md). Every node answers peers whatever these say.
struct AntiEntropyConfig {
  int64_t interval_ms = 30'000;  // between rounds; 0 = this node runs no rounds
  // rows applied per round (all peers and tables together): bounds a round's write
  // transactions and traffic after a large divergence; the rest follows in the next rounds
  int64_t max_repair_rows_per_round = 10'000;
  // rounds between checks of the stored digests against __harmony_rows (one scan per table):
  // heals a digest that an edit of __harmony_rows behind the replicator's back left wrong
  int64_t digest_check_rounds = 20;
  // live rows per round and table whose values are hashed and compared with the peers' (content
  // scrub); 0 = no scrub. At most kMaxScrubRows.
  int64_t scrub_rows = 2'000;
};
// A million rows per round and table scrubs a 1M-row table in one round (the window is also cut
// at one page of buckets, sync_protocol.hpp kScrubPage); more would only mislead.
inline constexpr int64_t kMaxScrubRows = 1'000'000;

// ours: [tombstones] (docs/anti-entropy.md "Tombstones"): tombstone GC.
struct TombstonesConfig {
  // between pruning passes (run after an anti-entropy round); 0 = never prune
  int64_t gc_interval_ms = 60'000;
  // a member not seen for this long is dropped from the membership (it must restore from a
  // snapshot to rejoin); a day covers a weekend-free maintenance window and a long partition
  int64_t member_retention_ms = 24 * 3'600'000;
};

struct Config {
  std::string source_path;  // the TOML file, for messages ("" when none)
  std::string db_path = "/tmp/harmonylite.db";
  std::string seq_map_path;  // accepted for compatibility; positions live in the database
  uint64_t node_id = 0;      // 0 = use the id stored in the database (random, generated once)
  bool publish = true;
  bool replicate = true;
  int64_t scan_max_changes = 100000;  // ours: rows per batch (HarmonyLite: 512 rows per scan)
  int64_t apply_batch_rows = 20000;   // ours: rows per apply transaction (HarmonyLite: 1)
  // ours: rows held (not applicable yet) per stream before it stops reading (disk, not memory)
  int64_t max_held_rows = 1'000'000;
  // ours: the same bound in payload bytes (default shared/held.hpp kDefaultMaxHeldBytes,
  // 256 MiB): a few huge rows reach it long before the row bound
  int64_t max_held_bytes = kDefaultMaxHeldBytes;
  int64_t cleanup_interval_ms = 5000;
  int64_t sleep_timeout_ms = 0;
  int64_t polling_interval_ms = 0;
  // ours: drift bound between node clocks (integer ms, as every duration here), at most a day;
  // default shared/hlc.hpp kDefaultMaxClockDriftMs (a minute)
  int64_t max_clock_drift_ms = kDefaultMaxClockDriftMs;
  std::vector<std::string> include_tables;  // ours: empty = every eligible table
  std::vector<std::string> exclude_tables;  // ours
  bool capture_existing_rows = false;       // ours: publish rows present when capture starts
  ReplicationLogConfig replication_log;
  // ours: [dead_letters] max_rows, max_bytes, max_age (defaults in shared/dead_letters.hpp)
  DeadLetterLimits dead_letters;
  // ours: [conflicts] max_rows, max_age: the conflict log's bounds (defaults in
  // shared/conflict_log.hpp: 10,000 rows, 30 days)
  ConflictLimits conflicts;
  AntiEntropyConfig anti_entropy;  // ours: [anti_entropy]
  TombstonesConfig tombstones;     // ours: [tombstones]
  SnapshotConfig snapshot;
  NatsConfig nats;
  LoggingConfig logging;
  PrometheusConfig prometheus;
  HealthCheckConfig health_check;
};

// Thrown for a bad config; what() names the key and the file. A harmony::Error like every
// other failure, but its own type: main() tells it apart to exit with 2 instead of 1.
class ConfigError : public Error {
 public:
  using Error::Error;
};

// Reads TOML. Unknown keys go to `warnings` ("unknown key 'x' in file.toml"); wrong types or
// values throw ConfigError naming key and file. A missing file throws ConfigError too.
Config load_config(const std::string& path, std::vector<std::string>& warnings);
// The same from TOML text already in memory; `name` stands for the file in messages (and
// becomes Config::source_path). load_config() reads the file and calls this.
Config parse_config_text(const std::string& text, const std::string& name,
                         std::vector<std::string>& warnings);

// The tables this node replicates, as include_tables, exclude_tables and capture_existing_rows
// select them.
TableSelection table_selection(const Config& config);

}  // namespace harmony
