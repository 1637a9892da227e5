// A start-up restore seen from outside (issue 17), with real harmonylite and nats-server
// processes on loopback and a directory snapshot store: /health shows the restore moving (phase,
// percent, MB/s, ETA; 503 "starting") while it runs; a database on a disk too small for the
// snapshot is refused with the path and the space needed and left as it was; a directory store
// on a full disk keeps its previous snapshot. The full disks are small tmpfs mounts made by the
// test (root only: skipped with a message elsewhere) and unmounted on every path.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "replicator/nats/nats_server.hpp"
#include "replicator/snapshot/object_store.hpp"
#include "replicator/snapshot/snapshot.hpp"
#include "shared/capture.hpp"
#include "shared/fold.hpp"
#include "shared/sqlite_db.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// Rows of this many random bytes: a few MB of snapshot with few rows to capture.
constexpr int64_t kRowBytes = 8000;

// A standalone JetStream server for the test.
struct Nats {
  TempDir dir{"restorenats"};
  EmbeddedServer server{[&] {
    EmbeddedServerOptions o;
    o.server_name = "restore";
    o.store_dir = dir.file("js");
    return o;
  }()};
  Nats() { server.start(std::chrono::seconds(20)); }
  std::string url() const { return server.client_url(); }
};

// Two nodes on one NATS server with a directory snapshot store. Node 1 holds about `megabytes`
// MB, has published enough batches for the stream (max_entries 10) to forget its beginning and
// has saved a snapshot with -save-snapshot; it is stopped again. Node 2 is a fresh file (its
// own directory) that must restore at start-up.
struct SavedSnapshot {
  Nats nats;
  TempDir store_dir{"restorestore"};
  std::string store = store_dir.file("snapshots");
  int64_t rows = 0;
  std::unique_ptr<TestCluster> c;

  explicit SavedSnapshot(int64_t megabytes) {
    ClusterOptions o;
    o.nodes = 2;
    o.separate_dirs = true;
    o.schema = "CREATE TABLE big (id INTEGER PRIMARY KEY, payload BLOB NOT NULL);";
    o.external_nats_url = nats.url();
    o.max_entries = 10;
    o.extra_config = fmt::format(
        "[snapshot]\nstore = \"file\"\ninterval = 0\n[snapshot.file]\ndir = \"{}\"\n", store);
    c = std::make_unique<TestCluster>(o);
    rows = megabytes * 1024 * 1024 / kRowBytes;
    c->exec(0, fmt::format("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE "
                           "i < {}) INSERT INTO big SELECT i, randomblob({}) FROM s",
                           rows, kRowBytes));
    c->start(0);
    INFO(c->log(0));
    REQUIRE(c->wait_ready(0));
    for (int64_t k = 1; k <= 3 * o.max_entries; ++k) {
      c->exec(0, fmt::format("INSERT INTO big VALUES ({}, x'00')", rows + k));
      REQUIRE(wait_until([&] { return c->pending(0) == 0; }, 30s, 5ms));
    }
    REQUIRE(wait_until(
        [&] {
          return c->query_int(0, "SELECT coalesce(max(seq), 0) FROM __harmony_positions") >=
                 3 * o.max_entries;
        },
        30s, 50ms));
    auto saved = run_command({harmonylite_path(), "-config", c->config(0), "-save-snapshot"});
    INFO(saved.output);
    REQUIRE(saved.exit_code == 0);
    REQUIRE(c->stop(0) == 0);
    rows += 3 * o.max_entries;
  }
};

// Files in `dir` whose name contains "restore" (the temporary download next to the database).
std::vector<std::string> temp_files(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.path().filename().string().find("restore") != std::string::npos)
      out.push_back(e.path().string());
  return out;
}

}  // namespace

TEST_CASE("/health shows a start-up restore moving: 503 starting, phase, percent, MB/s, ETA",
          "[snapshot][restore]") {
  SavedSnapshot s(6);
  // 6 MB at 2 MB/s: about 3 s of download to watch (a test-only rate limit of the transfer).
  s.c->start(1, {}, {{"HARMONY_TEST_SNAPSHOT_MB_PER_S", "2"}});
  INFO(s.c->log(1));
  nlohmann::json seen;
  int seen_status = 0;
  std::set<int64_t> percents;
  std::set<std::string> steps;  // the download, then the copy into the database
  REQUIRE(wait_until(
      [&] {
        auto r = http_get(s.c->health_port(1), "/health");
        if (r.status == 0) return !s.c->running(1);
        auto body = nlohmann::json::parse(r.body, nullptr, false);
        if (body.is_object() && body.value("status", "") == "starting") {
          const auto& snap = body["snapshot"];
          if (snap.value("phase", "") == "restoring" && snap["percent"].is_number()) {
            percents.insert(snap["percent"].get<int64_t>());
            steps.insert(snap["step"].get<std::string>());
            seen = body;
            seen_status = r.status;
          }
        }
        return s.c->log(1).find("restored the snapshot") != std::string::npos;
      },
      60s, 50ms));
  INFO(seen.dump(2));
  CHECK(seen_status == 503);
  REQUIRE(seen.is_object());
  CHECK(seen["problems"][0] == "starting: restoring snapshot");
  CHECK(std::any_of(steps.begin(), steps.end(), [](const std::string& step) {
    return step.starts_with("snapshot download from");
  }));
  CHECK(seen["snapshot"]["total_bytes"].get<uint64_t>() > 5 * 1024 * 1024);
  CHECK(seen["snapshot"]["mb_per_s"].is_number());
  // It moved: several different percentages, some between the ends.
  CHECK(percents.size() >= 3);
  CHECK(std::any_of(percents.begin(), percents.end(), [](int64_t p) { return p > 0 && p < 100; }));
  REQUIRE(s.c->wait_ready(1));
  CHECK(s.c->query_int(1, "SELECT count(*) FROM big") == s.rows);
  // Afterwards: no transfer, healthy.
  auto after = nlohmann::json::parse(http_get(s.c->health_port(1), "/health").body);
  CHECK(after["snapshot"]["phase"].is_null());
}

TEST_CASE(
    "a restore onto a disk too small for the snapshot names the path and the space needed "
    "and leaves the database as it was",
    "[snapshot][restore][disk-full]") {
  SavedSnapshot s(8);
  // Node 2's directory becomes a 6 MB tmpfs (the 8 MB snapshot does not fit), holding its
  // database with one row of its own.
  const std::string node_dir = std::filesystem::path(s.c->db(1)).parent_path().string();
  const std::string keep = s.store_dir.file("node-2-copy.db");
  std::filesystem::copy_file(s.c->db(1), keep);
  Tmpfs small(node_dir, 6);
  if (!small.ok()) {
    WARN("skipped: cannot mount a tmpfs here (needs root): " + small.why_not());
    return;
  }
  std::filesystem::copy_file(keep, s.c->db(1));
  s.c->exec(1, "INSERT INTO big VALUES (1, x'01')");
  s.c->start(1);
  REQUIRE(wait_until([&] { return !s.c->running(1); }, 60s));
  const std::string log = s.c->log(1);
  INFO(log);
  CHECK(s.c->stop(1) != 0);
  // Clear: the path, "space", how much is needed and how much is free.
  CHECK(log.find(node_dir) != std::string::npos);
  CHECK(log.find("not enough free space") != std::string::npos);
  CHECK(log.find("MB needed") != std::string::npos);
  // Nothing lost, nothing left behind.
  CHECK(s.c->query_int(1, "SELECT count(*) FROM big") == 1);
  CHECK(s.c->query_text(1, "PRAGMA quick_check") == "ok");
  CHECK(temp_files(node_dir).empty());
}

TEST_CASE(
    "saving to a directory store on a full disk fails clearly and keeps the previous "
    "snapshot readable",
    "[snapshot][disk-full]") {
  TempDir dir("savefull");
  const std::string store_path = dir.file("store");
  Tmpfs small(store_path, 4);
  if (!small.ok()) {
    WARN("skipped: cannot mount a tmpfs here (needs root): " + small.why_not());
    return;
  }
  const std::string db_path = dir.file("db.db");
  {
    Db db = Db::open(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL; CREATE TABLE big (id INTEGER PRIMARY KEY, payload BLOB);");
    ensure_base_schema(db);
    enable_all(db);
    db.exec("INSERT INTO big VALUES (1, randomblob(8000))");
  }
  auto insert = [&](int from, int to) {
    Db db = Db::open(db_path, SQLITE_OPEN_READWRITE);
    db.exec(
        fmt::format("WITH RECURSIVE s(i) AS (SELECT {} UNION ALL SELECT i + 1 FROM s WHERE i < "
                    "{}) INSERT INTO big SELECT i, randomblob({}) FROM s",
                    from, to, kRowBytes));
  };
  insert(2, 200);  // about 1.6 MB: fits
  FileSnapshotStore store(store_path);
  auto first = make_snapshot_file(db_path, dir.file("first.db"));
  store.put(dir.file("first.db"), first);
  insert(201, 800);  // about 6.4 MB: does not fit next to the first
  auto second = make_snapshot_file(db_path, dir.file("second.db"));
  std::string error;
  try {
    store.put(dir.file("second.db"), second);
  } catch (const Error& e) {
    error = e.what();
  }
  INFO(error);
  CHECK(error.find(store_path) != std::string::npos);
  CHECK(error.find("not enough free space") != std::string::npos);
  CHECK(error.find("MB needed") != std::string::npos);
  // The previous snapshot is the current one, complete; no half-written file is left.
  auto got = store.get(dir.file("back.db"));
  CHECK(got.sha256 == first.sha256);
  for (const auto& e : std::filesystem::directory_iterator(store_path))
    CHECK(e.path().filename().string().find(".tmp") == std::string::npos);
}
