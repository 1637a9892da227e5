// The replicator process (see replicator.hpp): signals, the node from start to stop, -cleanup
// and the runtime information other invocations read.
#include "replicator/replicator.hpp"

#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <string_view>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/database.hpp"
#include "replicator/node.hpp"
#include "shared/capture.hpp"
#include "shared/files.hpp"
#include "shared/outbox.hpp"

namespace harmony {

namespace {

constexpr std::string_view kExecutableName = "harmonylite";

// The file name of the program `pid` runs: its executable, or argv[0] when /proc/<pid>/exe cannot
// be read (another user's process).
std::string program_name(int64_t pid) {
  const std::string proc = fmt::format("/proc/{}", pid);
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink(proc + "/exe", ec);
  if (!ec) {
    std::string name = exe.filename().string();
    // A binary replaced while it runs (an upgrade, a rebuild) reads as "harmonylite (deleted)".
    constexpr std::string_view kDeleted = " (deleted)";
    if (name.ends_with(kDeleted)) name.resize(name.size() - kDeleted.size());
    return name;
  }
  const std::string cmdline = read_whole_file(proc + "/cmdline").value_or("");
  const std::string argv0 = cmdline.substr(0, cmdline.find('\0'));
  return std::filesystem::path(argv0).filename().string();
}

// A live process running the harmonylite executable. Only the program counts, not its
// arguments: after kill -9 the recorded pid may be reused by, say, `sqlite3 harmonylite-1.db`.
bool pid_is_harmonylite(int64_t pid) {
  if (pid <= 0 || kill(static_cast<pid_t>(pid), 0) != 0) return false;
  return program_name(pid) == kExecutableName;
}

// SIGINT and SIGTERM are taken synchronously by SignalWatch. Blocked before any thread starts,
// so that every thread inherits the mask and none of them is killed by the default action.
sigset_t block_shutdown_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Sets `stop` when SIGINT or SIGTERM arrives, until destroyed (which sets `stop` too).
class SignalWatch {
 public:
  SignalWatch(const sigset_t& signals, std::atomic<bool>& stop)
      : stop_(stop), thread_([this, signals] { watch(signals); }) {}
  ~SignalWatch() {
    stop_ = true;
    thread_.join();
  }
  SignalWatch(const SignalWatch&) = delete;
  SignalWatch& operator=(const SignalWatch&) = delete;

 private:
  void watch(const sigset_t& signals) {
    constexpr timespec kStopCheck{0, 200'000'000};  // how soon `stop` set elsewhere is noticed
    while (!stop_) {
      const int sig = sigtimedwait(&signals, nullptr, &kStopCheck);
      if (sig == SIGINT || sig == SIGTERM) {
        spdlog::info("received {}, shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
        stop_ = true;
      }
    }
  }
  std::atomic<bool>& stop_;
  std::thread thread_;
};

}  // namespace

std::string stream_name(const Config& c, int shard) {
  return fmt::format("{}-{}", c.nats.stream_prefix, shard);
}
std::string subject_name(const Config& c, int shard) {
  return fmt::format("{}-{}", c.nats.subject_prefix, shard);
}
int publish_shard(const Config& c, uint64_t node) {
  return static_cast<int>(node % static_cast<uint64_t>(c.replication_log.shards)) + 1;
}

std::optional<RuntimeInfo> running_replicator(const std::string& db_path) {
  try {
    Db db = Db::open(db_path, SQLITE_OPEN_READONLY);
    if (db.query_int("SELECT count(*) FROM sqlite_schema WHERE name='__harmony_meta'") == 0)
      return std::nullopt;
    RuntimeInfo info;
    info.pid = meta_get_int(db, "runtime_pid", 0);
    if (auto url = meta_get(db, "runtime_nats_url"); url && std::holds_alternative<Text>(*url))
      info.nats_url = std::get<Text>(*url).bytes;
    if (!pid_is_harmonylite(info.pid) || info.pid == getpid()) return std::nullopt;
    return info;
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

int run_cleanup(const Config& config, bool force) {
  if (auto running = running_replicator(config.db_path)) {
    spdlog::error("a harmonylite replicator (pid {}) is running on {}; stop it before -cleanup",
                  running->pid, config.db_path);
    return 1;
  }
  Db db = open_database(config.db_path);
  int64_t pending = 0;
  if (db.query_int("SELECT count(*) FROM sqlite_schema WHERE name='__harmony_tables'") > 0)
    pending = total_pending(db, captured_tables(db));
  if (pending > 0 && !force) {
    spdlog::error(
        "{} has {} unpublished change(s); -cleanup would lose them. Run the replicator until "
        "they are published, or add -force to drop them",
        config.db_path, pending);
    return 1;
  }
  Transaction tx(db);
  remove_all_objects(db);
  tx.commit();
  spdlog::info("removed every harmonylite object from {}{}", config.db_path,
               pending ? fmt::format(" ({} unpublished changes dropped)", pending) : "");
  return 0;
}

int run_replicator(const Config& config, const CliOptions& cli, const StartupHooks& hooks) {
  const sigset_t signals = block_shutdown_signals();
  std::atomic<bool> stop{false};
  // Database, capture, health endpoints and the embedded nats-server. Whatever fails from here
  // on, ~Node stops and joins the workers before destroying what they use.
  Node node(config, cli, stop);
  // From here on, SIGINT/SIGTERM must interrupt long waits (connect, stream creation).
  SignalWatch signal_watch(signals, stop);
  if (!node.connect()) return 0;
  node.start_workers(hooks);
  node.run_until_stopped();
  return 0;
}

}  // namespace harmony
