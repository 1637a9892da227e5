// Integration tests of replicator/nats_server (embedded, supervised nats-server child) and
// replicator/nats_client (connection, ensure_stream, stream_state) against real nats-server
// processes on loopback.
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include <spdlog/spdlog.h>
#include "replicator/nats/nats_client.hpp"
#include "replicator/nats/nats_server.hpp"
#include "shared/error.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;
namespace fs = std::filesystem;

namespace {

EmbeddedServerOptions server_opts(const TempDir& dir, const std::string& name) {
  EmbeddedServerOptions o;
  o.server_name = name;
  o.store_dir = dir.file(name);
  return o;
}

ConnectOptions client_opts(const std::string& url, const std::string& name = "test") {
  ConnectOptions c;
  c.urls = {url};
  c.name = name;
  c.reconnect_wait_ms = 100;
  c.connect_attempts = 1;
  return c;
}

// Alive and not a zombie.
bool alive(pid_t pid) {
  if (pid <= 0 || ::kill(pid, 0) != 0) return false;
  std::string stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  return close != std::string::npos && close + 2 < stat.size() && stat[close + 2] != 'Z';
}

std::string http_get(int port, const std::string& path) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  std::string out;
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    std::string req = "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    }
  }
  close(fd);
  auto body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

void publish(NatsConnection& conn, const std::string& subject, const std::string& data) {
  jsPubAck* ack = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_Publish(&ack, conn.js(), subject.c_str(), data.data(),
                            static_cast<int>(data.size()), nullptr, &jerr);
  JsPubAckPtr owned(ack);
  INFO(nats_error_text(s, jerr));
  REQUIRE(s == NATS_OK);
}

int64_t stream_max_msgs(NatsConnection& conn, const std::string& name) {
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  REQUIRE(js_GetStreamInfo(&si, conn.js(), name.c_str(), nullptr, &jerr) == NATS_OK);
  JsStreamInfoPtr owned(si);
  return si->Config->MaxMsgs;
}

std::string expect_start_error(EmbeddedServer& server) {
  try {
    server.start(std::chrono::seconds(10));
  } catch (const Error& e) {
    return e.what();
  }
  FAIL("start() did not throw");
  return "";
}

}  // namespace

TEST_CASE("embedded nats-server: single node, discovered ports, JetStream streams",
          "[nats][smoke]") {
  TempDir dir("nats-single");
  EmbeddedServer server(server_opts(dir, "harmonylite-1"));
  server.start(std::chrono::seconds(10));
  REQUIRE(server.running());
  REQUIRE(server.pid() > 0);
  REQUIRE(server.client_port() > 0);
  REQUIRE(server.monitor_port() > 0);
  REQUIRE(server.monitor_port() != server.client_port());
  REQUIRE(server.client_url() == "nats://127.0.0.1:" + std::to_string(server.client_port()));
  REQUIRE(server.restarts() == 0);
  // The ports file nats-server wrote, our JetStream store, the generated private config.
  REQUIRE(
      fs::exists(dir.file("harmonylite-1/nats-server_" + std::to_string(server.pid()) + ".ports")));
  REQUIRE(wait_until([&] { return fs::exists(dir.file("harmonylite-1/jetstream")); }, 5s));
  REQUIRE((fs::status(server.config_path()).permissions() & fs::perms::others_read) ==
          fs::perms::none);
  REQUIRE(http_get(server.monitor_port(), "/healthz?js-enabled-only=true").find("ok") !=
          std::string::npos);

  std::atomic<bool> stop{false};
  auto conn = NatsConnection::connect(client_opts(server.client_url()), stop);
  REQUIRE(conn);
  REQUIRE(conn->connected());
  REQUIRE(conn->connected_url() == server.client_url());
  REQUIRE(conn->max_payload() == 8 << 20);

  StreamSpec spec{"harmonylite-changes-1", "harmonylite-change-log-1", 1, 1024, 0, 120000, false};
  REQUIRE_FALSE(stream_state(*conn, spec.name).has_value());
  REQUIRE(ensure_stream(*conn, spec, stop));
  REQUIRE(ensure_stream(*conn, spec, stop));  // idempotent
  auto empty = stream_state(*conn, spec.name);
  REQUIRE(empty.has_value());
  REQUIRE(empty->messages == 0);
  REQUIRE(empty->last_seq == 0);

  for (int i = 0; i < 3; ++i) publish(*conn, spec.subject, "change " + std::to_string(i));
  auto st = stream_state(*conn, spec.name);
  REQUIRE(st.has_value());
  REQUIRE(st->first_seq == 1);
  REQUIRE(st->last_seq == 3);
  REQUIRE(st->messages == 3);

  // A different config: kept unless update_existing, updated otherwise; messages survive.
  StreamSpec bigger = spec;
  bigger.max_msgs = 2048;
  REQUIRE(ensure_stream(*conn, bigger, stop));
  REQUIRE(stream_max_msgs(*conn, spec.name) == 1024);
  bigger.update_existing = true;
  REQUIRE(ensure_stream(*conn, bigger, stop));
  REQUIRE(stream_max_msgs(*conn, spec.name) == 2048);
  REQUIRE(stream_state(*conn, spec.name)->messages == 3);

  // R3 on a server without clustering: ensure_stream waits (and logs why) until stopped.
  std::atomic<bool> stop_soon{false};
  auto r3 = std::async(std::launch::async, [&] {
    return ensure_stream(*conn, {"r3", "r3.x", 3, 0, 0, 0, false}, stop_soon);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop_soon = true;
  REQUIRE(r3.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
  REQUIRE_FALSE(r3.get());
  REQUIRE_FALSE(stream_state(*conn, "r3").has_value());

  // JetStream's own validation errors are not waited on.
  StreamSpec overlap{"other", "harmonylite-change-log-1", 1, 0, 0, 0, false};
  REQUIRE_THROWS_WITH(ensure_stream(*conn, overlap, stop), Catch::Contains("overlap"));

  // A JetStream context with the caller's options.
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.PublishAsync.MaxPending = 16;
  JsCtxPtr js = conn->make_js(jo);
  REQUIRE(js);
}

TEST_CASE("embedded nats-server: the supervisor restarts a killed child on the same ports",
          "[nats]") {
  TempDir dir("nats-restart");
  EmbeddedServer server(server_opts(dir, "harmonylite-r"));
  server.start(std::chrono::seconds(10));
  int client_port = server.client_port();
  int monitor_port = server.monitor_port();
  pid_t first = server.pid();
  auto conn = NatsConnection::connect_once(client_opts(server.client_url()));
  std::atomic<bool> stop{false};
  REQUIRE(ensure_stream(*conn, {"s", "s.x", 1, 0, 0, 0, false}, stop));
  publish(*conn, "s.x", "before");

  auto t0 = std::chrono::steady_clock::now();
  REQUIRE(::kill(first, SIGKILL) == 0);
  REQUIRE(wait_until([&] { return server.pid() > 0 && server.pid() != first && server.running(); },
                     10s));
  REQUIRE(server.restarts() == 1);
  REQUIRE(server.client_port() == client_port);
  REQUIRE(server.monitor_port() == monitor_port);
  REQUIRE(wait_until([&] { return conn->connected(); }, 10s));
  auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
  spdlog::info("test: restart after kill -9 and client reconnect took {} ms", ms.count());
  REQUIRE(wait_until(
      [&] {
        try {
          auto st = stream_state(*conn, "s");
          return st && st->messages == 1;
        } catch (const Error&) {
          return false;
        }
      },
      10s));
  REQUIRE_FALSE(alive(first));
}

TEST_CASE("embedded nats-server: stop() and destruction stop the child", "[nats]") {
  TempDir dir("nats-stop");
  pid_t child;
  {
    EmbeddedServer server(server_opts(dir, "harmonylite-d"));
    server.start(std::chrono::seconds(10));
    child = server.pid();
    REQUIRE(alive(child));
  }
  REQUIRE_FALSE(alive(child));

  EmbeddedServer server(server_opts(dir, "harmonylite-e"));
  server.start(std::chrono::seconds(10));
  child = server.pid();
  server.stop();
  REQUIRE_FALSE(server.running());
  REQUIRE(server.pid() == -1);
  REQUIRE_FALSE(alive(child));
  server.stop();  // idempotent
}

// Helper for the next test, run as a separate process: start a server and wait to be killed.
TEST_CASE("nats helper: embedded server in a process that gets kill -9", "[.][nats-helper]") {
  const char* dir = std::getenv("HARMONY_NATS_HELPER_DIR");
  if (!dir) return;
  EmbeddedServerOptions o;
  o.server_name = "helper";
  o.store_dir = std::string(dir) + "/store";
  EmbeddedServer server(o);
  server.start(std::chrono::seconds(10));
  write_file(std::string(dir) + "/child.tmp", std::to_string(server.pid()));
  fs::rename(std::string(dir) + "/child.tmp", std::string(dir) + "/child.pid");
  std::this_thread::sleep_for(std::chrono::seconds(60));
}

TEST_CASE("embedded nats-server: the child dies when the replicator is killed with -9", "[nats]") {
  TempDir dir("nats-pdeath");
  std::string self = fs::read_symlink("/proc/self/exe").string();
  Process helper({self, "[nats-helper]"}, dir.file("helper.log"),
                 {{"HARMONY_NATS_HELPER_DIR", dir.path()}});
  REQUIRE(wait_until([&] { return fs::exists(dir.file("child.pid")); }, 15s));
  pid_t child = std::stoi(read_file(dir.file("child.pid")));
  REQUIRE(alive(child));
  helper.kill9();
  REQUIRE(wait_until([&] { return !alive(child); }, 5s));
}

TEST_CASE("embedded nats-server: user and password protect the client port", "[nats]") {
  TempDir dir("nats-auth");
  auto o = server_opts(dir, "harmonylite-a");
  o.user = "harmonylite";
  o.password = "secure $word";
  EmbeddedServer server(o);
  server.start(std::chrono::seconds(10));
  // The password is in the 0600 config file, not on the process list.
  REQUIRE(read_file("/proc/" + std::to_string(server.pid()) + "/cmdline").find("secure") ==
          std::string::npos);

  REQUIRE_THROWS_WITH(NatsConnection::connect_once(client_opts(server.client_url())),
                      Catch::Contains("Authorization"));
  auto wrong = client_opts(server.client_url());
  wrong.user = "harmonylite";
  wrong.password = "nope";
  REQUIRE_THROWS(NatsConnection::connect_once(wrong));
  auto right = wrong;
  right.password = o.password;
  auto conn = NatsConnection::connect_once(right);
  REQUIRE(conn->connected());
  // nats.c 3.4.1 does not escape credentials in CONNECT: refused up front with a clear reason.
  auto quoted = right;
  quoted.password = "a\"b";
  REQUIRE_THROWS_WITH(NatsConnection::connect_once(quoted), Catch::Contains("not supported"));
  auto bad = server_opts(dir, "bad-pass");
  bad.password = "back\\slash";
  EmbeddedServer refused(bad);
  REQUIRE_THROWS_WITH(refused.start(std::chrono::seconds(5)), Catch::Contains("not supported"));
  std::atomic<bool> stop{false};
  REQUIRE(ensure_stream(*conn, {"auth", "auth.x", 1, 0, 0, 0, false}, stop));
}

TEST_CASE("embedded nats-server: startup failures are clear errors", "[nats]") {
  TempDir dir("nats-fail");
  SECTION("bad config file") {
    write_file(dir.file("bad.conf"), "jetstream {\n  max_file_store = \n");
    auto o = server_opts(dir, "bad");
    o.config_file = dir.file("bad.conf");
    EmbeddedServer server(o);
    std::string msg = expect_start_error(server);
    INFO(msg);
    REQUIRE(msg.find(dir.file("bad.conf")) != std::string::npos);
    REQUIRE(msg.find("exited during startup") != std::string::npos);
    REQUIRE_FALSE(server.running());
  }
  SECTION("missing config file") {
    auto o = server_opts(dir, "missing");
    o.config_file = dir.file("nope.conf");
    EmbeddedServer server(o);
    std::string msg = expect_start_error(server);
    REQUIRE(msg.find(dir.file("nope.conf")) != std::string::npos);
  }
  SECTION("binary missing") {
    auto o = server_opts(dir, "nobin");
    o.binary = dir.file("no-such-nats-server");
    EmbeddedServer server(o);
    std::string msg = expect_start_error(server);
    INFO(msg);
    REQUIRE(msg.find("cannot execute") != std::string::npos);
    REQUIRE(msg.find("No such file") != std::string::npos);
  }
  SECTION("client port in use") {
    EmbeddedServer first(server_opts(dir, "first"));
    first.start(std::chrono::seconds(10));
    auto o = server_opts(dir, "second");
    o.client_port = first.client_port();
    EmbeddedServer second(o);
    std::string msg = expect_start_error(second);
    INFO(msg);
    REQUIRE(msg.find("address already in use") != std::string::npos);
    REQUIRE(first.running());
  }
}

TEST_CASE("embedded nats-server: a HarmonyLite server_config works and our flags win", "[nats]") {
  TempDir dir("nats-userconf");
  int user_monitor = free_port();
  fs::create_directories(dir.file("etc"));
  // HarmonyLite's examples/nats-server-1.conf, plus a relative include.
  write_file(dir.file("etc/nats-server-1.conf"),
             "monitor_port = " + std::to_string(user_monitor) +
                 "\n"
                 "jetstream { store_dir = \"" +
                 dir.file("userjs") +
                 "\"; max_memory_store = 50M; max_file_store = 5G }\n"
                 "include \"extra.conf\"  # relative to this file\n");
  write_file(dir.file("etc/extra.conf"), "max_connections: 1234\n");
  auto o = server_opts(dir, "harmonylite-u");
  o.config_file = dir.file("etc/nats-server-1.conf");
  EmbeddedServer server(o);
  server.start(std::chrono::seconds(10));

  REQUIRE(server.monitor_port() == user_monitor);  // set by the user, not overridden by us
  REQUIRE(wait_until([&] { return fs::exists(dir.file("harmonylite-u/jetstream")); }, 5s));
  REQUIRE_FALSE(fs::exists(dir.file("userjs")));  // our store dir wins

  auto jsz = nlohmann::json::parse(http_get(server.monitor_port(), "/jsz"));
  REQUIRE(jsz["config"]["store_dir"] == dir.file("harmonylite-u/jetstream"));
  REQUIRE(jsz["config"]["max_memory"].get<int64_t>() < 100'000'000);     // the user's 50M
  REQUIRE(jsz["config"]["max_storage"].get<int64_t>() < 6'000'000'000);  // the user's 5G
  auto varz = nlohmann::json::parse(http_get(server.monitor_port(), "/varz"));
  REQUIRE(varz["max_connections"] == 1234);         // the rebased include
  REQUIRE(varz["max_payload"] == 8 << 20);          // our default
  REQUIRE(varz["server_name"] == "harmonylite-u");  // our flag

  auto conn = NatsConnection::connect_once(client_opts(server.client_url()));
  std::atomic<bool> stop{false};
  REQUIRE(ensure_stream(*conn, {"u", "u.x", 1, 0, 0, 0, false}, stop));
}

TEST_CASE("embedded nats-server: leaf remotes connect to a hub", "[nats]") {
  TempDir dir("nats-leaf");
  int leaf_port = free_port();
  write_file(dir.file("hub.conf"),
             "leafnodes { listen: \"127.0.0.1:" + std::to_string(leaf_port) + "\" }\n");
  auto ho = server_opts(dir, "hub");
  ho.config_file = dir.file("hub.conf");
  EmbeddedServer hub(ho);
  hub.start(std::chrono::seconds(10));
  auto lo = server_opts(dir, "leaf");
  lo.leaf_remotes = {"nats-leaf://127.0.0.1:" + std::to_string(leaf_port)};
  EmbeddedServer leaf(lo);
  leaf.start(std::chrono::seconds(10));
  REQUIRE(wait_until(
      [&] {
        auto body = http_get(hub.monitor_port(), "/leafz");
        return !body.empty() && nlohmann::json::parse(body)["leafnodes"] == 1;
      },
      10s));
  // Messages cross the leaf connection.
  auto hub_conn = NatsConnection::connect_once(client_opts(hub.client_url()));
  auto leaf_conn = NatsConnection::connect_once(client_opts(leaf.client_url()));
  natsSubscription* raw = nullptr;
  REQUIRE(natsConnection_SubscribeSync(&raw, hub_conn->get(), "leaf.test") == NATS_OK);
  NatsSubscriptionPtr sub(raw);
  REQUIRE(natsConnection_Flush(hub_conn->get()) == NATS_OK);
  bool got = wait_until(
      [&] {
        natsConnection_PublishString(leaf_conn->get(), "leaf.test", "hello");
        natsMsg* m = nullptr;
        if (natsSubscription_NextMsg(&m, sub.get(), 100) != NATS_OK) return false;
        NatsMsgPtr owned(m);
        return std::string(natsMsg_GetData(m), natsMsg_GetDataLength(m)) == "hello";
      },
      10s);
  REQUIRE(got);
}

TEST_CASE("embedded nats-servers: a cluster formed the seed-demo way serves an R3 stream",
          "[nats]") {
  TempDir dir("nats-cluster");
  int c1 = free_port(), c2 = free_port(), c3 = free_port();
  auto route = [](int port) { return "nats://localhost:" + std::to_string(port) + "/"; };
  auto member = [](EmbeddedServerOptions o) {  // routes require credentials
    o.cluster_user = "demo";
    o.cluster_password = "demo-routes";
    return o;
  };

  auto o1 = member(server_opts(dir, "harmonylite-node-1"));
  o1.cluster_listen = "localhost:" + std::to_string(c1);
  EmbeddedServer n1(o1);
  auto t0 = std::chrono::steady_clock::now();
  n1.start(std::chrono::seconds(10));
  std::atomic<bool> stop{false};
  auto conn1 = NatsConnection::connect(client_opts(n1.client_url(), "node-1"), stop);

  StreamSpec spec{"harmonylite-changes-1", "harmonylite-change-log-1", 3, 1024, 0, 0, false};
  auto created = std::async(std::launch::async, [&] { return ensure_stream(*conn1, spec, stop); });
  REQUIRE(created.wait_for(std::chrono::milliseconds(700)) == std::future_status::timeout);

  auto o2 = member(server_opts(dir, "harmonylite-node-2"));
  o2.cluster_listen = "localhost:" + std::to_string(c2);
  o2.routes = {route(c1)};
  EmbeddedServer n2(o2);
  n2.start(std::chrono::seconds(10));
  auto o3 = member(server_opts(dir, "harmonylite-node-3"));
  o3.cluster_listen = "localhost:" + std::to_string(c3);
  o3.routes = {route(c1), route(c2)};
  EmbeddedServer n3(o3);
  n3.start(std::chrono::seconds(10));
  auto t3 = std::chrono::steady_clock::now();

  // Distinct discovered ports on one host.
  std::set<int> ports{n1.client_port(),
                      n1.monitor_port(),
                      n2.client_port(),
                      n2.monitor_port(),
                      n3.client_port(),
                      n3.monitor_port(),
                      c1,
                      c2,
                      c3};
  REQUIRE(ports.size() == 9);

  if (created.wait_for(std::chrono::seconds(30)) != std::future_status::ready) {
    stop = true;
    created.wait();
    FAIL("ensure_stream did not complete within 30 s of the third node starting");
  }
  REQUIRE(created.get());
  auto done = std::chrono::steady_clock::now();
  spdlog::info("test: R3 stream created {} ms after node 3 started ({} ms after node 1)",
               std::chrono::duration_cast<std::chrono::milliseconds>(done - t3).count(),
               std::chrono::duration_cast<std::chrono::milliseconds>(done - t0).count());

  auto jsz = nlohmann::json::parse(http_get(n1.monitor_port(), "/jsz"));
  REQUIRE(jsz["meta_cluster"]["cluster_size"] == 3);

  auto conn3 = NatsConnection::connect_once(client_opts(n3.client_url(), "node-3"));
  REQUIRE(ensure_stream(*conn3, spec, stop));  // idempotent from another node
  publish(*conn3, spec.subject, "a");
  publish(*conn1, spec.subject, "b");
  auto st = stream_state(*conn3, spec.name);
  REQUIRE(st.has_value());
  REQUIRE(st->last_seq == 2);
  REQUIRE(st->messages == 2);
}

TEST_CASE("nats client: connect keeps retrying until a server appears, stop interrupts it",
          "[nats]") {
  TempDir dir("nats-retry");
  int port = free_port();
  std::atomic<bool> stop{false};
  SECTION("stop") {
    auto opts = client_opts("nats://127.0.0.1:" + std::to_string(port));
    auto result =
        std::async(std::launch::async, [&] { return NatsConnection::connect(opts, stop); });
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    stop = true;
    REQUIRE(result.wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    REQUIRE(result.get() == nullptr);
  }
  SECTION("late server") {
    auto opts = client_opts("nats://127.0.0.1:" + std::to_string(port));
    auto result =
        std::async(std::launch::async, [&] { return NatsConnection::connect(opts, stop); });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    auto o = server_opts(dir, "late");
    o.client_port = port;
    EmbeddedServer server(o);
    server.start(std::chrono::seconds(10));
    REQUIRE(result.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    auto conn = result.get();
    REQUIRE(conn);
    REQUIRE(conn->connected());
  }
}

TEST_CASE("nats client: nkey seed files and URL redaction", "[nats]") {
  // Pair from the nkeys documentation (an operator key).
  REQUIRE(nkey_public_key("SOAELH6NJCEK4HST5644G4HK7TOAFZGRRJHNM4EUKUY7PPNDLIKO5IH4JM") ==
          "ODPWIBQJVIQ42462QAFI2RKJC4RZHCQSIVPRDDHWFCJAP52NRZK6Z2YC");
  REQUIRE_THROWS(nkey_public_key("SOAELH6NJCEK4HST5644G4HK7TOAFZGRRJHNM4EUKUY7PPNDLIKO5IH4JA"));
  REQUIRE(redact_url("nats://user:secret@host:4222") == "nats://user:***@host:4222");
  REQUIRE(redact_url("nats://token@host:4222") == "nats://***@host:4222");
  REQUIRE(redact_url("nats://host:4222") == "nats://host:4222");

  TempDir dir("nats-nkey");
  std::string seed = nkey_create_user_seed();
  REQUIRE(seed.rfind("SU", 0) == 0);
  std::string pub = nkey_public_key(seed);
  REQUIRE(pub.rfind("U", 0) == 0);
  write_file(dir.file("user.nk"), seed + "\n");
  write_file(dir.file("auth.conf"), "authorization { users = [ { nkey: \"" + pub + "\" } ] }\n");
  auto o = server_opts(dir, "nkey");
  o.config_file = dir.file("auth.conf");
  EmbeddedServer server(o);
  server.start(std::chrono::seconds(10));
  REQUIRE_THROWS(NatsConnection::connect_once(client_opts(server.client_url())));
  auto with_seed = client_opts(server.client_url());
  with_seed.nkey_seed_file = dir.file("user.nk");
  auto conn = NatsConnection::connect_once(with_seed);
  REQUIRE(conn->connected());
}
