// Supervision of the embedded nats-server child: fork/exec from the supervisor thread, port
// discovery through --ports_file_dir, readiness (INFO on the client port), restart on the same
// ports with backoff, and SIGTERM/SIGKILL stop. See nats_server.hpp for the rules; the config
// and command line it starts the child with come from nats_server_config.cpp.
#include "replicator/nats/nats_server.hpp"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include <spdlog/spdlog.h>

#include "replicator/common/address.hpp"
#include "shared/error.hpp"
#include "shared/files.hpp"

namespace harmony {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Restart backoff: doubles from the first to the max, and starts over once a child ran longer
// than kStableUptime (a crash loop backs off, a rare crash restarts quickly).
constexpr auto kFirstRestartBackoff = 500ms;
constexpr auto kMaxRestartBackoff = 10s;
constexpr auto kStableUptime = 30s;
// A restarted server recovers its JetStream store before it listens: more than a first start.
constexpr auto kRestartReadyTimeout = 60s;
constexpr auto kGreetingTimeout = 500ms;  // for the INFO line, per connection attempt
constexpr auto kReadinessPoll = 25ms;     // ports file and client port, while starting
constexpr auto kExitPoll = 100ms;         // reaping the running child

// The last `max_lines` lines of a file (at most ~4 KiB), or "" when missing/empty.
std::string tail_of(const std::string& path, int max_lines) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return "";
  std::streamoff size = in.tellg();
  std::streamoff from = size > 4096 ? size - 4096 : 0;
  in.seekg(from);
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  while (!data.empty() && (data.back() == '\n' || data.back() == '\r')) data.pop_back();
  size_t pos = data.size();
  for (int i = 0; i < max_lines && pos != std::string::npos && pos > 0; ++i)
    pos = data.rfind('\n', pos - 1);
  if (pos != std::string::npos && pos < data.size() && data[pos] == '\n') ++pos;
  if (pos == std::string::npos) pos = 0;
  return data.substr(pos);
}

// waitpid(WNOHANG) that also counts a child we cannot wait for (ECHILD: someone set SIGCHLD to
// SIG_IGN or reaped it) as gone, so the supervisor never waits forever on it.
bool reaped(pid_t child, int& status) {
  pid_t r = waitpid(child, &status, WNOHANG);
  if (r == child) return true;
  if (r < 0 && errno == ECHILD) {
    status = 0;
    return true;
  }
  return false;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit status " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return "killed by signal " + std::to_string(sig) + " (" + strsignal(sig) + ")";
  }
  return "status " + std::to_string(status);
}

int port_of_url(const std::string& url) {
  const auto address = parse_url_address(url);
  return address ? address->port : -1;
}

// Connects to host:port and waits for the server's "INFO " greeting.
bool client_port_answers(const std::string& host, int port, std::chrono::milliseconds timeout) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0) return false;
  bool ok = false;
  for (addrinfo* ai = res; ai && !ok; ai = ai->ai_next) {
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    pollfd pfd{fd, POLLOUT, 0};
    if (rc == 0 ||
        (errno == EINPROGRESS && poll(&pfd, 1, static_cast<int>(timeout.count())) == 1)) {
      int err = 0;
      socklen_t len = sizeof err;
      getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      if (err == 0) {
        pfd = {fd, POLLIN, 0};
        char buf[5] = {};
        if (poll(&pfd, 1, static_cast<int>(timeout.count())) == 1 &&
            recv(fd, buf, sizeof buf, MSG_WAITALL) == 5 && std::memcmp(buf, "INFO ", 5) == 0)
          ok = true;
      }
    }
    close(fd);
  }
  freeaddrinfo(res);
  return ok;
}

// nats-server writes <name>_<pid>.ports into --ports_file_dir once it listens.
bool is_ports_file_of(const fs::path& file, pid_t child) {
  const std::string name = file.filename().string();
  const std::string suffix = "_" + std::to_string(child) + ".ports";
  return name.size() > suffix.size() &&
         name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The client and monitor ports a ports file lists; client -1 while it is missing or incomplete.
struct ListedPorts {
  int client = -1, monitor = -1;
};
ListedPorts read_ports_file(const fs::path& file) {
  ListedPorts ports;
  try {
    auto j = nlohmann::json::parse(read_whole_file(file.string()).value_or(""));
    if (j.contains("nats") && !j["nats"].empty())
      ports.client = port_of_url(j["nats"][0].get<std::string>());
    if (j.contains("monitoring") && !j["monitoring"].empty())
      ports.monitor = port_of_url(j["monitoring"][0].get<std::string>());
  } catch (const std::exception&) {
    return {};  // written but not complete yet: read again on the next round
  }
  return ports;
}

ListedPorts find_ports_file_of(const std::string& run_dir, pid_t child) {
  ListedPorts found;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir, ec))
    if (is_ports_file_of(entry.path(), child)) found = read_ports_file(entry.path());
  return found;
}

// A stopped server's ports file stays behind; it is removed once the server is replaced.
void remove_ports_files_of(const std::string& run_dir, pid_t child) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir, ec))
    if (is_ports_file_of(entry.path(), child)) fs::remove(entry.path(), ec);
}

void remove_stale_ports_files(const std::string& run_dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(run_dir, ec))
    if (entry.path().extension() == ".ports") fs::remove(entry.path(), ec);
}

// The store directory holds the generated config (with the passwords), the JetStream data and
// the log nats-server opens by name: whoever else may write into it could plant a link there.
// Created 0700; an existing one must be ours and not writable by group or others.
void ensure_private_store_dir(const std::string& dir) {
  std::error_code ec;
  const fs::path parent = fs::path(dir).parent_path();
  if (!parent.empty()) fs::create_directories(parent, ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST)
    throw Error("cannot create nats store directory " + dir + ": " + std::strerror(errno));
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0)
    throw Error("cannot use nats store directory " + dir + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) throw Error("nats store directory " + dir + " is not a directory");
  if (st.st_uid != ::geteuid())
    throw Error("nats store directory " + dir + " is owned by uid " + std::to_string(st.st_uid) +
                ", not by this process's uid " + std::to_string(::geteuid()) +
                ": refusing to use it (its owner could read the generated config's passwords "
                "and replace the stream data)");
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    throw Error("nats store directory " + dir + " is writable by group or others (mode " + mode +
                "): refusing to use it (they could plant links to files nats-server then "
                "writes); run chmod go-w " +
                dir);
  }
}

// nats-server opens its -l log by name and follows a symlink there. Create the file ourselves
// first, without following links, so that the name it opens is our own regular file (in a
// directory nobody else can write to: ensure_private_store_dir).
void ensure_log_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0 && errno == ELOOP)
    throw Error("nats-server log file " + path +
                " is a symbolic link: refusing to start nats-server (it would write its log "
                "wherever the link points); remove the link");
  if (fd < 0)
    throw Error("cannot create nats-server log file " + path + ": " + std::strerror(errno));
  struct stat st {};
  const bool ok =
      ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == ::geteuid() && st.st_nlink == 1;
  if (ok) ::fchmod(fd, 0600);
  ::close(fd);
  if (!ok)
    throw Error("nats-server log file " + path +
                " is not a regular file of this user with a single link: refusing to start "
                "nats-server (it would append its log to it); remove it");
}

}  // namespace

EmbeddedServer::EmbeddedServer(EmbeddedServerOptions opts) : opts_(std::move(opts)) {}

EmbeddedServer::~EmbeddedServer() {
  try {
    stop();
  } catch (...) {
  }
}

std::string EmbeddedServer::config_path() const {
  return files_.config_path;
}

std::vector<std::string> EmbeddedServer::build_argv(bool first) const {
  return first ? server_argv(opts_, files_, opts_.client_port, -1)
               : server_argv(opts_, files_, ports_.client, ports_.monitor);
}

pid_t EmbeddedServer::spawn(const std::vector<std::string>& argv, std::string& error) {
  std::vector<std::string> args = argv;
  std::vector<char*> cargs;
  for (auto& s : args) cargs.push_back(s.data());
  cargs.push_back(nullptr);

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) {
    error = std::string("pipe: ") + std::strerror(errno);
    return -1;
  }
  int outfd =
      open(files_.out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0600);
  int nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    // Child: async-signal-safe calls only until exec.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);  // the replicator died before prctl took effect
    setpgid(0, 0);                        // terminal signals go to the replicator, which stops us
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE, SIGCHLD, SIGUSR1, SIGUSR2})
      sigaction(sig, &dfl, nullptr);
    // Move our fds above the standard ones first, so the dup2s below never hit their own
    // source (which would keep O_CLOEXEC set).
    int errfd = fcntl(pipefd[1], F_DUPFD_CLOEXEC, 10);
    int o = outfd >= 0 ? fcntl(outfd, F_DUPFD_CLOEXEC, 10) : -1;
    int in = nullfd >= 0 ? fcntl(nullfd, F_DUPFD_CLOEXEC, 10) : -1;
    if (in >= 0) dup2(in, 0);
    if (o >= 0) {
      dup2(o, 1);
      dup2(o, 2);
    }
    if (errfd >= 0) errfd = dup3(errfd, 3, O_CLOEXEC);
    close_range(4, ~0U, 0);  // no inherited sockets or files (they would keep ports/locks alive)
    execvp(cargs[0], cargs.data());
    int e = errno;
    if (errfd >= 0) (void)!::write(errfd, &e, sizeof e);
    _exit(127);
  }
  int fork_errno = errno;
  close(pipefd[1]);
  if (outfd >= 0) close(outfd);
  if (nullfd >= 0) close(nullfd);
  if (pid < 0) {
    close(pipefd[0]);
    error = std::string("fork: ") + std::strerror(fork_errno);
    return -1;
  }
  int exec_errno = 0;
  ssize_t r;
  do {
    r = ::read(pipefd[0], &exec_errno, sizeof exec_errno);
  } while (r < 0 && errno == EINTR);
  close(pipefd[0]);
  if (r == static_cast<ssize_t>(sizeof exec_errno)) {
    int st;
    waitpid(pid, &st, 0);
    error = "cannot execute '" + opts_.binary + "': " + std::strerror(exec_errno) +
            (exec_errno == ENOENT ? " (is nats-server installed? set [nats] server_binary)" : "");
    return -1;
  }
  return pid;
}

std::string EmbeddedServer::wait_ready(pid_t child, std::chrono::milliseconds timeout, bool& exited,
                                       int& status) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  ListedPorts found;
  while (true) {
    if (reaped(child, status)) {
      exited = true;
      return "embedded nats-server exited during startup (" + describe_status(status) + ")";
    }
    if (found.client <= 0) found = find_ports_file_of(files_.run_dir, child);
    const bool have_ports = found.client > 0;
    if (have_ports &&
        client_port_answers(dial_host(opts_.client_host), found.client, kGreetingTimeout)) {
      std::lock_guard lk(mu_);
      ports_ = {found.client, found.monitor};
      return "";
    }
    if (wait_stop_or(kReadinessPoll)) return "embedded nats-server start interrupted by stop()";
    if (std::chrono::steady_clock::now() > deadline)
      return "embedded nats-server did not accept clients within " +
             std::to_string(timeout.count()) + " ms" +
             (have_ports ? " (port " + std::to_string(found.client) + ")" : " (no ports file yet)");
  }
}

std::string EmbeddedServer::failure_details() const {
  std::string d;
  if (!opts_.config_file.empty()) d += "; server_config: " + opts_.config_file;
  std::string out = tail_of(files_.out_path, 10);
  if (!out.empty()) d += "; server output:\n" + out;
  std::string log = tail_of(files_.log_path, 10);
  if (!log.empty()) d += "\nserver log (" + files_.log_path + "):\n" + log;
  if ((out + log).find("Duplicate 'store_dir'") != std::string::npos)
    d += "\nhint: harmonylite sets the JetStream store directory itself ([nats] store_dir); "
         "remove store_dir from the files server_config includes";
  return d;
}

void EmbeddedServer::terminate_child(pid_t child, std::chrono::milliseconds grace) {
  int status = 0;
  if (reaped(child, status)) return;
  ::kill(child, SIGTERM);
  auto deadline = std::chrono::steady_clock::now() + grace;
  while (std::chrono::steady_clock::now() < deadline) {
    if (reaped(child, status)) return;
    std::this_thread::sleep_for(20ms);
  }
  spdlog::warn("embedded nats-server (pid {}) did not stop within {} ms; killing it", child,
               grace.count());
  ::kill(child, SIGKILL);
  waitpid(child, &status, 0);
}

bool EmbeddedServer::wait_stop_or_exit(pid_t child, int& status) {
  while (true) {
    if (reaped(child, status)) return true;
    if (wait_stop_or(kExitPoll)) return false;
  }
}

bool EmbeddedServer::wait_stop_or(std::chrono::milliseconds delay) {
  std::unique_lock lk(mu_);
  return cv_.wait_for(lk, delay, [&] { return stop_requested_; });
}

void EmbeddedServer::stop_child(pid_t child) {
  std::chrono::milliseconds grace;
  {
    std::lock_guard lk(mu_);
    grace = stop_grace_;
  }
  terminate_child(child, grace);
  std::lock_guard lk(mu_);
  pid_ = -1;
}

bool EmbeddedServer::answer_start(pid_t child, const std::string& error, bool exited) {
  std::lock_guard lk(mu_);
  if (!error.empty()) {
    if (child > 0 && !exited) terminate_child(child, 0ms);
    pid_ = -1;
    start_error_ = error + failure_details();
    start_done_ = true;
    cv_.notify_all();
    return false;
  }
  started_ = true;
  start_done_ = true;
  cv_.notify_all();
  spdlog::info("embedded nats-server started: pid {}, client {}, monitor port {}", child,
               format_url("nats", {dial_host(opts_.client_host), ports_.client}), ports_.monitor);
  return true;
}

void EmbeddedServer::log_restart(pid_t child, const std::string& error, bool exited) const {
  if (child > 0 && error.empty())
    spdlog::info("embedded nats-server restarted: pid {}, client port {}", child, ports_.client);
  else if (child > 0 && !exited)
    spdlog::warn("restarted embedded nats-server (pid {}): {}", child, error);
}

// One round per child: spawn, wait until ready (the first round answers start()), wait until it
// exits or stop() is called, then restart it after a backoff.
void EmbeddedServer::supervise(std::chrono::milliseconds ready_timeout) {
  bool first = true;
  auto backoff = kFirstRestartBackoff;
  pid_t previous = -1;
  while (true) {
    std::vector<std::string> argv;
    {
      std::lock_guard lk(mu_);
      if (stop_requested_) break;
      argv = build_argv(first);
    }
    std::string error;
    pid_t child = spawn(argv, error);
    if (child > 0) {
      std::lock_guard lk(mu_);
      pid_ = child;
      if (!first) ++restarts_;
    }
    if (previous > 0) remove_ports_files_of(files_.run_dir, previous);
    bool exited = false;
    int status = 0;
    if (child > 0)
      error = wait_ready(child, first ? ready_timeout : kRestartReadyTimeout, exited, status);
    if (first && !answer_start(child, error, exited)) return;
    if (!first) log_restart(child, error, exited);
    first = false;

    auto up_since = std::chrono::steady_clock::now();
    if (child > 0 && !exited && !wait_stop_or_exit(child, status)) {
      stop_child(child);
      break;
    }
    {
      std::lock_guard lk(mu_);
      pid_ = -1;
    }
    previous = child;
    if (std::chrono::steady_clock::now() - up_since > kStableUptime) backoff = kFirstRestartBackoff;
    std::string last = tail_of(child > 0 ? files_.log_path : files_.out_path, 1);
    spdlog::warn("embedded nats-server {} ({}); restarting in {} ms{}{}",
                 child > 0 ? "(pid " + std::to_string(child) + ") stopped unexpectedly"
                           : "could not be started",
                 child > 0 ? describe_status(status) : error, backoff.count(),
                 last.empty() ? "" : "; last log line: ", last);
    if (wait_stop_or(backoff)) break;
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxRestartBackoff);
  }
}

void EmbeddedServer::start(std::chrono::milliseconds ready_timeout) {
  {
    std::lock_guard lk(mu_);
    if (supervisor_.joinable()) throw Error("embedded nats-server: start() called twice");
  }
  if (opts_.store_dir.empty()) throw Error("embedded nats-server: no store directory given");
  if ((opts_.user + opts_.password).find_first_of("\"\\") != std::string::npos)
    throw Error(
        "embedded nats-server: user names and passwords containing '\"' or '\\' are not "
        "supported (the NATS C client sends them unescaped)");
  if (!opts_.cluster_listen.empty() && opts_.server_name.empty())
    throw Error("embedded nats-server: clustered JetStream needs a server name");
  ensure_private_store_dir(opts_.store_dir);
  if (!opts_.config_file.empty()) {
    std::ifstream probe(opts_.config_file);
    if (!probe)
      throw Error("nats server_config " + opts_.config_file +
                  " cannot be read: " + std::strerror(errno));
  }
  files_ = server_files(opts_);
  remove_stale_ports_files(files_.run_dir);
  write_server_config(generate_server_config(opts_, files_.run_dir), files_.config_path);
  // Emptied by replacing it: a symlink planted at the path is not followed.
  write_file_atomically(files_.out_path, "");
  ensure_log_file(files_.log_path);

  std::unique_lock lk(mu_);
  stop_requested_ = false;
  start_done_ = false;
  start_error_.clear();
  supervisor_ = std::thread([this, ready_timeout] { supervise(ready_timeout); });
  cv_.wait(lk, [&] { return start_done_; });
  if (!started_) {
    std::string err = start_error_;
    lk.unlock();
    supervisor_.join();
    throw Error(err);
  }
}

std::string EmbeddedServer::client_url() const {
  std::lock_guard lk(mu_);
  return format_url("nats", {dial_host(opts_.client_host), ports_.client});
}

int EmbeddedServer::client_port() const {
  std::lock_guard lk(mu_);
  return ports_.client;
}

int EmbeddedServer::monitor_port() const {
  std::lock_guard lk(mu_);
  return ports_.monitor;
}

pid_t EmbeddedServer::pid() const {
  std::lock_guard lk(mu_);
  return pid_;
}

bool EmbeddedServer::running() const {
  std::lock_guard lk(mu_);
  return pid_ > 0 && ::kill(pid_, 0) == 0;
}

int EmbeddedServer::restarts() const {
  std::lock_guard lk(mu_);
  return restarts_;
}

void EmbeddedServer::stop(std::chrono::milliseconds grace) {
  std::lock_guard stop_lk(stop_mu_);
  {
    std::lock_guard lk(mu_);
    if (!supervisor_.joinable()) return;
    stop_requested_ = true;
    stop_grace_ = grace;
  }
  cv_.notify_all();
  if (supervisor_.get_id() != std::this_thread::get_id()) supervisor_.join();
  std::lock_guard lk(mu_);
  started_ = false;
}

}  // namespace harmony
