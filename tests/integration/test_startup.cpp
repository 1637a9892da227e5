// Start-up of the replicator: the embedded server on an IPv6 bind address, a step that fails
// while worker threads already run, and the runtime pid that -cleanup and -save-snapshot read.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "replicator/common/runtime_info.hpp"
#include "replicator/config/config.hpp"
#include "replicator/node/replicator.hpp"
#include "shared/capture.hpp"
#include "shared/error.hpp"
#include "tests/support/cluster.hpp"
#include "tests/support/support.hpp"

using namespace harmony;
using namespace harmony::test;

namespace {

constexpr const char* kNoSnapshots = "[snapshot]\nenabled = false\n";

bool loopback_has_ipv6() {
  return run_command({"ip", "-6", "addr", "show", "lo"}).output.find("::1") != std::string::npos;
}

// `sqlite3 <db>` kept alive by reading an open pipe: a process whose command line mentions
// harmonylite although it is not harmonylite (the stale-pid case after kill -9 and pid reuse).
class SqliteShellChild {
 public:
  explicit SqliteShellChild(const std::string& db) {
    int fds[2];
    REQUIRE(pipe(fds) == 0);
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      dup2(fds[0], STDIN_FILENO);
      close(fds[0]);
      close(fds[1]);
      execlp("sqlite3", "sqlite3", db.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    close(fds[0]);
    stdin_ = fds[1];
  }
  ~SqliteShellChild() {
    close(stdin_);  // EOF: the shell exits
    int status = 0;
    waitpid(pid_, &status, 0);
  }
  SqliteShellChild(const SqliteShellChild&) = delete;
  SqliteShellChild& operator=(const SqliteShellChild&) = delete;
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  int stdin_ = -1;
};

void record_runtime_pid(const std::string& db_path, int64_t pid) {
  Db db = Db::open(db_path);
  ensure_base_schema(db);
  meta_set(db, "runtime_pid", pid);
  meta_set(db, "runtime_nats_url", Text{"nats://127.0.0.1:1"});
}

}  // namespace

TEST_CASE("start-up: bind_address [::1] starts the embedded server on IPv6 loopback",
          "[startup][nats]") {
  if (!loopback_has_ipv6()) {
    WARN("lo has no ::1 (ip -6 addr show lo): IPv6 bind case not run");
    return;
  }
  ClusterOptions o;
  o.nodes = 1;
  o.nats_extra = "bind_address = \"[::1]:-1\"\n";
  TestCluster c(o);
  c.set_node_sections(0, kNoSnapshots);
  c.start(0);
  INFO(c.all_logs());
  REQUIRE(c.wait_ready(0, 30s));
  const std::string url =
      c.query_text(0, "SELECT value FROM __harmony_meta WHERE key='runtime_nats_url'");
  CHECK(url.rfind("nats://[::1]:", 0) == 0);
  CHECK(url.find("[[") == std::string::npos);
  CHECK(c.stop(0) == 0);
}

TEST_CASE("start-up: a step failing after the publisher started returns the error, no hang",
          "[startup]") {
  TempDir dir("startup-fail");
  Config config;
  config.db_path = dir.file("app.db");
  {
    Db db = Db::open(config.db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  }
  config.nats.store_dir = dir.file("nats");
  config.snapshot.enabled = false;
  StartupHooks hooks;
  hooks.worker_started = [](const std::string& worker) {
    if (worker == "publisher") throw Error("injected failure after the publisher started");
  };
  // A detached thread, so that a hang fails this test instead of blocking the test binary.
  auto outcome = std::make_shared<std::promise<std::string>>();
  auto result = outcome->get_future();
  std::thread([config, hooks, outcome] {
    try {
      run_replicator(config, CliOptions{}, hooks);
      outcome->set_value("returned without an error");
    } catch (const std::exception& e) {
      outcome->set_value(e.what());
    }
  }).detach();
  constexpr auto kNoHang = std::chrono::seconds(40);  // start-up of nats-server included
  REQUIRE(result.wait_for(kNoHang) == std::future_status::ready);
  CHECK(result.get() == "injected failure after the publisher started");
}

TEST_CASE("start-up: a stale runtime pid reused by another program is not a running replicator",
          "[startup][ops]") {
  TempDir dir("stale-pid");
  // The other program's command line mentions harmonylite, like a shell on /tmp/harmonylite-1.db.
  const std::string db_path = dir.file("harmonylite-1.db");
  const std::string other_db = dir.file("harmonylite-other.db");
  {
    Db db = Db::open(db_path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
  }
  SqliteShellChild shell(other_db);
  REQUIRE(wait_until(
      [&] {
        return read_file(fmt::format("/proc/{}/cmdline", shell.pid())).find("harmonylite") !=
               std::string::npos;
      },
      5s));
  record_runtime_pid(db_path, shell.pid());
  CHECK_FALSE(running_replicator(db_path).has_value());
  const std::string config = dir.file("app.toml");
  write_file(config, fmt::format("db_path = \"{}\"\n", db_path));
  auto cleanup = run_command({harmonylite_path(), "-config", config, "-cleanup"});
  INFO(cleanup.output);
  CHECK(cleanup.exit_code == 0);
}

TEST_CASE("start-up: the pid of a real harmonylite replicator is recognised", "[startup][ops]") {
  ClusterOptions o;
  o.nodes = 1;
  TestCluster c(o);
  c.set_node_sections(0, kNoSnapshots);
  c.start(0);
  INFO(c.all_logs());
  REQUIRE(c.wait_ready(0, 30s));
  auto running = running_replicator(c.db(0));
  REQUIRE(running.has_value());
  CHECK(running->pid == c.process(0)->pid());
  CHECK(c.stop(0) == 0);
}
