// Test helpers: temporary directories, child processes that never outlive the test, free
// loopback ports, polling with a deadline, and the real sqlite3 shell.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace harmony::test {

using namespace std::chrono_literals;

std::string build_dir();       // where libharmony.so and harmonylite are
std::string source_dir();      // the repository
std::string extension_path();  // build/libharmony (no suffix, as `.load` takes it)
std::string harmonylite_path();

// A fresh directory under /tmp, removed with its content on destruction
// (kept when HARMONY_KEEP_TMP=1, for debugging).
class TempDir {
 public:
  explicit TempDir(const std::string& tag = "test");
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A child process with stdout+stderr to `log_path`. Killed (SIGTERM, then SIGKILL after
// `grace`) on destruction; also receives SIGKILL if the test process dies (PR_SET_PDEATHSIG).
class Process {
 public:
  Process(std::vector<std::string> argv, std::string log_path,
          std::map<std::string, std::string> env = {}, std::string cwd = "");
  ~Process();
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;
  pid_t pid() const { return pid_; }
  bool running();
  // Sends SIGTERM and waits up to `timeout`; returns the exit status (or -signal), or
  // nullopt-equivalent INT_MIN when it did not exit in time.
  int stop(std::chrono::milliseconds timeout = 10s);
  void kill9();
  int wait(std::chrono::milliseconds timeout);  // INT_MIN on timeout
  std::string log() const;
  const std::string& log_path() const { return log_path_; }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
  bool reaped_ = false;
  std::string log_path_;
};

struct CommandResult {
  int exit_code = 0;
  std::string output;  // stdout + stderr
};
// Runs a command to completion (argv form, no shell).
CommandResult run_command(const std::vector<std::string>& argv,
                          std::chrono::milliseconds timeout = 60s);
// Runs the stock sqlite3 shell: `sqlite3 -batch db <sql>`.
CommandResult sqlite_shell(const std::string& db, const std::string& sql);

// A loopback port no other running test holds and no outgoing connection takes (see the .cpp).
int free_port();
bool wait_until(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
                std::chrono::milliseconds poll = 50ms);
std::string read_file(const std::string& path);
void write_file(const std::string& path, const std::string& content);
// Writes a cluster key file as `[nats] cluster_key_file` reads it (32 bytes as hex, mode 0600:
// a key readable by others is refused) and returns its path.
std::string write_cluster_key_file(const std::string& path);

// A small tmpfs mounted at `path` (created) for the life of the object, unmounted in the
// destructor so every way out of a test unmounts it. `ok()` is false where mounting is not
// permitted (not root, no CAP_SYS_ADMIN); `why_not()` says why.
class Tmpfs {
 public:
  Tmpfs(std::string path, int megabytes);
  ~Tmpfs();
  Tmpfs(const Tmpfs&) = delete;
  Tmpfs& operator=(const Tmpfs&) = delete;
  bool ok() const { return mounted_; }
  const std::string& why_not() const { return why_; }

 private:
  std::string path_, why_;
  bool mounted_ = false;
};

}  // namespace harmony::test
