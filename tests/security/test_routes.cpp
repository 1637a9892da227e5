// The embedded nats-server's cluster routes and files (issue 14, items 2 and 11): a stock
// nats-server that reaches -cluster-addr without the route credentials cannot join the cluster
// or publish into the change streams; routes and the client port speak TLS when configured
// (and a plain-text client is refused); the route password stays out of logs and command lines;
// a symlink planted at nats-server's log path is not followed and a store directory others may
// write to is refused. Real harmonylite and nats-server processes on loopback.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <fmt/format.h>

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "replicator/common/address.hpp"
#include "replicator/common/runtime_info.hpp"
#include "replicator/nats/nats_client.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/http.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;
namespace fs = std::filesystem;

namespace {

constexpr const char* kRouteUser = "route-user";
constexpr const char* kRoutePassword = "R0ute-Secret-x9";
constexpr const char* kNatsPassword = "Cl1ent-Secret-p4";
constexpr const char* kStream = "harmonylite-changes-1";
constexpr const char* kSubject = "harmonylite-change-log-1";

bool contains(const std::string& text, const std::string& what) {
  return text.find(what) != std::string::npos;
}

// The command line of process `pid`, its arguments joined by spaces.
std::string cmdline_of(int pid) {
  std::string s = read_file("/proc/" + std::to_string(pid) + "/cmdline");
  for (char& ch : s)
    if (ch == '\0') ch = ' ';
  return s;
}

// The embedded nats-server: the only child of a harmonylite process.
int server_pid_of(int pid) {
  const auto r = run_command({"pgrep", "-P", std::to_string(pid)});
  return r.output.empty() ? -1 : std::stoi(r.output);
}

// [nats] lines for the nodes: the client password and the route credentials.
std::string nats_keys() {
  return fmt::format(
      "user_name = \"hl\"\nuser_password = \"{}\"\ncluster_user = \"{}\"\n"
      "cluster_password = \"{}\"\n",
      kNatsPassword, kRouteUser, kRoutePassword);
}

// The port of node i's -cluster-addr (TestCluster chose it; the command line tells).
int cluster_port_of(TestCluster& c, int i) {
  const std::string argv = cmdline_of(c.process(i)->pid());
  const std::string flag = "-cluster-addr ";
  const auto at = argv.find(flag);
  if (at == std::string::npos) return -1;
  const auto from = at + flag.size();
  const auto address = parse_host_port(argv.substr(from, argv.find(' ', from) - from));
  return address ? address->port : -1;
}

// The client port of node i's embedded server (recorded in its database once it connected).
int client_port_of(TestCluster& c, int i) {
  const auto running = running_replicator(c.db(i));
  const auto address = running ? parse_url_address(running->nats_url) : std::nullopt;
  return address ? address->port : -1;
}

// A stock nats-server, as an intruder would start it: its own client port without auth and a
// route to the victim's cluster port (with whatever credentials the URL carries).
struct Intruder {
  int client_port = free_port(), monitor_port = free_port();
  std::unique_ptr<Process> process;
  Intruder(const TempDir& dir, const std::string& name, const std::string& route) {
    process = std::make_unique<Process>(
        std::vector<std::string>{"nats-server", "-a", "127.0.0.1", "-p",
                                 std::to_string(client_port), "-m", std::to_string(monitor_port),
                                 "-n", name, "--cluster",
                                 fmt::format("nats://127.0.0.1:{}", free_port()), "--cluster_name",
                                 "harmonylite", "--routes", route},
        dir.file(name + ".log"));
  }
  int routes() const {
    const auto r = http_get(monitor_port, "/routez");
    const auto at = r.body.find("\"num_routes\":");
    return at == std::string::npos ? -1 : std::atoi(r.body.c_str() + at + 13);
  }
  bool refused() const { return contains(process->log(), "Authorization Violation"); }
  // Waits until the route is up or the victim refused it.
  bool joined() const {
    wait_until([&] { return routes() > 0 || refused(); }, 20s);
    return routes() > 0;
  }
};

uint64_t stream_messages(NatsConnection& conn) {
  const auto state = stream_state(conn, kStream);
  return state ? state->messages : 0;
}

// Publishes on the intruder's client port until the victim's stream grows (true) or `window`
// has passed (false).
bool forged_message_arrives(const Intruder& intruder, NatsConnection& victim,
                            std::chrono::milliseconds window) {
  ConnectOptions o;
  o.urls = {fmt::format("nats://127.0.0.1:{}", intruder.client_port)};
  auto conn = NatsConnection::connect_once(o);
  const uint64_t before = stream_messages(victim);
  return wait_until(
      [&] {
        natsConnection_PublishString(conn->get(), kSubject, "forged batch");
        natsConnection_Flush(conn->get());
        return stream_messages(victim) > before;
      },
      window, 100ms);
}

std::unique_ptr<NatsConnection> connect_victim(int client_port) {
  ConnectOptions o;
  o.urls = {fmt::format("nats://127.0.0.1:{}", client_port)};
  o.user = "hl";
  o.password = kNatsPassword;
  return NatsConnection::connect_once(o);
}

// A throwaway CA and one certificate for 127.0.0.1/localhost, usable as server and as client
// (routes present it both ways), made with the openssl command line.
struct TestCerts {
  std::string ca, cert, key;
  explicit TestCerts(const TempDir& dir) {
    ca = dir.file("ca.pem");
    cert = dir.file("node.pem");
    key = dir.file("node-key.pem");
    const std::string ca_key = dir.file("ca-key.pem"), csr = dir.file("node.csr"),
                      ext = dir.file("node.ext");
    write_file(ext,
               "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
               "extendedKeyUsage=serverAuth,clientAuth\n");
    for (const auto& argv : std::vector<std::vector<std::string>>{
             {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out",
              ca, "-days", "1", "-subj", "/CN=harmonylite test CA"},
             {"openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
              "-subj", "/CN=localhost"},
             {"openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
              "-out", cert, "-days", "1", "-extfile", ext}}) {
      const auto r = run_command(argv);
      INFO(r.output);
      REQUIRE(r.exit_code == 0);
    }
  }
};

// The first line a server sends on `port` (its INFO), and whether it answers a plain-text
// CONNECT + PING with PONG.
struct PlainProbe {
  std::string info;
  bool pong = false;
};
PlainProbe plain_text_probe(int port) {
  PlainProbe probe;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n > 0) probe.info.assign(buf, static_cast<size_t>(n));
    const std::string hello = fmt::format(
        "CONNECT {{\"verbose\":false,\"user\":\"hl\",\"pass\":\"{}\"}}\r\nPING\r\n", kNatsPassword);
    (void)!::send(fd, hello.data(), hello.size(), MSG_NOSIGNAL);
    std::string answer;
    while ((n = ::recv(fd, buf, sizeof buf, 0)) > 0) {
      answer.append(buf, static_cast<size_t>(n));
      if (contains(answer, "PONG") || contains(answer, "-ERR")) break;
    }
    probe.pong = contains(answer, "PONG");
  }
  ::close(fd);
  return probe;
}

}  // namespace

TEST_CASE("routes: a stock nats-server without the route credentials cannot join or publish",
          "[security][routes]") {
  // Two nodes: a lone clustered server has no JetStream until a route comes up.
  ClusterOptions o;
  o.nodes = 2;
  o.nats_extra = nats_keys();
  TestCluster c(o);
  c.start_all();
  if (!c.wait_ready(0) || !c.wait_ready(1)) FAIL(c.all_logs());
  auto victim = connect_victim(client_port_of(c, 0));
  TempDir dir("routes-intruder");
  const std::string target = fmt::format("127.0.0.1:{}", cluster_port_of(c, 0));

  for (const std::string& credentials : {std::string(), std::string("route-user:wrong@")}) {
    Intruder intruder(dir, credentials.empty() ? "no-credentials" : "wrong-password",
                      "nats://" + credentials + target);
    const bool joined = intruder.joined();
    const bool arrived = forged_message_arrives(intruder, *victim, 2s);
    INFO("intruder route credentials: '" << credentials << "'; its log:\n"
                                         << intruder.process->log());
    CHECK_FALSE(joined);
    CHECK(intruder.refused());
    CHECK_FALSE(arrived);
    intruder.process->stop();
  }
  // Control: with the route password the same server joins and its message reaches the stream,
  // so the refusals above are the credentials' doing, not a broken setup.
  Intruder member(dir, "right-password",
                  fmt::format("nats://{}:{}@{}", kRouteUser, kRoutePassword, target));
  const bool joined = member.joined();
  const bool arrived = forged_message_arrives(member, *victim, 10s);
  INFO("member's log:\n" << member.process->log());
  CHECK(joined);
  CHECK(arrived);
  member.process->stop();
  victim.reset();
  CHECK(c.stop(1) == 0);
  CHECK(c.stop(0) == 0);
}

TEST_CASE("routes: a TLS cluster replicates, plain-text clients and routes are refused",
          "[security][routes][tls]") {
  TempDir certs_dir("routes-tls");
  TestCerts certs(certs_dir);
  ClusterOptions o;
  o.nodes = 2;
  o.nats_extra = fmt::format(
      "tls_ca_file = \"{}\"\ntls_cert_file = \"{}\"\ntls_key_file = \"{}\"\ntls_verify = true\n"
      "cluster_user = \"{}\"\ncluster_password = \"{}\"\n",
      certs.ca, certs.cert, certs.key, kRouteUser, kRoutePassword);
  TestCluster c(o);
  c.start_all();
  if (!c.wait_ready(0) || !c.wait_ready(1)) FAIL(c.all_logs());
  c.exec(0, "INSERT INTO Books(title, author, publication_year) VALUES ('Dune', 'Herbert', 1965)");
  CHECK(wait_until([&] { return c.query_int(1, "SELECT count(*) FROM Books") == 1; }, 30s));
  INFO(c.all_logs());

  // The replicator's own connection verified the server's certificate; a plain-text client is
  // told TLS is required and gets no PONG.
  const auto client = plain_text_probe(client_port_of(c, 0));
  INFO("client port INFO: " << client.info);
  CHECK(contains(client.info, "\"tls_required\":true"));
  CHECK_FALSE(client.pong);
  // The route listener starts with the TLS handshake: no plain-text INFO for a route.
  const auto route = plain_text_probe(cluster_port_of(c, 0));
  INFO("route port answer: " << route.info);
  CHECK_FALSE(contains(route.info, "INFO "));
  // A TLS node exits cleanly too (it used to die with SIGSEGV in libcrypto's exit handler).
  CHECK(c.stop(1) == 0);
  CHECK(c.stop(0) == 0);
}

TEST_CASE("routes: the route password is in the 0600 config only, not in logs or command lines",
          "[security][routes][secrets]") {
  ClusterOptions o;
  o.nodes = 2;
  o.nats_extra = nats_keys();
  TestCluster c(o);
  c.start_all();
  if (!c.wait_ready(0) || !c.wait_ready(1)) FAIL(c.all_logs());
  for (int i = 0; i < 2; ++i) {
    const int server = server_pid_of(c.process(i)->pid());
    REQUIRE(server > 0);
    const std::string server_argv = cmdline_of(server);
    const std::string store = fmt::format("{}/nats-{}", c.dir(), i + 1);
    INFO("node " << i + 1 << "'s nats-server argv: " << server_argv);
    for (const char* secret : {kRoutePassword, kNatsPassword}) {
      INFO("secret " << secret);
      CHECK_FALSE(contains(c.log(i), secret));
      CHECK_FALSE(contains(cmdline_of(c.process(i)->pid()), secret));
      CHECK_FALSE(contains(server_argv, secret));
      CHECK_FALSE(contains(read_file(store + "/nats-server.log"), secret));
    }
    // The route password is in use: in the generated config, which only its owner can read.
    const std::string conf = store + "/harmonylite-nats-server.conf";
    struct stat st {};
    REQUIRE(::stat(conf.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    CHECK(contains(read_file(conf), kRoutePassword));
  }
  CHECK(c.stop(1) == 0);
  CHECK(c.stop(0) == 0);
}

TEST_CASE("routes: a symlink at nats-server's log path is not followed", "[security][routes]") {
  ClusterOptions o;
  o.nodes = 1;
  TestCluster c(o);
  const std::string store = c.dir() + "/nats-1", victim = c.dir() + "/victim.txt";
  fs::create_directories(store);
  fs::permissions(store, fs::perms::owner_all);
  write_file(victim, "precious\n");
  fs::create_symlink(victim, store + "/nats-server.log");
  c.start(0);
  // Either the node refuses (and exits) or nats-server writes its log through the link.
  wait_until([&] { return !c.running(0) || read_file(victim) != "precious\n"; }, 30s);
  INFO(c.all_logs());
  CHECK(read_file(victim) == "precious\n");
  CHECK_FALSE(c.running(0));
  CHECK(contains(c.log(0), "is a symbolic link"));
  c.stop(0);
}

TEST_CASE("routes: a nats store directory others can write to is refused", "[security][routes]") {
  ClusterOptions o;
  o.nodes = 1;
  TestCluster c(o);
  const std::string store = c.dir() + "/nats-1";
  fs::create_directories(store);
  fs::permissions(store, fs::perms::all);  // 0777
  c.start(0);
  wait_until([&] { return !c.running(0) || contains(c.log(0), "embedded nats-server running"); },
             30s);
  INFO(c.all_logs());
  CHECK_FALSE(c.running(0));
  CHECK(contains(c.log(0), "is writable by group or others (mode 0777)"));
  c.stop(0);
}
