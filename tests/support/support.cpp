// Implementation of the test helpers in support.hpp.
#include "tests/support/support.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include <fmt/format.h>

#include "shared/files.hpp"

namespace harmony::test {

std::string build_dir() {
  return HARMONY_BUILD_DIR;
}
std::string source_dir() {
  return HARMONY_SOURCE_DIR;
}
std::string extension_path() {
  return build_dir() + "/libharmony";
}
std::string harmonylite_path() {
  return build_dir() + "/harmonylite";
}

TempDir::TempDir(const std::string& tag) {
  std::string tmpl = "/tmp/harmony-" + tag + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (!mkdtemp(buf.data())) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  const char* keep = std::getenv("HARMONY_KEEP_TMP");
  if (keep && std::string(keep) == "1") return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Process::Process(std::vector<std::string> argv, std::string log_path,
                 std::map<std::string, std::string> env, std::string cwd)
    : log_path_(std::move(log_path)) {
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    setpgid(0, 0);
    int fd = open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
      dup2(fd, 1);
      dup2(fd, 2);
      close(fd);
    }
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    for (auto& [k, v] : env) setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
}

Process::~Process() {
  if (!reaped_) {
    if (stop(5s) == INT_MIN) kill9();
  }
}

bool Process::running() {
  if (reaped_) return false;
  int st = 0;
  pid_t r = waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    reaped_ = true;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : -WTERMSIG(st);
    return false;
  }
  return true;
}

int Process::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() > deadline) return INT_MIN;
    std::this_thread::sleep_for(20ms);
  }
  return status_;
}

int Process::stop(std::chrono::milliseconds timeout) {
  if (!running()) return status_;
  ::kill(pid_, SIGTERM);
  return wait(timeout);
}

void Process::kill9() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  wait(10s);
}

std::string Process::log() const {
  return read_file(log_path_);
}

CommandResult run_command(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir tmp("cmd");
  std::string out = tmp.file("out");
  Process p(argv, out);
  int code = p.wait(timeout);
  if (code == INT_MIN) {
    p.kill9();
    return {INT_MIN, read_file(out) + "\n[timed out]"};
  }
  return {code, read_file(out)};
}

CommandResult sqlite_shell(const std::string& db, const std::string& sql) {
  // Like any application sharing the file with the replicator, the shell waits for the lock
  // instead of failing at once with "database is locked" (the stock shell has no busy timeout).
  return run_command({"sqlite3", "-batch", "-cmd", ".timeout 10000", db, sql});
}

namespace {

// Test ports come from below the kernel's ephemeral range (32768-60999 on Debian). A port that
// bind(0) hands out and the test then closes lies in that range, so until the process it is
// meant for binds it (seconds later, after nats-server starts), any outgoing connection — the
// tests' own /health polls open hundreds — may take it as its source port, and another test
// running in parallel may be handed it too. Both sank CI runs: a node that cannot bind its
// cluster or health port exits.
constexpr int kFirstTestPort = 20000;
constexpr int kTestPortCount = 12000;  // up to 31999
// Parallel test processes claim a port with an flock on a file named after it; the lock lives
// until the process exits, so no two running tests share a port.
const char* const kPortLockDir = "/tmp/harmony-test-ports";

bool bindable(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return false;
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as the servers bind
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

}  // namespace

int free_port() {
  static std::mutex mutex;
  static int next = -1;
  const std::lock_guard lock(mutex);
  if (next < 0) {  // first call in this process
    std::filesystem::create_directories(kPortLockDir);
    chmod(kPortLockDir, 01777);  // shared by every user's test runs, like /tmp
    // Start at a place that differs per process so parallel tests rarely try the same ports.
    next = static_cast<int>((static_cast<unsigned>(getpid()) * 7919u) % kTestPortCount);
  }
  for (int tried = 0; tried < kTestPortCount; ++tried) {
    const int port = kFirstTestPort + next;
    next = (next + 1) % kTestPortCount;
    const std::string lock_path = fmt::format("{}/{}", kPortLockDir, port);
    const int fd = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) continue;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || !bindable(port)) {
      close(fd);
      continue;
    }
    return port;  // fd stays open: the claim lasts until this process exits
  }
  throw std::runtime_error(fmt::format("no free test port in {}..{}", kFirstTestPort,
                                       kFirstTestPort + kTestPortCount - 1));
}

bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    if (pred()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(poll);
  }
}

std::string read_file(const std::string& path) {
  return read_whole_file(path).value_or("");
}

void write_file(const std::string& path, const std::string& content) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f << content;
}

std::string write_cluster_key_file(const std::string& path) {
  write_file(path, "8f1d0c5e3b7a49d2a6c4e1f0b9d8c7a65f4e3d2c1b0a99887766554433221100\n");
  if (chmod(path.c_str(), 0600) != 0) throw std::runtime_error("cannot chmod 0600 " + path);
  return path;
}

Tmpfs::Tmpfs(std::string path, int megabytes) : path_(std::move(path)) {
  std::filesystem::create_directories(path_);
  auto r = run_command(
      {"mount", "-t", "tmpfs", "-o", fmt::format("size={}m,mode=0700", megabytes), "tmpfs", path_});
  mounted_ = r.exit_code == 0;
  why_ = r.output;
}

Tmpfs::~Tmpfs() {
  // -l: a server that still has a file open there must not keep the mount (and the test) alive.
  if (mounted_) run_command({"umount", "-l", path_});
}

}  // namespace harmony::test
