// Snapshots end to end with real nats-server and harmonylite processes on loopback: the JetStream
// object store (ADR-20 layout, atomic replace, corrupted and truncated objects refused), the
// snapshot lease, -save-snapshot (while the node runs, and with nothing to talk to), the seed's
// "Snapshots and Recovery" walkthrough, a node kept down past the stream's retention and a
// brand-new node (both restore, catch up and converge), and a corrupted snapshot refused at
// start-up with the node's database untouched.
#include <nats/nats.h>
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_server.hpp"
#include "replicator/snapshot/object_store.hpp"
#include "replicator/snapshot/snapshot.hpp"
#include "replicator/snapshot/snapshot_leader.hpp"
#include "shared/capture.hpp"
#include "shared/fold.hpp"
#include "shared/sqlite_db.hpp"
#include "tests/support/cluster.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// A standalone JetStream server for the test.
struct Nats {
  TempDir dir{"snapnats"};
  EmbeddedServer server{[&] {
    EmbeddedServerOptions o;
    o.server_name = "snap";
    o.store_dir = dir.file("js");
    return o;
  }()};
  Nats() { server.start(std::chrono::seconds(20)); }
  std::string url() const { return server.client_url(); }
  std::unique_ptr<NatsConnection> connect() {
    ConnectOptions c;
    c.urls = {url()};
    c.name = "snapshot-test";
    return NatsConnection::connect_once(c);
  }
};

// A database with capture and `rows` rows of ~1 KB.
std::string make_db(const TempDir& dir, const std::string& name, int rows) {
  std::string path = dir.file(name);
  Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  db.exec(
      "PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT);");
  ensure_base_schema(db);
  enable_all(db);
  db.exec(
      fmt::format("WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {}) "
                  "INSERT OR REPLACE INTO t SELECT i, hex(randomblob(512)) FROM s",
                  rows));
  return path;
}

// Every message on `subject` of `stream`, in order.
std::vector<std::string> read_subject(NatsConnection& conn, const std::string& stream,
                                      const std::string& subject, size_t expected) {
  jsSubOptions so;
  jsSubOptions_Init(&so);
  so.Stream = stream.c_str();
  so.Ordered = true;
  natsSubscription* raw = nullptr;
  REQUIRE(js_SubscribeSync(&raw, conn.js(), subject.c_str(), nullptr, &so, nullptr) == NATS_OK);
  NatsSubscriptionPtr sub(raw);
  std::vector<std::string> out;
  while (out.size() < expected) {
    natsMsg* m = nullptr;
    REQUIRE(natsSubscription_NextMsg(&m, sub.get(), 5000) == NATS_OK);
    NatsMsgPtr msg(m);
    if (natsMsg_GetDataLength(m) == 0) continue;
    out.emplace_back(natsMsg_GetData(m), static_cast<size_t>(natsMsg_GetDataLength(m)));
  }
  return out;
}

void publish(NatsConnection& conn, const std::string& subject, const std::string& data) {
  jsPubAck* pa = nullptr;
  REQUIRE(js_Publish(&pa, conn.js(), subject.c_str(), data.data(), static_cast<int>(data.size()),
                     nullptr, nullptr) == NATS_OK);
  jsPubAck_Destroy(pa);
}

void purge_subject(NatsConnection& conn, const std::string& stream, const std::string& subject) {
  jsOptions o;
  jsOptions_Init(&o);
  o.Stream.Purge.Subject = subject.c_str();
  REQUIRE(js_PurgeStream(conn.js(), stream.c_str(), &o, nullptr) == NATS_OK);
}

CommandResult save_snapshot(const std::string& config, const std::string& cwd = "") {
  if (cwd.empty()) return run_command({harmonylite_path(), "-config", config, "-save-snapshot"});
  return run_command({"sh", "-c",
                      fmt::format("cd '{}' && '{}' -config '{}' -save-snapshot", cwd,
                                  harmonylite_path(), config)});
}

uint64_t position(TestCluster& c, int i) {
  return static_cast<uint64_t>(std::max<int64_t>(
      0, c.query_int(i, "SELECT coalesce(max(seq), 0) FROM __harmony_positions")));
}

void write_many(TestCluster& c, int node, int from, int count) {
  for (int i = from; i < from + count; ++i)
    c.exec(node,
           fmt::format("INSERT INTO Books (id, title, author) VALUES ({}, 'book {}', 'a')", i, i));
}

bool log_has(TestCluster& c, int i, const std::string& text) {
  return c.log(i).find(text) != std::string::npos;
}

}  // namespace

TEST_CASE("object store: ADR-20 layout, atomic replace, corrupted or truncated objects refused",
          "[snapshot]") {
  Nats nats;
  auto conn = nats.connect();
  TempDir dir("snapobj");
  NatsObjectStore store(*conn, "t-snap", 1, kSnapshotObjectName, 64 * 1024);
  CHECK_FALSE(store.info());
  REQUIRE_THROWS_WITH(store.get(dir.file("none.db")), Catch::Contains("no snapshot"));

  auto db = make_db(dir, "a.db", 1000);
  auto m1 = make_snapshot_file(db, dir.file("s1.db"));
  store.put(dir.file("s1.db"), m1);
  auto info = nlohmann::json::parse(store.raw_info());
  CHECK(info["name"] == "snapshot.db");
  CHECK(info["bucket"] == "t-snap");
  CHECK(info["size"] == m1.size);
  CHECK(info["chunks"] == (m1.size + 65535) / 65536);
  CHECK(info["options"]["max_chunk_size"] == 65536);
  CHECK(info["digest"].get<std::string>().rfind("SHA-256=", 0) == 0);
  CHECK(store.meta_subject() == "$O.t-snap.M.c25hcHNob3QuZGI=");
  auto got = store.get(dir.file("got1.db"));
  CHECK(got.sha256 == m1.sha256);
  CHECK(file_digest(dir.file("got1.db")).second == m1.sha256);

  // A new upload replaces the old one; the old chunks are purged afterwards.
  auto db2 = make_db(dir, "b.db", 1500);
  auto m2 = make_snapshot_file(db2, dir.file("s2.db"));
  store.put(dir.file("s2.db"), m2);
  auto info2 = nlohmann::json::parse(store.raw_info());
  CHECK(info2["nuid"] != info["nuid"]);
  auto st = stream_state(*conn, "OBJ_t-snap");
  REQUIRE(st);
  CHECK(st->messages == info2["chunks"].get<uint64_t>() + 1);  // new chunks + one info message
  CHECK(store.get(dir.file("got2.db")).sha256 == m2.sha256);

  // Flip a byte in one chunk (republish the chunks): refused, nothing left behind.
  std::string nuid = info2["nuid"];
  size_t chunks = info2["chunks"];
  auto subject = store.chunk_subject(nuid);
  auto data = read_subject(*conn, "OBJ_t-snap", subject, chunks);
  purge_subject(*conn, "OBJ_t-snap", subject);
  auto bad = data;
  bad[1][100] = static_cast<char>(bad[1][100] ^ 0x01);
  for (const auto& d : bad) publish(*conn, subject, d);
  REQUIRE_THROWS_AS(store.get(dir.file("bad.db")), SnapshotRejected);
  CHECK_FALSE(std::filesystem::exists(dir.file("bad.db")));
  // Truncated (a chunk missing): refused at once.
  purge_subject(*conn, "OBJ_t-snap", subject);
  for (size_t i = 0; i + 1 < data.size(); ++i) publish(*conn, subject, data[i]);
  REQUIRE_THROWS_WITH(store.get(dir.file("bad.db")), Catch::Contains("incomplete"));
  // Put back as it was: accepted again.
  purge_subject(*conn, "OBJ_t-snap", subject);
  for (const auto& d : data) publish(*conn, subject, d);
  CHECK(store.get(dir.file("good.db")).sha256 == m2.sha256);
}

TEST_CASE("snapshot lease: one holder at a time, handed over on release and after the TTL",
          "[snapshot]") {
  Nats nats;
  auto conn = nats.connect();
  SnapshotLeader one(*conn, "t-lease", 1, 1500, 1);
  SnapshotLeader two(*conn, "t-lease", 2, 1500, 1);
  // The TTL is the bucket's max age, in the server's hands.
  auto kv = stream_state(*conn, "KV_t-lease");
  REQUIRE(kv);
  {
    jsStreamInfo* raw = nullptr;
    REQUIRE(js_GetStreamInfo(&raw, conn->js(), "KV_t-lease", nullptr, nullptr) == NATS_OK);
    JsStreamInfoPtr si(raw);
    CHECK(si->Config->MaxAge == int64_t{1500} * 1000000);
  }
  CHECK(one.tick());
  CHECK_FALSE(two.tick());
  CHECK(one.tick());  // refresh (or still fresh)
  one.release();
  CHECK(two.tick());
  CHECK_FALSE(one.tick());
  // `two` stops refreshing (as if it died): the server expires the lease, `one` takes it.
  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(wait_until([&] { return one.tick(); }, 6s, 100ms));
  CHECK(std::chrono::steady_clock::now() - t0 >= 1s);
  // A restarted holder with the same node id gets its lease back at once.
  SnapshotLeader one_again(*conn, "t-lease", 1, 1500, 1);
  CHECK(one_again.tick());
  CHECK_FALSE(two.tick());
}

TEST_CASE("save-snapshot with nothing to store into fails with a clear message", "[snapshot]") {
  TempDir dir("snapcli");
  auto db = make_db(dir, "a.db", 10);
  write_file(dir.file("c.toml"), fmt::format("db_path = \"{}\"\n", db));
  auto r = save_snapshot(dir.file("c.toml"));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("no harmonylite replicator is running on " + db) != std::string::npos);
  int port = free_port();
  write_file(dir.file("d.toml"),
             fmt::format("db_path = \"{}\"\n[nats]\nurls = [\"nats://127.0.0.1:{}\"]\n", db, port));
  r = save_snapshot(dir.file("d.toml"));
  INFO(r.output);
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("not reachable") != std::string::npos);
  write_file(dir.file("e.toml"),
             fmt::format("db_path = \"{}\"\n[snapshot]\nenabled = false\n", db));
  r = save_snapshot(dir.file("e.toml"));
  CHECK(r.exit_code == 1);
  CHECK(r.output.find("snapshots are disabled") != std::string::npos);
}

TEST_CASE("the seed walkthrough: -save-snapshot while node 1 runs, node 3 catches up",
          "[snapshot][smoke]") {
  ClusterOptions o;
  o.shards = 2;
  o.replicas = 3;
  o.max_entries = 2048;
  o.extra_config = "[snapshot]\nenabled = true\n[snapshot.nats]\nreplicas = 3\n";
  TestCluster c(o);
  c.start_all();
  for (int i = 0; i < 3; ++i) REQUIRE(c.wait_ready(i));
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (title, author, publication_year) VALUES ('Dune', 'F', 1965)");
  REQUIRE(c.wait_converged());
  REQUIRE(c.stop(2) == 0);  // kill %3
  // From the build directory, with node 1's config and no cluster flags, while node 1 runs.
  auto r = save_snapshot(c.config(0), build_dir());
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  CHECK(r.output.find("saved to NATS object store") != std::string::npos);
  c.exec(0,
         "INSERT INTO Books (title, author, publication_year) VALUES ('New book while offline', "
         "'Some Author', 2023)");
  c.start(2);
  REQUIRE(c.wait_ready(2));
  REQUIRE(wait_until(
      [&] {
        return c.query_text(2, "SELECT title FROM Books WHERE title='New book while offline'") ==
               "New book while offline";
      },
      30s));
  REQUIRE(c.wait_converged());
  // The stored snapshot: node 1's, with positions for both streams.
  ConnectOptions co;
  co.urls = {c.query_text(0, "SELECT value FROM __harmony_meta WHERE key='runtime_nats_url'")};
  auto conn = NatsConnection::connect_once(co);
  NatsObjectStore store(*conn, "harmonylite-changes-snapshot-store", 3);
  auto info = store.info();
  REQUIRE(info);
  CHECK(info->origin_node == 1);
  CHECK(info->positions.count("harmonylite-changes-1") == 1);
  CHECK(info->positions.count("harmonylite-changes-2") == 1);
  CHECK(info->schema.count("Books") == 1);
}

TEST_CASE("a node down past the stream's retention and a brand-new node restore and converge",
          "[snapshot]") {
  Nats nats;
  ClusterOptions o;
  o.nodes = 4;
  o.external_nats_url = nats.url();
  o.max_entries = 20;
  // Short lease so the test does not wait; the retention guard takes the periodic snapshots.
  o.extra_config = "[snapshot]\nleader_ttl = 2000\n";
  TestCluster c(o);
  // Node 4 is brand new: an empty database file, no tables at all.
  std::filesystem::remove(c.db(3));
  {
    Db db = Db::open(c.db(3), SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL");
  }
  for (int i = 0; i < 3; ++i) c.start(i);
  for (int i = 0; i < 3; ++i) REQUIRE(c.wait_ready(i));
  INFO(c.all_logs());
  write_many(c, 0, 1, 5);
  REQUIRE(c.wait_converged());
  REQUIRE(c.stop(2) == 0);
  uint64_t down_at = position(c, 2);
  // Node 3 writes while its replicator is down: kept across the restore, published afterwards.
  c.exec(2, "INSERT INTO Authors (name) VALUES ('written while down')");
  // Far more changes than the stream keeps.
  write_many(c, 0, 100, 60);
  auto conn = nats.connect();
  NatsObjectStore store(*conn, "harmonylite-changes-snapshot-store", 1);
  // Wait for the stream to drop what node 3 needs and for a usable snapshot (the lease holder's).
  REQUIRE(wait_until(
      [&] {
        auto st = stream_state(*conn, "harmonylite-changes-1");
        auto info = store.info();
        return st && info && st->first_seq > down_at + 1 &&
               info->positions["harmonylite-changes-1"] + 1 >= st->first_seq &&
               info->positions["harmonylite-changes-1"] >= 60;
      },
      40s, 200ms));
  c.start(2);
  REQUIRE(c.wait_ready(2));
  CHECK(log_has(c, 2, "restoring the newest snapshot"));
  c.start(3);
  REQUIRE(c.wait_ready(3));
  CHECK(log_has(c, 3, "restoring the newest snapshot"));
  REQUIRE(c.wait_converged(40s));
  CHECK(c.query_int(2, "SELECT count(*) FROM Books") == 65);
  CHECK(c.query_int(3, "SELECT count(*) FROM Books") == 65);
  CHECK(c.query_int(0, "SELECT count(*) FROM Authors WHERE name='written while down'") == 1);
  CHECK(c.query_int(3, "SELECT count(*) FROM Authors WHERE name='written while down'") == 1);
  CHECK(c.query_int(3, "SELECT value FROM __harmony_meta WHERE key='node_id'") == 4);
  CHECK(c.query_int(2, "SELECT value FROM __harmony_meta WHERE key='node_id'") == 3);
  CHECK(c.query_int(3, "SELECT count(*) FROM __harmony_dead_letters") == 0);
}

TEST_CASE("a corrupted snapshot is refused at start-up and the node's database is untouched",
          "[snapshot]") {
  Nats nats;
  TempDir store_dir("snapfiles");
  ClusterOptions o;
  o.nodes = 2;
  o.external_nats_url = nats.url();
  o.max_entries = 10;
  o.extra_config = fmt::format("[snapshot]\nstore = \"file\"\n[snapshot.file]\ndir = \"{}\"\n",
                               store_dir.path());
  TestCluster c(o);
  c.start_all();
  for (int i = 0; i < 2; ++i) REQUIRE(c.wait_ready(i));
  INFO(c.all_logs());
  write_many(c, 0, 1, 3);
  REQUIRE(c.wait_converged());
  REQUIRE(c.stop(1) == 0);
  write_many(c, 0, 100, 30);
  REQUIRE(wait_until([&] { return c.pending(0) == 0; }, 20s));
  // Node 1 is stopped so that no periodic snapshot replaces the one corrupted below; a file
  // store needs no NATS to save into.
  REQUIRE(c.stop(0) == 0);
  auto r = save_snapshot(c.config(0));
  INFO(r.output);
  REQUIRE(r.exit_code == 0);
  FileSnapshotStore files(store_dir.path());
  std::string data = files.current_data_file();
  {
    std::fstream f(data, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(8192);
    f.write("garbage!", 8);
  }
  std::string before = c.checksum(1);
  c.start(1);
  REQUIRE(wait_until([&] { return !c.running(1); }, 30s));
  CHECK(log_has(c, 1, "rejected"));
  CHECK(log_has(c, 1, "refuses to start"));
  CHECK(c.checksum(1) == before);
  CHECK(c.query_int(1, "SELECT count(*) FROM Books") == 3);
  // A good snapshot: node 2 restores it and catches up.
  r = save_snapshot(c.config(0));
  REQUIRE(r.exit_code == 0);
  c.start(1);
  REQUIRE(c.wait_ready(1));
  c.start(0);
  REQUIRE(c.wait_ready(0));
  REQUIRE(c.wait_converged(30s));
  CHECK(c.query_int(1, "SELECT count(*) FROM Books") == 33);
}

// Not run by default (hidden tag): `integration_tests "[snapshot-bench]"`. Measures taking,
// uploading, downloading and restoring a snapshot of a database of more than 200 MB.
TEST_CASE("snapshot and restore speed on a database of more than 200 MB", "[.][snapshot-bench]") {
  using clock = std::chrono::steady_clock;
  auto secs = [](clock::time_point t) {
    return std::chrono::duration<double>(clock::now() - t).count();
  };
  Nats nats;
  auto conn = nats.connect();
  TempDir dir("snapbench");
  const int rows = 230000;  // ~1 KB each
  auto prepare = [&](const std::string& path, int n) {
    Db db = Db::open(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; CREATE TABLE big (id INTEGER PRIMARY "
        "KEY, v TEXT, n INTEGER);");
    ensure_base_schema(db);
    enable_all(db);
    db.exec(fmt::format(
        "BEGIN; WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < {}) "
        "INSERT INTO big SELECT i, hex(randomblob(480)), i FROM s; COMMIT;",
        n));
    Transaction tx(db);
    fold_all(db, captured_tables(db), 1);
    db.exec(
        "UPDATE __harmony_rows_1 SET dirty = 0; INSERT INTO __harmony_positions VALUES "
        "('harmonylite-changes-1', 123456)");
    tx.commit();
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  };
  std::string big = dir.file("big.db");
  prepare(big, rows);
  double mb = static_cast<double>(std::filesystem::file_size(big)) / (1024.0 * 1024.0);
  REQUIRE(mb > 200);

  auto t = clock::now();
  auto meta = make_snapshot_file(big, dir.file("snap.db"));
  double take = secs(t);
  NatsObjectStore store(*conn, "bench", 1);
  t = clock::now();
  store.put(dir.file("snap.db"), meta);
  double upload = secs(t);
  t = clock::now();
  store.get(dir.file("down.db"));
  double download = secs(t);
  FileSnapshotStore files(dir.file("files"));
  t = clock::now();
  files.put(dir.file("snap.db"), meta);
  double file_put = secs(t);
  t = clock::now();
  files.get(dir.file("down2.db"));
  double file_get = secs(t);

  // The same object store with three replicas (three clustered servers, as in the walkthrough).
  TempDir cdir("snapbench3");
  std::vector<int> routes = {free_port(), free_port(), free_port()};
  std::vector<std::unique_ptr<EmbeddedServer>> cluster;
  for (int i = 0; i < 3; ++i) {
    EmbeddedServerOptions so;
    so.server_name = fmt::format("bench-{}", i + 1);
    so.store_dir = cdir.file(so.server_name);
    so.cluster_listen = fmt::format("127.0.0.1:{}", routes[static_cast<size_t>(i)]);
    so.cluster_user = "bench";
    so.cluster_password = "bench-routes";
    for (int j = 0; j < 3; ++j)
      if (j != i)
        so.routes.push_back(fmt::format("nats://127.0.0.1:{}/", routes[static_cast<size_t>(j)]));
    cluster.push_back(std::make_unique<EmbeddedServer>(so));
  }
  for (auto& srv : cluster) srv->start(std::chrono::seconds(30));
  ConnectOptions c3;
  c3.urls = {cluster[0]->client_url()};
  auto conn3 = NatsConnection::connect_once(c3);
  NatsObjectStore store3(*conn3, "bench3", 3);
  t = clock::now();
  store3.put(dir.file("snap.db"), meta);
  double upload3 = secs(t);
  t = clock::now();
  store3.get(dir.file("down3.db"));
  double download3 = secs(t);
  std::filesystem::remove(dir.file("down3.db"));
  conn3.reset();
  cluster.clear();

  // Restore into a live node with a small database and a few unpublished changes.
  std::string node = dir.file("node.db");
  prepare(node, 100);
  {
    Db db = Db::open(node);
    set_node_id(db, 2);
    db.exec("UPDATE big SET v = 'local' WHERE id <= 10");
  }
  Db app = Db::open(node);  // an application connection kept open
  RestoreOptions ro;
  ro.node = 2;
  t = clock::now();
  auto report = restore_into(node, dir.file("down.db"), ro);
  double restore = secs(t);
  CHECK(report.pending_rows == 10);
  CHECK(app.query_int("SELECT count(*) FROM big") == rows);
  double smb = static_cast<double>(meta.size) / (1024.0 * 1024.0);
  std::string result = fmt::format(
      "database {:.0f} MB, snapshot file {:.0f} MB\n"
      "  take (backup API copy + scrub + SHA-256): {:.2f} s = {:.0f} MB/s\n"
      "  upload to the JetStream object store (R1, {} KiB chunks): {:.2f} s = {:.0f} MB/s\n"
      "  download + verify from the object store: {:.2f} s = {:.0f} MB/s\n"
      "  R3 object store upload / download: {:.2f} s = {:.0f} MB/s / {:.2f} s = {:.0f} MB/s\n"
      "  file store put / get: {:.2f} s = {:.0f} MB/s / {:.2f} s = {:.0f} MB/s\n"
      "  restore into a live database (lock held {:.2f} s, copy {:.0f} MB/s): {:.2f} s = {:.0f} "
      "MB/s\n",
      mb, smb, take, mb / take, NatsObjectStore::kDefaultChunkSize / 1024, upload, smb / upload,
      download, smb / download, upload3, smb / upload3, download3, smb / download3, file_put,
      smb / file_put, file_get, smb / file_get, report.lock_seconds, report.copy_mb_per_s, restore,
      smb / restore);
  WARN(result);
}
