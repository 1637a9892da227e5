// The embedded nats-server process: a supervised child (spawn, port discovery, readiness,
// restart on the same ports with backoff, stop) that never outlives the replicator. What it is
// told (options, generated config, command line) is in nats_server_config.hpp.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "replicator/nats/nats_server_config.hpp"

namespace harmony {

// One nats-server child and the supervisor thread that forked it. The child gets
// PR_SET_PDEATHSIG(SIGKILL), which fires when the *forking thread* exits, so every fork happens
// on the supervisor thread, which lives exactly as long as the server should. SIGKILL rather
// than SIGTERM: it frees the store dir and the fixed cluster port at once, so a replicator that
// is restarted right after a crash can start its server again (JetStream's file store recovers
// from abrupt termination).
//
// The config it is given is generated at every start() (see nats_server_config.hpp).
class EmbeddedServer {
 public:
  explicit EmbeddedServer(EmbeddedServerOptions opts);
  ~EmbeddedServer();  // stops the child
  EmbeddedServer(const EmbeddedServer&) = delete;
  EmbeddedServer& operator=(const EmbeddedServer&) = delete;

  // Spawns the server and waits until it accepts clients (ports file read, INFO received on
  // the client port). Throws harmony::Error with the reason and the tail of the server's
  // output/log: binary missing, port in use, bad config file, timeout.
  void start(std::chrono::milliseconds ready_timeout);

  std::string client_url() const;  // nats://127.0.0.1:<port> (or the bound host)
  int client_port() const;
  int monitor_port() const;  // HTTP monitor (/healthz, /jsz); -1 when the config disabled it
  pid_t pid() const;         // the current child, -1 when none
  bool running() const;
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5));  // SIGTERM, then SIGKILL
  int restarts() const;
  const EmbeddedServerOptions& options() const { return opts_; }
  std::string config_path() const;  // the generated config file

 private:
  struct Ports {
    int client = -1, monitor = -1;
  };
  void supervise(std::chrono::milliseconds ready_timeout);
  std::vector<std::string> build_argv(bool first) const;
  pid_t spawn(const std::vector<std::string>& argv, std::string& error);
  // Waits for readiness of `child`. Returns "" when ready, otherwise the reason; `exited` tells
  // whether the child was reaped meanwhile (with its wait status in `status`).
  std::string wait_ready(pid_t child, std::chrono::milliseconds timeout, bool& exited, int& status);
  // Tells start() how the first start went; false = it failed and the supervisor is done.
  bool answer_start(pid_t child, const std::string& error, bool exited);
  void log_restart(pid_t child, const std::string& error, bool exited) const;
  std::string failure_details() const;
  void terminate_child(pid_t child, std::chrono::milliseconds grace);
  void stop_child(pid_t child);  // on stop(): terminate_child with stop()'s grace
  bool wait_stop_or_exit(pid_t child, int& status);    // true = child exited (status set)
  bool wait_stop_or(std::chrono::milliseconds delay);  // true = stop() was called

  EmbeddedServerOptions opts_;
  ServerFiles files_;

  std::mutex stop_mu_;  // serializes stop() (joins the supervisor)
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::thread supervisor_;
  pid_t pid_ = -1;
  Ports ports_;
  int restarts_ = 0;
  bool started_ = false;
  bool start_done_ = false;  // the supervisor has answered start()
  std::string start_error_;
  bool stop_requested_ = false;
  std::chrono::milliseconds stop_grace_{5000};
};

}  // namespace harmony
