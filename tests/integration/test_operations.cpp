// Operating harmonylite, with real processes on loopback: the health endpoint and Prometheus
// metrics of a live pair, 503 while NATS is unreachable, JSON logs without secrets, -version,
// -cleanup, sleep_timeout, -schema-status, and HarmonyLite's rolling-upgrade scenario (e2e 11)
// with the cluster schema registry.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <regex>
#include <sstream>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "replicator/snapshot/object_store.hpp"
#include "shared/capture.hpp"
#include "shared/schema.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

// Waits for an answer from the endpoint (the process may still be starting).
HttpResult http_get_when_up(int port, const std::string& path) {
  HttpResult r;
  wait_until(
      [&] {
        r = http_get(port, path);
        return r.status != 0;
      },
      20s, 100ms);
  return r;
}

nlohmann::json health(int port) {
  auto r = http_get_when_up(port, "/health");
  INFO(r.body);
  REQUIRE(r.status != 0);
  return nlohmann::json::parse(r.body);
}

// The value of the first sample whose name is `name` and whose labels contain `label` (e.g.
// "stream=\"harmonylite-changes-1\""); -1 when absent.
double metric(const std::string& text, const std::string& name, const std::string& label = "") {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind(name + "{", 0) != 0) continue;
    const auto close = line.rfind('}');
    if (!label.empty() && line.substr(0, close).find(label) == std::string::npos) continue;
    return std::stod(line.substr(close + 2));
  }
  return -1;
}

std::string metrics(int port) {
  auto r = http_get_when_up(port, "/metrics");
  REQUIRE(r.status == 200);
  return r.body;
}

void start_and_wait(TestCluster& c) {
  c.start_all();
  for (int i = 0; i < c.size(); ++i) REQUIRE(c.wait_ready(i));
}

// Snapshots are another subsystem with tests of their own; off here to keep these tests short.
constexpr const char* kNoSnapshots = "[snapshot]\nenabled = false\n";

std::string endpoints(int health_port, int metrics_port) {
  return fmt::format(
      "[health_check]\nenable = true\nbind = \"127.0.0.1:{}\"\npath = \"/health\"\n"
      "detailed = true\n"
      "[prometheus]\nenable = true\nbind = \"127.0.0.1:{}\"\n{}",
      health_port, metrics_port, kNoSnapshots);
}

// Keeps a sample of real output for the README when HARMONY_OPS_SAMPLES names a directory.
void keep_sample(const std::string& name, const std::string& text) {
  if (const char* dir = std::getenv("HARMONY_OPS_SAMPLES"))
    write_file(std::string(dir) + "/" + name, text);
}

CommandResult harmonylite(const std::vector<std::string>& args) {
  std::vector<std::string> argv{harmonylite_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv, 60s);
}

}  // namespace

TEST_CASE("health and metrics of a live pair follow what happens", "[ops][smoke]") {
  TestCluster c(ClusterOptions{.nodes = 2});
  const int shared = free_port(), h2 = free_port(), m2 = free_port();
  c.set_node_sections(0, endpoints(shared, shared));  // one listener serves both paths
  c.set_node_sections(1, endpoints(h2, m2));
  start_and_wait(c);
  INFO(c.all_logs());

  auto j = health(shared);
  CHECK(j["status"] == "healthy");
  CHECK(j["node_id"] == 1);
  CHECK(j["db_connected"] == true);
  CHECK(j["nats_connected"] == true);
  CHECK(j["cdc_installed"] == true);
  CHECK(j["tables_tracked"] == 2);
  CHECK(j["version"].is_string());
  CHECK(j["uptime_seconds"].is_number());
  CHECK(j["last_published_event_timestamp"].is_null());
  CHECK(j["nats_server"]["pid"].get<int64_t>() > 0);
  CHECK(j["nats_server"]["client_url"].get<std::string>().rfind("nats://", 0) == 0);
  CHECK(j["schema"]["tables"]["Books"]["hash"].get<std::string>().size() == 32);
  CHECK(http_get(shared, "/health").status == 200);
  CHECK(http_get(shared, "/nope").status == 404);

  const std::string before = metrics(m2);
  const std::string stream = "stream=\"harmonylite-changes-1\"";
  CHECK(metric(before, "harmonylite_rows_applied_total") == 0);
  CHECK(metric(before, "harmonylite_stream_position", stream) == 0);

  c.exec(0,
         "BEGIN; INSERT INTO Books (title, author) VALUES ('Dune', 'Frank Herbert'); INSERT INTO "
         "Books (title, author) VALUES ('Emma', 'Jane Austen'); COMMIT;");
  c.exec(0, "INSERT INTO Authors (name) VALUES ('Frank Herbert')");
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT count(*) FROM Books") == 2 &&
               c.query_int(1, "SELECT count(*) FROM Authors") == 1;
      },
      10s));
  std::string after;
  REQUIRE(wait_until(
      [&] {
        after = metrics(m2);
        return metric(after, "harmonylite_rows_applied_total") == 3 &&
               metric(after, "harmonylite_stream_lag_messages", stream) == 0 &&
               metric(after, "harmonylite_stream_last_sequence", stream) >= 1;
      },
      10s));
  CHECK(metric(after, "harmonylite_batches_applied_total") >= 1);
  CHECK(metric(after, "harmonylite_stream_position", stream) >= 1);
  CHECK(metric(after, "harmonylite_replication_delay_seconds_count") >= 1);
  CHECK(metric(after, "harmonylite_apply_latency_seconds_count") >= 1);
  CHECK(metric(after, "harmonylite_stream_paused", stream) == 0);
  CHECK(metric(after, "harmonylite_nats_connected") == 1);
  CHECK(metric(after, "harmonylite_published") == 0);  // node 2 wrote nothing
  // What node 2 read is checked against the stream leader's copy within a tick (5 s), and
  // matches it (a mismatch here would mean the leader's messages are compared wrongly).
  REQUIRE(wait_until(
      [&] { return metric(metrics(m2), "harmonylite_stream_messages_checked_total") >= 2; }, 15s));
  CHECK(metric(metrics(m2), "harmonylite_stream_messages_repaired_total") == 0);

  std::string m1;
  REQUIRE(wait_until(
      [&] {
        m1 = metrics(shared);
        return metric(m1, "harmonylite_published") == 3 &&
               metric(m1, "harmonylite_pending_publish") == 0;
      },
      10s));
  CHECK(metric(m1, "harmonylite_batches_published_total") >= 1);
  CHECK(metric(m1, "harmonylite_publish_latency_seconds_count") >= 1);
  CHECK(metric(m1, "harmonylite_batches_skipped_own_total") >= 1);
  CHECK(metric(m1, "harmonylite_rows_applied_total") == 0);

  auto j1 = health(shared);
  CHECK_FALSE(j1["last_published_event_timestamp"].is_null());
  auto j2 = health(h2);
  CHECK_FALSE(j2["last_replicated_event_timestamp"].is_null());
  CHECK(j2["streams"]["harmonylite-changes-1"]["lag_messages"] == 0);
  CHECK(j2["pending_changes"] == 0);
  keep_sample("health.json", j2.dump(2) + "\n");
  keep_sample("metrics.txt", after);
}

TEST_CASE("health answers 503 while NATS is unreachable", "[ops]") {
  ClusterOptions o;
  o.nodes = 1;
  o.external_nats_url = fmt::format("nats://127.0.0.1:{}", free_port());  // nobody listens
  TestCluster c(o);
  const int port = free_port();
  c.set_node_sections(0, fmt::format("[health_check]\nenable = true\nbind = \"127.0.0.1:{}\"\n"
                                     "path = \"/healthz\"\ndetailed = true\n{}",
                                     port, kNoSnapshots));
  c.start(0);
  INFO(c.all_logs());
  auto r = http_get_when_up(port, "/healthz");
  CHECK(r.status == 503);
  auto j = nlohmann::json::parse(r.body);
  CHECK(j["status"] == "unhealthy");
  CHECK(j["nats_connected"] == false);
  CHECK(j["db_connected"] == true);
  CHECK(j["cdc_installed"] == true);
  CHECK(j["nats_server"].is_null());  // external NATS
  CHECK(c.stop(0) == 0);
}

TEST_CASE("json logs: one object per line with the node id, never the password", "[ops]") {
  ClusterOptions o;
  o.nodes = 1;
  o.log_format = "json";
  o.verbose = true;
  const std::string password = "Pw-9f3b1c-not-for-logs";
  o.nats_extra = fmt::format("user_name = \"harmony\"\nuser_password = \"{}\"\n", password);
  TestCluster c(o);
  c.set_node_sections(0, kNoSnapshots);
  c.start(0);
  REQUIRE(c.wait_ready(0));
  c.exec(0, "INSERT INTO Books (title, author) VALUES ('Dune', 'Frank Herbert')");
  REQUIRE(wait_until([&] { return c.pending(0) == 0; }, 10s));
  REQUIRE(c.stop(0) == 0);
  const std::string log = c.log(0);
  INFO(log);
  CHECK(log.find(password) == std::string::npos);
  std::istringstream in(log);
  int lines = 0;
  bool saw_debug = false;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line == "===== start =====") continue;
    INFO(line);
    auto j = nlohmann::json::parse(line);  // throws (fails the test) when not JSON
    CHECK(j["node_id"] == 1);
    CHECK(j["msg"].is_string());
    CHECK(j["time"].is_string());
    saw_debug = saw_debug || j["level"] == "debug";
    ++lines;
  }
  CHECK(lines > 5);
  CHECK(saw_debug);  // verbose = true
  // The embedded server's own log and its generated config on the command line do not show
  // it either.
  const std::string server_log = read_file(c.dir() + "/nats-1/nats-server.log");
  CHECK(server_log.find(password) == std::string::npos);
}

TEST_CASE(
    "the -version flag names harmonylite, git commit, build date, SQLite, nats.c, nats-server",
    "[ops]") {
  auto r = harmonylite({"-version"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(std::regex_search(
      r.output,
      std::regex(R"(^harmonylite \d+\.\d+\.\d+ \(git [0-9a-z]+, built \d{4}-\d\d-\d\dT)")));
  CHECK(std::regex_search(r.output, std::regex(R"(SQLite 3\.\d+\.\d+)")));
  CHECK(std::regex_search(r.output, std::regex(R"(nats\.c \d+\.\d+\.\d+)")));
  CHECK(std::regex_search(r.output, std::regex(R"(nats-server v?2\.\d+\.\d+)")));
}

TEST_CASE(
    "the -cleanup flag refuses with pending changes, -force drops them and every __harmony_ object",
    "[ops]") {
  TempDir dir("cleanup");
  const std::string db_path = dir.file("app.db"), config = dir.file("app.toml");
  {
    Db db = Db::open(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec(
        "PRAGMA journal_mode=WAL; CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT); "
        "CREATE TABLE Tags (k TEXT PRIMARY KEY, v TEXT UNIQUE);");
    ensure_base_schema(db);
    enable_all(db);
  }
  write_file(config, fmt::format("db_path = \"{}\"\n", db_path));
  REQUIRE(sqlite_shell(db_path,
                       "INSERT INTO Books (title) VALUES ('a'); INSERT INTO Books (title) "
                       "VALUES ('b'); INSERT INTO Tags VALUES ('x', 'y');")
              .exit_code == 0);
  auto objects = [&] {
    Db db = Db::open(db_path);
    return db.query_int(
        "SELECT count(*) FROM sqlite_schema WHERE name LIKE '\\_\\_harmony\\_%' ESCAPE '\\'");
  };
  REQUIRE(objects() > 5);

  auto refused = harmonylite({"-config", config, "-cleanup"});
  INFO(refused.output);
  CHECK(refused.exit_code == 1);
  CHECK(refused.output.find("3 unpublished change(s)") != std::string::npos);
  CHECK(refused.output.find("-force") != std::string::npos);
  CHECK(objects() > 5);

  auto forced = harmonylite({"-config", config, "-cleanup", "-force"});
  INFO(forced.output);
  CHECK(forced.exit_code == 0);
  CHECK(forced.output.find("3 unpublished changes dropped") != std::string::npos);
  CHECK(objects() == 0);
  // The application's data and writes are untouched.
  CHECK(sqlite_shell(db_path, "INSERT INTO Books (title) VALUES ('c')").exit_code == 0);
  Db db = Db::open(db_path);
  CHECK(db.query_int("SELECT count(*) FROM Books") == 3);
  CHECK(db.query_int("SELECT count(*) FROM Tags") == 1);
  // Nothing left to clean: succeeds without -force.
  CHECK(harmonylite({"-config", config, "-cleanup"}).exit_code == 0);
}

TEST_CASE("sleep_timeout: the process exits 0 once replication has been idle that long", "[ops]") {
  ClusterOptions o;
  o.nodes = 1;
  o.extra_config = "sleep_timeout = 1500\n";
  TestCluster c(o);
  c.set_node_sections(0, kNoSnapshots);
  c.start(0);
  REQUIRE(c.wait_ready(0));
  INFO(c.all_logs());
  // Activity (publishing) keeps it awake past the timeout.
  for (int i = 0; i < 4; ++i) {
    c.exec(0, fmt::format("INSERT INTO Books (title, author) VALUES ('t{}', 'a')", i));
    std::this_thread::sleep_for(700ms);
  }
  CHECK(c.running(0));
  REQUIRE(wait_until([&] { return !c.running(0); }, 15s));
  CHECK(c.stop(0) == 0);  // already exited: returns its status
  CHECK(c.log(0).find("sleep_timeout") != std::string::npos);
  CHECK(c.pending(0) == 0);
}

TEST_CASE("sleep_timeout: with snapshots enabled a snapshot is saved before exiting",
          "[ops][snapshot]") {
  TempDir store_dir("sleep-snapshots");
  ClusterOptions o;
  o.nodes = 1;
  o.extra_config = "sleep_timeout = 1500\n";
  TestCluster c(o);
  c.set_node_sections(0,
                      fmt::format("[snapshot]\nstore = \"file\"\n[snapshot.file]\ndir = \"{}\"\n",
                                  store_dir.path()));
  c.start(0);
  REQUIRE(c.wait_ready(0));
  INFO(c.all_logs());
  c.exec(0, "INSERT INTO Books (title, author) VALUES ('before sleep', 'a')");
  REQUIRE(wait_until([&] { return !c.running(0); }, 20s));
  CHECK(c.stop(0) == 0);
  auto saved = FileSnapshotStore(store_dir.path()).info();
  REQUIRE(saved.has_value());
  CHECK(saved->origin_node == 1);
  CHECK(c.log(0).find("before sleeping") != std::string::npos);
}

TEST_CASE("the -schema-status flag prints hashes, previous hashes and capture state without NATS",
          "[ops][schema]") {
  TempDir dir("schema-status");
  const std::string db_path = dir.file("app.db"), config = dir.file("app.toml");
  std::string h0;
  {
    Db db = Db::open(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec(
        "PRAGMA journal_mode=WAL; CREATE TABLE Books (id INTEGER PRIMARY KEY, title TEXT); "
        "CREATE TABLE logs (line TEXT);");
    h0 = describe_table(db, "Books").schema_hash();
  }
  write_file(config,
             fmt::format("db_path = \"{}\"\n[nats]\nurls = [\"nats://127.0.0.1:1\"]\n", db_path));
  // Before capture was ever installed.
  auto r = harmonylite({"-config", config, "-schema-status"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  CHECK(r.output.find("Books") != std::string::npos);
  CHECK(r.output.find(h0) != std::string::npos);
  CHECK(r.output.find("not installed") != std::string::npos);
  CHECK(r.output.find("not replicated: table \"logs\" has no PRIMARY KEY") != std::string::npos);

  {
    Db db = Db::open(db_path);
    ensure_base_schema(db);
    enable_table(db, "Books");
    Transaction tx(db);
    // What the replicator records at start-up (replicator/common/schema_guard.hpp), by hand here.
    db.exec(fmt::format("INSERT INTO __harmony_meta VALUES ('schema_hash:books', '{}')", h0));
    tx.commit();
  }
  REQUIRE(sqlite_shell(db_path,
                       "ALTER TABLE Books ADD COLUMN rating INTEGER; INSERT INTO Books "
                       "(title, rating) VALUES ('x', 1);")
              .exit_code == 0);
  std::string h1;
  {
    Db db = Db::open(db_path);
    h1 = describe_table(db, "Books").schema_hash();
  }
  r = harmonylite({"-config", config, "-schema-status"});
  INFO(r.output);
  CHECK(r.exit_code == 0);
  std::smatch m;
  REQUIRE(std::regex_search(r.output, m, std::regex("Books +(\\w+) +(\\S+) +(.*)")));
  CHECK(m[1] == h1);
  CHECK(m[2] == h0);  // previous
  CHECK(m[3].str().find("installed, 1 pending") != std::string::npos);
  CHECK(m[3].str().find("changed since the replicator last recorded it") != std::string::npos);
}

TEST_CASE(
    "rolling upgrade (HarmonyLite e2e 11): rows of a newer schema wait on the old node, nothing "
    "is lost, they apply after its upgrade and the registry reports it",
    "[ops][schema]") {
  // An external nats-server, so that stopping node 1 does not take the stream away from node 2.
  TempDir natsdir("nats");
  const int nats_port = free_port();
  auto nats = start_external_nats(natsdir, nats_port);
  TestCluster c(ClusterOptions{.nodes = 2,
                               .external_nats_url = fmt::format("nats://127.0.0.1:{}", nats_port)});
  const int h2 = free_port(), m2 = free_port();
  c.set_node_sections(0, kNoSnapshots);
  c.set_node_sections(1, endpoints(h2, m2));
  start_and_wait(c);
  INFO(c.all_logs());
  auto cluster_status = [&] {
    return harmonylite({"-config", c.config(0), "-schema-status-cluster"});
  };

  // Baseline replicates; both nodes register the same schema.
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'Baseline', 'A')");
  REQUIRE(wait_until(
      [&] { return c.query_int(1, "SELECT count(*) FROM Books WHERE title='Baseline'") == 1; },
      10s));
  CommandResult status;
  REQUIRE(wait_until(
      [&] {
        status = cluster_status();
        return status.exit_code == 0;
      },
      20s, 500ms));
  CHECK(status.output.find("2 node(s)") != std::string::npos);
  CHECK(status.output.find("consistent: every node") != std::string::npos);

  // Node 1 upgrades while stopped (no change-log surgery: capture survives ALTER).
  REQUIRE(c.stop(0) == 0);
  c.exec(0, "ALTER TABLE Books ADD COLUMN rating INTEGER");
  c.start(0);
  REQUIRE(c.wait_ready(0));
  c.exec(0, "INSERT INTO Books (id, title, author, rating) VALUES (10, 'Rated', 'B', 5)");
  // Node 2 does not have `rating` yet: the row waits there (held), the stream goes on.
  REQUIRE(wait_until(
      [&] { return health(h2)["streams"]["harmonylite-changes-1"]["held_rows"] == 1; }, 10s));
  CHECK(c.query_int(1, "SELECT count(*) FROM Books WHERE title='Rated'") == 0);
  auto j = health(h2);
  CHECK(j["schema"]["status"] == "rows held");
  CHECK(j["streams"]["harmonylite-changes-1"]["paused"] == false);
  CHECK(j["streams"]["harmonylite-changes-1"]["held_reason"].get<std::string>().find(
            "column \"rating\" does not exist on this node") != std::string::npos);
  auto m = metrics(m2);
  CHECK(metric(m, "harmonylite_schema_mismatch_paused") == 1);
  CHECK(metric(m, "harmonylite_rows_held_total") == 1);
  CHECK(c.log(1).find("row(s) held") != std::string::npos);
  CHECK(c.query_int(1, "SELECT count(*) FROM __harmony_held") == 1);
  REQUIRE(wait_until(
      [&] {
        status = cluster_status();
        return status.output.find("rolling upgrade in progress") != std::string::npos;
      },
      20s, 500ms));
  CHECK(status.exit_code == 1);
  CHECK(status.output.find("INCONSISTENT") != std::string::npos);

  // Node 2, still on the old schema, keeps writing; node 1 accepts its previous hash. (Ids are
  // explicit: two nodes that pick the same AUTOINCREMENT id write the same row, see README.)
  c.exec(1, "INSERT INTO Books (id, title, author) VALUES (20, 'From old node', 'C')");
  REQUIRE(wait_until(
      [&] { return c.query_int(0, "SELECT count(*) FROM Books WHERE title='From old node'") == 1; },
      10s));

  // Node 2 upgrades live: its stream resumes and the row written meanwhile arrives, whole.
  c.exec(1, "ALTER TABLE Books ADD COLUMN rating INTEGER");
  REQUIRE(wait_until(
      [&] { return c.query_int(1, "SELECT rating FROM Books WHERE title='Rated'") == 5; }, 15s));
  REQUIRE(wait_until([&] { return health(h2)["schema"]["status"] == "ok"; }, 10s));
  CHECK(c.query_int(1, "SELECT count(*) FROM __harmony_held") == 0);
  c.exec(0, "INSERT INTO Books (id, title, author, rating) VALUES (11, 'Final', 'D', 4)");
  c.exec(1, "INSERT INTO Books (id, title, author, rating) VALUES (21, 'Final 2', 'E', 3)");
  REQUIRE(wait_until(
      [&] {
        return c.query_int(1, "SELECT rating FROM Books WHERE title='Final'") == 4 &&
               c.query_int(0, "SELECT rating FROM Books WHERE title='Final 2'") == 3;
      },
      10s));
  // A new table (created where it is received first) is captured by itself.
  c.exec(1, "CREATE TABLE Reviews (id INTEGER PRIMARY KEY, body TEXT)");
  c.exec(0, "CREATE TABLE Reviews (id INTEGER PRIMARY KEY, body TEXT)");
  c.exec(0, "INSERT INTO Reviews VALUES (1, 'great')");
  REQUIRE(wait_until(
      [&] { return c.query_text(1, "SELECT body FROM Reviews WHERE id=1") == "great"; }, 10s));
  REQUIRE(c.wait_converged());
  CHECK(c.query_int(1, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  CHECK(c.query_int(0, "SELECT count(*) FROM __harmony_dead_letters") == 0);
  REQUIRE(wait_until(
      [&] {
        status = cluster_status();
        return status.exit_code == 0;
      },
      20s, 500ms));
  CHECK(status.output.find("Reviews") != std::string::npos);
  CHECK(metric(metrics(m2), "harmonylite_schema_mismatch_paused") == 0);
}

TEST_CASE("replicate = false: a node publishes but applies nothing and reports no stream",
          "[ops]") {
  TempDir natsdir("nats");
  const int nats_port = free_port();
  auto nats = start_external_nats(natsdir, nats_port);
  TestCluster c(ClusterOptions{.nodes = 2,
                               .external_nats_url = fmt::format("nats://127.0.0.1:{}", nats_port)});
  const int h2 = free_port(), m2 = free_port();
  c.set_node_sections(0, kNoSnapshots);
  c.set_node_config(1, "replicate = false\n");
  c.set_node_sections(1, endpoints(h2, m2));
  start_and_wait(c);
  INFO(c.all_logs());
  c.exec(1,
         "INSERT INTO Books (id, title, author) VALUES (2, 'from the non-replicating node', 'b')");
  REQUIRE(wait_until([&] { return c.query_int(0, "SELECT count(*) FROM Books WHERE id=2") == 1; },
                     10s));
  c.exec(0, "INSERT INTO Books (id, title, author) VALUES (1, 'not applied on node 2', 'a')");
  std::this_thread::sleep_for(2s);
  CHECK(c.query_int(1, "SELECT count(*) FROM Books WHERE id=1") == 0);
  auto j = health(h2);
  CHECK(j["status"] == "healthy");
  CHECK(j["streams"].empty());
  CHECK(metric(metrics(m2), "harmonylite_published") == 1);
  CHECK(c.log(1).find("replicate = false") != std::string::npos);
}
