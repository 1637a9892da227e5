// Snapshots without NATS: what a snapshot file keeps and drops, restoring into a live database
// (content, node-local state, unpublished local changes, open connections, schema conflicts),
// the directory store (atomic replace, corrupted or truncated files rejected), metadata and
// ADR-20 encodings, snapshot config validation, and a consumer pausing at a gap in the stream;
// own rows a snapshot's older schema cannot take are held, and the conflict log stays the node's.
#include <catch2/catch.hpp>

#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "replicator/config/config.hpp"
#include "replicator/receive/consumer.hpp"
#include "replicator/snapshot/object_store.hpp"
#include "replicator/snapshot/snapshot.hpp"
#include "replicator/wire/codec.hpp"
#include "replicator/wire/wire.hpp"
#include "shared/apply.hpp"
#include "shared/capture.hpp"
#include "shared/fold.hpp"
#include "shared/outbox.hpp"
#include "shared/status.hpp"
#include "tests/support/db_fixture.hpp"
#include "tests/support/fake_stream.hpp"
#include "tests/support/runner.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// Books without publication_year, and a table with a text key.
const char* kBooksAndNotes =
    "PRAGMA journal_mode=WAL; CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT NOT NULL, "
    "author TEXT); CREATE TABLE Notes (k TEXT PRIMARY KEY, v TEXT);";

std::string make_node(const TempDir& dir, const std::string& name, uint64_t node) {
  return make_captured_db(dir, name, node, kBooksAndNotes);
}

// What the publisher does for everything pending: fold, collect, and clear after the "ack".
Batch publish_all(const std::string& path, uint64_t node) {
  Db db = Db::open(path);
  Transaction tx(db);
  Batch b = collect_pending(db, captured_tables(db), node, 100000);
  mark_published(db, b);
  tx.commit();
  return b;
}

// What a consumer does with one batch at stream sequence `seq`.
void apply_batch(const std::string& path, uint64_t node, const Batch& b, uint64_t seq) {
  Db db = Db::open(path);
  Transaction tx(db);
  Applier a(db, node, captured_tables(db));
  a.begin();
  std::vector<HeldRows> held;
  a.apply(b, {"s-1", seq}, held);
  REQUIRE(held.empty());
  a.set_position("s-1", seq);
  a.finish();
  tx.commit();
}

void fold(const std::string& path, uint64_t node) {
  Db db = Db::open(path);
  Transaction tx(db);
  fold_all(db, captured_tables(db), node);
  tx.commit();
}

std::string books(const std::string& path) {
  Db db = Db::open(path);
  return table_checksum(db, "Books");
}

int64_t pending(const std::string& path) {
  Db db = Db::open(path);
  return total_pending(db, captured_tables(db));
}

void flip_byte(const std::string& path, std::streamoff at) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(at);
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(at);
  f.write(&c, 1);
}

}  // namespace

TEST_CASE("a snapshot keeps versions, tombstones and positions and drops node-local state",
          "[snapshot]") {
  TempDir dir("snapshot");
  auto a = make_node(dir, "a.db", 1);
  shell_ok(a,
           "INSERT INTO Books VALUES (1,'Dune','Herbert'),(2,'Emma','Austen'); "
           "DELETE FROM Books WHERE id=2;");
  publish_all(a, 1);
  shell_ok(a, "INSERT INTO Books VALUES (3,'Ulysses','Joyce')");
  fold(a, 1);                                                       // pending: dirty row 3
  shell_ok(a, "INSERT INTO Notes VALUES ('n','unfolded change')");  // pending: only in the log
  {
    Db db = Db::open(a);
    db.exec(
        "INSERT INTO __harmony_positions VALUES ('s-1', 7), ('s-2', 3);"
        "INSERT INTO __harmony_dead_letters(at_ms, reason) VALUES (1, 'poison');");
    meta_set(db, "runtime_pid", int64_t{4242});
    meta_set(db, "next_batch_id", int64_t{17});
  }
  std::string file = dir.file("snap.db");
  SnapshotMeta meta = make_snapshot_file(a, file);
  CHECK(meta.origin_node == 1);
  CHECK(meta.format == kSnapshotFormat);
  CHECK(meta.storage_format == kStorageFormat);
  CHECK(meta.positions == std::map<std::string, uint64_t>{{"s-1", 7}, {"s-2", 3}});
  {
    Db db = Db::open(a);
    CHECK(meta.schema.at("Books") == describe_table(db, "Books").schema_hash());
    CHECK(meta.schema.count("Notes") == 1);
  }
  auto [size, sha] = file_digest(file);
  CHECK(meta.size == size);
  CHECK(meta.sha256 == sha);
  CHECK(meta.page_size == 4096);

  // The copy: content and row versions kept, node-local state gone.
  CHECK(query_int(file, "SELECT count(*) FROM Books") == 2);
  CHECK(query_int(file, "SELECT count(*) FROM Notes") == 1);
  CHECK(query_int(file, "SELECT count(*) FROM __harmony_rows_1") == 3);
  CHECK(query_int(file, "SELECT deleted FROM __harmony_rows_1 WHERE k1 = 2") == 1);  // tombstone
  CHECK(query_int(file, "SELECT count(*) FROM __harmony_rows_1 WHERE dirty") == 0);
  CHECK(query_int(file, "SELECT count(*) FROM __harmony_log_2") == 0);
  CHECK(query_int(file, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  CHECK(query_text(file,
                   "SELECT group_concat(key) FROM (SELECT key FROM __harmony_meta ORDER BY key)") ==
        "format,hlc");
  CHECK(query_text(file, "PRAGMA journal_mode") == "delete");
  CHECK(query_int(file, "SELECT count(*) FROM sqlite_schema WHERE type = 'trigger'") >
        0);  // capture
  // The source is untouched.
  CHECK(pending(a) == 2);
  CHECK(query_int(a, "SELECT value FROM __harmony_meta WHERE key = 'runtime_pid'") == 4242);
}

TEST_CASE("restore keeps node id, meta and unpublished changes, open connections stay valid",
          "[snapshot]") {
  TempDir dir("snapshot");
  auto a = make_node(dir, "a.db", 1);
  auto b = make_node(dir, "b.db", 2);
  shell_ok(a,
           "INSERT INTO Books VALUES (1,'Dune','Herbert'),(2,'Emma','Austen'),(3,'Ulysses','J')");
  apply_batch(b, 2, publish_all(a, 1), 1);
  REQUIRE(books(a) == books(b));
  // b's changes not yet published: a folded (dirty) one and two only in the log.
  shell_ok(b, "UPDATE Books SET title='Dune (b)' WHERE id=1");
  fold(b, 2);
  shell_ok(b, "INSERT INTO Books VALUES (10,'Local','b'); DELETE FROM Books WHERE id=3;");
  REQUIRE(pending(b) == 3);
  {
    Db db = Db::open(b);
    meta_set(db, "next_batch_id", int64_t{42});
    meta_set(db, "runtime_pid", int64_t{999});
    db.exec("INSERT INTO __harmony_dead_letters(at_ms, reason) VALUES (1, 'kept')");
  }
  // a moves on, on rows b's pending changes do not touch (so which is newer does not matter).
  shell_ok(a,
           "UPDATE Books SET title='Emma (a)' WHERE id=2; INSERT INTO Books VALUES (4,'Four','a')");
  publish_all(a, 1);
  {
    Db db = Db::open(a);
    db.exec("INSERT INTO __harmony_positions VALUES ('s-1', 5)");
  }
  std::string file = dir.file("snap.db");
  make_snapshot_file(a, file);

  Db app = Db::open(b);  // an application's connection, open across the restore
  REQUIRE(app.query_int("SELECT count(*) FROM Books") == 3);
  RestoreOptions ro;
  ro.node = 2;
  ro.apply_own_until = {{"s-1", 9}};
  RestoreReport report = restore_into(b, file, ro);
  CHECK(report.pending_rows == 3);
  CHECK(report.pending_kept == 3);
  CHECK_FALSE(report.interrupted);
  CHECK(report.bytes > 0);

  // Snapshot content plus b's own changes on top.
  CHECK(
      query_text(b,
                 "SELECT group_concat(id || ':' || title, ' ') FROM (SELECT * FROM Books ORDER BY "
                 "id)") == "1:Dune (b) 2:Emma (a) 4:Four 10:Local");
  CHECK(pending(b) == 3);
  CHECK(query_int(b, "SELECT deleted FROM __harmony_rows_1 WHERE k1 = 3") == 1);
  // Node-local state kept, positions from the snapshot, own-batch bound recorded.
  CHECK(query_int(b, "SELECT value FROM __harmony_meta WHERE key = 'node_id'") == 2);
  CHECK(query_int(b, "SELECT value FROM __harmony_meta WHERE key = 'next_batch_id'") == 42);
  CHECK(query_int(b, "SELECT value FROM __harmony_meta WHERE key = 'runtime_pid'") == 999);
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_dead_letters WHERE reason = 'kept'") == 1);
  CHECK(query_int(b, "SELECT seq FROM __harmony_positions WHERE stream = 's-1'") == 5);
  {
    Db db = Db::open(b);
    CHECK(restored_own_until(db) == std::map<std::string, uint64_t>{{"s-1", 9}});
    CHECK(load_clock(db) >= query_int(a, "SELECT value FROM __harmony_meta WHERE key = 'hlc'"));
  }
  CHECK(query_text(b, "PRAGMA journal_mode") == "wal");
  // The application's connection sees the new content and can still write (and is captured).
  CHECK(app.query_int("SELECT count(*) FROM Books") == 4);
  app.exec("INSERT INTO Books VALUES (11,'after restore','app')");
  CHECK(pending(b) == 4);

  // b publishes: a ends up identical.
  apply_batch(a, 1, publish_all(b, 2), 6);
  CHECK(books(a) == books(b));
  CHECK(pending(b) == 0);
}

TEST_CASE("a local change older than the snapshot's version of the row gives way", "[snapshot]") {
  TempDir dir("snapshot");
  auto a = make_node(dir, "a.db", 1);
  auto b = make_node(dir, "b.db", 2);
  WriteClock clock;  // b's update is older than a's whatever the wall clock does
  shell_ok(a, "INSERT INTO Books VALUES (1,'Dune','Herbert')");
  clock.stamp(a);
  apply_batch(b, 2, publish_all(a, 1), 1);
  shell_ok(b, "UPDATE Books SET title='older, on b' WHERE id=1");
  clock.stamp(b);
  fold(b, 2);
  shell_ok(a, "UPDATE Books SET title='newer, on a' WHERE id=1");
  clock.stamp(a);
  publish_all(a, 1);
  std::string file = dir.file("snap.db");
  make_snapshot_file(a, file);
  RestoreOptions ro;
  ro.node = 2;
  auto report = restore_into(b, file, ro);
  CHECK(report.pending_rows == 1);
  CHECK(report.pending_kept == 0);
  CHECK(query_text(b, "SELECT title FROM Books WHERE id=1") == "newer, on a");
  CHECK(pending(b) == 0);
  CHECK(books(a) == books(b));
}

TEST_CASE("restore refuses a snapshot that would drop or reshape a table with rows", "[snapshot]") {
  TempDir dir("snapshot");
  auto a = make_node(dir, "a.db", 1);
  auto b = make_node(dir, "b.db", 2);
  shell_ok(a, "INSERT INTO Books VALUES (1,'Dune','Herbert')");
  publish_all(a, 1);
  std::string file = dir.file("snap.db");
  make_snapshot_file(a, file);
  shell_ok(
      b,
      "CREATE TABLE Extra (id INTEGER PRIMARY KEY, x); INSERT INTO Extra VALUES (1, 'keep me');"
      "CREATE TABLE EmptyOne (id INTEGER PRIMARY KEY);");
  shell_ok(b, "INSERT INTO Books VALUES (7,'local','b')");
  std::string before = books(b);
  RestoreOptions ro;
  ro.node = 2;
  try {
    restore_into(b, file, ro);
    FAIL("restore_into accepted a snapshot without table Extra");
  } catch (const Error& e) {
    std::string what = e.what();
    CHECK(what.find("\"Extra\"") != std::string::npos);
    CHECK(what.find("EmptyOne") == std::string::npos);  // an empty table loses nothing
  }
  CHECK(books(b) == before);
  CHECK(query_text(b, "SELECT x FROM Extra WHERE id=1") == "keep me");
  CHECK(pending(b) == 1);
  // A different schema of a table with rows is refused as well (a column the snapshot has is
  // gone here; a snapshot that only predates columns added here is restored, see below).
  shell_ok(b, "DROP TABLE Extra; ALTER TABLE Books DROP COLUMN author;");
  REQUIRE_THROWS_WITH(restore_into(b, file, ro),
                      Catch::Contains("\"Books\" has a different schema"));
}

TEST_CASE(
    "restore from a snapshot that predates an ADD COLUMN holds the own rows that use it, then "
    "applies and publishes them after the ALTER",
    "[snapshot][held]") {
  TempDir dir("snapshot");
  auto a = make_node(dir, "a.db", 1);
  auto b = make_node(dir, "b.db", 2);
  shell_ok(a, "INSERT INTO Books VALUES (1,'Dune','Herbert'),(2,'Emma','Austen')");
  apply_batch(b, 2, publish_all(a, 1), 1);
  {
    Db db = Db::open(a);
    db.exec("INSERT INTO __harmony_positions VALUES ('s-1', 1)");
  }
  std::string file = dir.file("snap.db");
  make_snapshot_file(a, file);  // before the ALTER
  // b adds a column and writes rows that use it; none of them is published yet.
  shell_ok(b,
           "ALTER TABLE Books ADD COLUMN rating INTEGER; INSERT INTO Books VALUES "
           "(10,'Local','b',5); UPDATE Books SET rating = 3 WHERE id = 1;");
  RestoreOptions ro;
  ro.node = 2;
  ro.apply_own_until = {{"s-1", 1}};
  RestoreReport report;
  REQUIRE_NOTHROW(report = restore_into(b, file, ro));
  CHECK(report.pending_rows == 2);
  // The snapshot's schema is b's now (no rating): b's two rows wait for the column.
  CHECK(query_int(b, "SELECT count(*) FROM pragma_table_info('Books') WHERE name = 'rating'") == 0);
  CHECK(query_int(b,
                  "SELECT sum(row_count) FROM __harmony_held WHERE stream = 's-1' AND kind = "
                  "'column'") == 2);
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_dead_letters") == 0);

  // The same ALTER again: the consumer applies them, and they are pending publication.
  shell_ok(b, "ALTER TABLE Books ADD COLUMN rating INTEGER");
  {
    FakeStream stream;
    FakeSource source(stream);
    ReplicatorStats stats;
    Consumer con(fake_consumer_options(b, 2), source, stats);
    Runner rc([&](auto& stop) { con.run(stop); });
    REQUIRE(
        wait_until([&] { return query_int(b, "SELECT count(*) FROM __harmony_held") == 0; }, 10s));
  }
  CHECK(query_text(b,
                   "SELECT group_concat(id || ':' || coalesce(rating, '-'), ' ') FROM (SELECT * "
                   "FROM Books ORDER BY id)") == "1:3 2:- 10:5");
  CHECK(query_int(b, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  CHECK(pending(b) == 2);
  // b publishes them: a, after the same ALTER, ends identical.
  shell_ok(a, "ALTER TABLE Books ADD COLUMN rating INTEGER");
  apply_batch(a, 1, publish_all(b, 2), 2);
  CHECK(books(a) == books(b));
}

TEST_CASE("a restored node keeps its own conflict log, not the snapshot origin's", "[snapshot]") {
  TempDir dir("snapshot");
  auto a = make_node(dir, "a.db", 1);
  auto b = make_node(dir, "b.db", 2);
  const auto conflict = [](const std::string& table) {
    return fmt::format(
        "INSERT INTO __harmony_conflicts (at_ms, table_name, kind, key, loser_values, loser_hlc, "
        "loser_node, winner_hlc, winner_node, winner_deleted) VALUES (1, '{}', 'overwritten', "
        "'[1]', '{{}}', 1, 1, 2, 2, 0);",
        table);
  };
  shell_ok(a, "INSERT INTO Books VALUES (1,'Dune','Herbert');" + conflict("from a"));
  shell_ok(b, conflict("from b 1") + conflict("from b 2"));
  std::string file = dir.file("snap.db");
  make_snapshot_file(a, file);
  // Node-local like the dead letters: not in the snapshot.
  CHECK(query_int(file, "SELECT count(*) FROM __harmony_conflicts") == 0);
  // A snapshot taken by an older build may carry its origin's log: it is not taken over.
  shell_ok(file, conflict("from a, in an old snapshot"));
  RestoreOptions ro;
  ro.node = 2;
  restore_into(b, file, ro);
  CHECK(query_text(b,
                   "SELECT group_concat(id || ':' || table_name, ', ') FROM (SELECT * FROM "
                   "__harmony_conflicts ORDER BY id)") == "1:from b 1, 2:from b 2");
  CHECK(query_int(b, "SELECT count(*) FROM Books") == 1);
}

TEST_CASE("the directory store replaces atomically and rejects corrupted or truncated files",
          "[snapshot]") {
  TempDir dir("snapshot");
  auto a = make_node(dir, "a.db", 1);
  shell_ok(a, "INSERT INTO Books VALUES (1,'Dune','Herbert')");
  FileSnapshotStore store(dir.file("store"));
  CHECK_FALSE(store.info());
  REQUIRE_THROWS_WITH(store.get(dir.file("out.db")), Catch::Contains("no snapshot"));

  auto m1 = make_snapshot_file(a, dir.file("s1.db"));
  store.put(dir.file("s1.db"), m1);
  REQUIRE(store.info());
  CHECK(store.info()->sha256 == m1.sha256);
  std::string data1 = store.current_data_file();
  REQUIRE(std::filesystem::exists(data1));

  shell_ok(a, "INSERT INTO Books SELECT value, 'bulk', 'x' FROM generate_series(2, 3000)");
  auto m2 = make_snapshot_file(a, dir.file("s2.db"));
  store.put(dir.file("s2.db"), m2);
  CHECK(store.info()->sha256 == m2.sha256);
  CHECK_FALSE(std::filesystem::exists(data1));  // the previous data file is gone after the switch
  auto got = store.get(dir.file("out.db"));
  CHECK(got.sha256 == m2.sha256);
  CHECK(file_digest(dir.file("out.db")).second == m2.sha256);
  CHECK(query_int(dir.file("out.db"), "SELECT count(*) FROM Books") == 3000);

  // Flipped bytes: rejected, nothing left behind.
  std::string data2 = store.current_data_file();
  flip_byte(data2, 5000);
  REQUIRE_THROWS_AS(store.get(dir.file("bad.db")), SnapshotRejected);
  CHECK_FALSE(std::filesystem::exists(dir.file("bad.db")));
  flip_byte(data2, 5000);
  CHECK(store.get(dir.file("ok.db")).sha256 == m2.sha256);
  // Truncated: rejected.
  std::filesystem::resize_file(data2, m2.size / 2);
  REQUIRE_THROWS_AS(store.get(dir.file("bad.db")), SnapshotRejected);
}

TEST_CASE("snapshot metadata and the object-store encodings", "[snapshot]") {
  SnapshotMeta m;
  m.origin_node = 3;
  m.created_ms = 1700000000123;
  m.size = 4096;
  m.sha256 = std::string(64, 'a');
  m.positions = {{"harmonylite-changes-1", 12}, {"harmonylite-changes-2", 0}};
  m.schema = {{"Books", "abc"}};
  auto back = SnapshotMeta::from_json(m.to_json());
  CHECK(back.origin_node == 3);
  CHECK(back.positions == m.positions);
  CHECK(back.schema == m.schema);
  CHECK(back.sha256 == m.sha256);
  auto j = nlohmann::json::parse(m.to_json());
  j["format"] = kSnapshotFormat + 1;
  REQUIRE_THROWS_WITH(SnapshotMeta::from_json(j.dump()), Catch::Contains("newer"));
  REQUIRE_THROWS_WITH(SnapshotMeta::from_json("{}"), Catch::Contains("malformed"));
  // ADR-20: names and digests are base64url with padding (Go's base64.URLEncoding).
  CHECK(base64url("snapshot.db", 11) == "c25hcHNob3QuZGI=");
  const unsigned char bytes[] = {0xfb, 0xff, 0xfe};
  CHECK(base64url(bytes, 3) == "-__-");
  auto n1 = new_nuid(), n2 = new_nuid();
  CHECK(n1.size() == 22);
  CHECK(n1 != n2);
}

TEST_CASE("snapshot config: remote stores and a file store without their address",
          "[snapshot][config]") {
  TempDir dir("snapshot");
  auto load = [&](const std::string& text) {
    write_file(dir.file("c.toml"), text);
    std::vector<std::string> warnings;
    return load_config(dir.file("c.toml"), warnings);
  };
  for (const char* store : {"s3", "webdav", "sftp"}) {
    try {
      load(fmt::format("[snapshot]\nstore = \"{}\"\n", store));
      FAIL("accepted store " << store << " without its address");
    } catch (const ConfigError& e) {
      CHECK(std::string(e.what()).find(fmt::format("snapshot.store needs [snapshot.{}]", store)) !=
            std::string::npos);
    }
    CHECK(
        load(fmt::format("[snapshot]\nenabled = false\nstore = \"{}\"\n", store)).snapshot.store ==
        store);
  }
  try {
    load("[snapshot]\nstore = \"file\"\n");
    FAIL("accepted a file store without dir");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()).find("[snapshot.file] dir") != std::string::npos);
  }
  CHECK(
      load("[snapshot]\nstore = \"file\"\n[snapshot.file]\ndir = \"snaps\"\n").snapshot.file.dir ==
      "snaps");
  // The keys the remote stores add: S3 region (default us-east-1), SFTP host key and key file.
  auto s3 =
      load("[snapshot]\nstore = \"s3\"\n[snapshot.s3]\nendpoint = \"h:9000\"\nbucket = \"b\"\n");
  CHECK(s3.snapshot.s3.region == "us-east-1");
  CHECK(load("[snapshot]\nstore = \"s3\"\n[snapshot.s3]\nendpoint = \"h:9000\"\nbucket = "
             "\"b\"\nregion = \"eu-west-3\"\n")
            .snapshot.s3.region == "eu-west-3");
  auto sftp = load(
      "[snapshot]\nstore = \"sftp\"\n[snapshot.sftp]\nurl = \"sftp://u:p@h/s\"\nknown_hosts = "
      "\"kh\"\ninsecure_ignore_host_key = true\nkey_file = \"id\"\n");
  CHECK(sftp.snapshot.sftp.known_hosts == "kh");
  CHECK(sftp.snapshot.sftp.insecure_ignore_host_key);
  CHECK(sftp.snapshot.sftp.key_file == "id");
}

namespace {
// Messages with the stream sequences the test chooses (a hole included). Past the last one it
// waits for new messages like a real source, until the timeout or until the test closes it.
class ScriptedSource : public MessageSource {
 public:
  explicit ScriptedSource(std::vector<IncomingMessage> msgs) : msgs_(std::move(msgs)) {}
  void start(uint64_t start_seq) override {
    next_ = 0;
    while (next_ < msgs_.size() && msgs_[next_].stream_seq < start_seq) ++next_;
  }
  std::optional<IncomingMessage> next(std::chrono::milliseconds timeout) override {
    if (next_ < msgs_.size()) return msgs_[next_++];
    std::unique_lock<std::mutex> lock(mu_);
    closed_cv_.wait_for(lock, timeout, [&] { return closed_; });
    return std::nullopt;
  }
  void stop() override {}
  // Ends every wait for new messages, now and later (before stopping the consumer).
  void close() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
    closed_cv_.notify_all();
  }

 private:
  std::vector<IncomingMessage> msgs_;
  size_t next_ = 0;
  std::mutex mu_;
  std::condition_variable closed_cv_;
  bool closed_ = false;
};

IncomingMessage message(uint64_t seq, uint64_t origin, uint64_t batch_id, int64_t id) {
  Batch b;
  b.origin_node = origin;
  b.batch_id = batch_id;
  b.tables.push_back({"Books", "", {"id", "title"}, {"id"}, 0});
  b.rows.push_back({0, (int64_t{1} << 16) * id, false, {id}, {id, Text{"t"}}});
  auto parts = split_frame(encode_batch(b, false), origin, batch_id);
  return IncomingMessage{seq, std::to_string(origin), std::to_string(batch_id), "1/1",
                         parts.at(0).payload};
}
}  // namespace

TEST_CASE("a consumer pauses its stream at a gap instead of applying past it", "[snapshot]") {
  TempDir dir("snapshot");
  auto b = make_node(dir, "b.db", 2);
  ScriptedSource source(
      {message(1, 7, 1, 1), message(2, 7, 2, 2), message(5, 7, 3, 5), message(6, 7, 4, 6)});
  ReplicatorStats stats;
  Consumer consumer(fake_consumer_options(b, 2), source, stats);
  // At the hole the consumer pauses and returns by itself.
  std::atomic<bool> stop{false};
  std::packaged_task<void()> run([&] { consumer.run(stop); });
  auto finished = run.get_future();
  std::thread t(std::move(run));
  const bool returned = finished.wait_for(5s) == std::future_status::ready;
  stop = true;
  source.close();
  t.join();
  REQUIRE(returned);
  finished.get();  // rethrows what the consumer threw
  CHECK(stats.streams()["s-1"].paused);
  CHECK(query_int(b, "SELECT group_concat(id) FROM Books") == -1);  // text "1,2", not a number
  CHECK(query_text(b, "SELECT group_concat(id) FROM (SELECT id FROM Books ORDER BY id)") == "1,2");
  CHECK(query_int(b, "SELECT seq FROM __harmony_positions WHERE stream='s-1'") == 2);
  CHECK(stats.streams()["s-1"].pause_reason.find("3..4") != std::string::npos);
}
