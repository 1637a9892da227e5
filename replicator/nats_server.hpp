// The embedded nats-server: a supervised child process (spawn, port discovery, readiness,
// restart with backoff, stop) that never outlives the replicator, and the config file
// generated for it (max_payload, credentials, the user's server_config layered in).
#pragma once
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace harmony {

struct EmbeddedServerOptions {
  std::string binary = "nats-server";
  std::string server_name;  // required for clustered JetStream, "harmonylite-<nodeid>"
  // Client listener host; "" = the server's default (0.0.0.0 unless the config says otherwise).
  std::string client_host = "127.0.0.1";
  int client_port = -1;                   // -1 = random free port, discovered after start
  std::string cluster_listen;             // "localhost:4221" (route listener); "" = not clustered
  std::vector<std::string> routes;        // "nats://localhost:4221/", ...
  std::vector<std::string> leaf_remotes;  // leafnode remote URLs
  std::string cluster_name = "harmonylite";
  std::string config_file;     // the user's [nats] server_config ("" = none)
  std::string store_dir;       // required: JetStream store and our run files (created if missing)
  std::string user, password;  // when set, the client port requires them
  std::string log_file;        // the server's own log; "" = <store_dir>/nats-server.log
  int64_t max_payload_bytes = 8 << 20;
};

// One nats-server child and the supervisor thread that forked it. The child gets
// PR_SET_PDEATHSIG(SIGKILL), which fires when the *forking thread* exits, so every fork happens
// on the supervisor thread, which lives exactly as long as the server should. SIGKILL rather
// than SIGTERM: it frees the store dir and the fixed cluster port at once, so a replicator that
// is restarted right after a crash can start its server again (JetStream's file store recovers
// from abrupt termination).
//
// Configuration layering, lowest to highest priority:
//   1. <store_dir>/harmonylite-nats-server.conf, generated: max_payload, http (monitor) on
//      127.0.0.1 with a random port, a self route when clustered without routes, leaf remotes.
//      nats-server applies a file's keys in Go map order (randomly), so when two different key
//      names set one option (http vs monitor_port, leaf vs leafnodes) the winner is random; the
//      monitor and leafnodes defaults are therefore left out when the user's file sets them;
//   2. the user's server_config, pulled in with `include` (a path relative to the generated
//      file, as nats-server resolves includes relative to the including file);
//   3. the credentials block, written after the include (so it wins, and the password stays off
//      the process list, unlike --user/--pass);
//   4. command-line flags: -js, -sd, -n, -a, -p, -m, --cluster, --cluster_name, --routes, -l,
//      --ports_file_dir.
// nats-server 2.9 refuses to start when -sd is given and the config file also sets store_dir
// ("Duplicate 'store_dir' configuration"), so when the user's file sets one we include a copy
// without it (store_dir removed, relative includes rebased) and log that ours is used.
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
  void write_config();
  pid_t spawn(const std::vector<std::string>& argv, std::string& error);
  // Waits for readiness of `child`. Returns "" when ready, otherwise the reason; `exited` tells
  // whether the child was reaped meanwhile (with its wait status in `status`).
  std::string wait_ready(pid_t child, std::chrono::milliseconds timeout, bool& exited, int& status);
  std::string failure_details() const;
  void terminate_child(pid_t child, std::chrono::milliseconds grace);
  bool wait_stop_or_exit(pid_t child, int& status);  // true = child exited (status set)

  EmbeddedServerOptions opts_;
  std::string run_dir_, config_path_, out_path_, log_path_;

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
