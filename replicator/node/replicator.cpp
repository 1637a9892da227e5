// The replicator process (see replicator.hpp): signals, the node from start to stop, -cleanup
// and the runtime information other invocations read.
#include "replicator/node/replicator.hpp"

#include <signal.h>
#include <unistd.h>

#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "replicator/common/database.hpp"
#include "replicator/common/harmonylite_leftovers.hpp"
#include "replicator/common/runtime_info.hpp"
#include "replicator/node/node.hpp"
#include "shared/capture.hpp"
#include "shared/outbox.hpp"

namespace harmony {

namespace {

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
  // HarmonyLite's own triggers and tables too: -cleanup is how a migrated database sheds them.
  const auto harmonylite = remove_harmonylite_leftovers(db);
  tx.commit();
  spdlog::info("removed every harmonylite object from {}{}", config.db_path,
               pending ? fmt::format(" ({} unpublished changes dropped)", pending) : "");
  if (!harmonylite.empty())
    spdlog::info("removed HarmonyLite's {} trigger(s) and {} table(s) from {}",
                 harmonylite.triggers.size(), harmonylite.tables.size(), config.db_path);
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
