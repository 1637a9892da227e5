// The embedded nats-server child: generated config, fork/exec from the supervisor thread,
// port discovery through --ports_file_dir, readiness (INFO on the client port), restart with
// backoff, and SIGTERM/SIGKILL stop. See nats_server.hpp for the rules and the config layering.
#include "replicator/nats_server.hpp"

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
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include <spdlog/spdlog.h>

#include "replicator/address.hpp"
#include "shared/error.hpp"
#include "shared/files.hpp"

namespace harmony {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// A string as a double-quoted nats-server config value (the lexer understands \" \\ \n \t \r;
// '$' inside quotes is literal).
std::string conf_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          throw Error("embedded nats-server: control character in a configuration value");
        out += c;
    }
  }
  return out + "\"";
}

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

// Where to dial a listener bound to `host`: wildcard binds are reached on loopback.
std::string dial_host(const std::string& host) {
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::" || host == "[::]") return "::1";
  return host;
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

// The user's server_config, minus any store_dir setting (nats-server 2.9 rejects -sd next to a
// config store_dir), with relative includes rebased for a copy living in `run_dir`, and the
// names of its top-level keys (including those of top-level includes). A small scanner that
// knows comments, quoted strings, nesting and key positions; it is not a full parser.
struct UserConfigRewrite {
  std::string text;
  std::vector<std::string> removed_store_dirs;
  std::vector<std::string> top_level_keys;   // lower case
  std::vector<fs::path> top_level_includes;  // absolute
};

UserConfigRewrite rewrite_user_config(const std::string& text, const fs::path& user_dir,
                                      const fs::path& run_dir) {
  struct Edit {
    size_t begin, end;
    std::string replacement;
  };
  std::vector<Edit> edits;
  UserConfigRewrite result;
  const size_t n = text.size();
  auto skip_blanks = [&](size_t p) {
    while (p < n && (text[p] == ' ' || text[p] == '\t')) ++p;
    return p;
  };
  auto skip_quoted = [&](size_t p) {  // p at the opening quote; returns one past the closing one
    char q = text[p++];
    while (p < n && text[p] != q) p += (q == '"' && text[p] == '\\') ? 2 : 1;
    return std::min(p + 1, n);
  };
  auto value_end = [&](size_t p) {
    if (p < n && (text[p] == '"' || text[p] == '\'')) return skip_quoted(p);
    while (p < n && !std::isspace(static_cast<unsigned char>(text[p])) && text[p] != ';' &&
           text[p] != ',' && text[p] != '}' && text[p] != '#')
      ++p;
    return p;
  };
  auto unquote = [&](size_t b, size_t e) {
    std::string v = text.substr(b, e - b);
    if (v.size() >= 2 && (v[0] == '"' || v[0] == '\'')) v = v.substr(1, v.size() - 2);
    return v;
  };

  bool expect_key = true;
  int depth = 0;
  size_t i = 0;
  while (i < n) {
    char c = text[i];
    if (c == '#' || (c == '/' && i + 1 < n && text[i + 1] == '/')) {
      while (i < n && text[i] != '\n') ++i;
      continue;
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
    if (c == '\n' || c == '{' || c == ';' || c == ',' || c == '[') {
      expect_key = true;
      ++i;
      continue;
    }
    if (c == ' ' || c == '\t' || c == '\r') {
      ++i;
      continue;
    }
    bool quoted_key = (c == '"' || c == '\'');
    if (expect_key && (std::isalpha(static_cast<unsigned char>(c)) || c == '_' || quoted_key)) {
      size_t k = i;
      std::string key;
      if (quoted_key) {
        k = skip_quoted(i);
        key = unquote(i, k);
      } else {
        while (k < n && (std::isalnum(static_cast<unsigned char>(text[k])) || text[k] == '_' ||
                         text[k] == '-' || text[k] == '.'))
          ++k;
        key = text.substr(i, k - i);
      }
      for (auto& ch : key) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      size_t v = skip_blanks(k);
      bool has_sep = v < n && (text[v] == '=' || text[v] == ':');
      if (has_sep) v = skip_blanks(v + 1);
      if (quoted_key && !has_sep) {  // a string value, not a key
        i = k;
        expect_key = false;
        continue;
      }
      if (depth == 0 && key != "include") result.top_level_keys.push_back(key);
      if (key == "store_dir" || key == "storedir") {
        size_t e = value_end(v);
        result.removed_store_dirs.push_back(unquote(v, e));
        size_t t = skip_blanks(e);
        if (t < n && (text[t] == ';' || text[t] == ',')) e = t + 1;
        edits.push_back({i, e, std::string(e - i, ' ')});
        i = e;
        expect_key = false;
        continue;
      }
      if (key == "include" && !has_sep) {
        size_t e = value_end(v);
        std::string path = unquote(v, e);
        if (!path.empty()) {
          // nats-server joins include paths to the including file's directory, even absolute ones.
          fs::path target = (user_dir / fs::path(path).relative_path()).lexically_normal();
          edits.push_back({v, e, conf_quote(target.lexically_relative(run_dir).string())});
          if (depth == 0) result.top_level_includes.push_back(target);
        }
        i = e;
        expect_key = false;
        continue;
      }
      i = k;
      expect_key = false;
      continue;
    }
    if (c == '"' || c == '\'') {
      i = skip_quoted(i);
    } else {
      ++i;
    }
    expect_key = false;
  }
  size_t pos = 0;
  for (const auto& e : edits) {
    result.text += text.substr(pos, e.begin - pos);
    result.text += e.replacement;
    pos = e.end;
  }
  result.text += text.substr(pos);
  return result;
}

void write_private_file(const std::string& path, const std::string& content) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) throw Error("cannot write " + path + ": " + std::strerror(errno));
  fchmod(fd, 0600);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t w = ::write(fd, content.data() + off, content.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      close(fd);
      throw Error("cannot write " + path + ": " + std::strerror(e));
    }
    off += static_cast<size_t>(w);
  }
  close(fd);
}

// Top-level keys of a config file and of the files it includes at top level.
void collect_top_level_keys(const fs::path& file, std::vector<std::string>& keys, int depth = 0) {
  if (depth > 8) return;
  auto scan = rewrite_user_config(read_whole_file(file.string()).value_or(""), file.parent_path(),
                                  file.parent_path());
  keys.insert(keys.end(), scan.top_level_keys.begin(), scan.top_level_keys.end());
  for (const auto& inc : scan.top_level_includes) collect_top_level_keys(inc, keys, depth + 1);
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
  return config_path_;
}

void EmbeddedServer::write_config() {
  // nats-server applies a config's keys in Go map order, i.e. randomly: when two *different*
  // keys set the same option (http vs monitor_port, leaf vs leafnodes) the winner is random.
  // The same key repeated is deterministic (the later one wins). So a default below is written
  // only when the user's file does not set that option under any of its names.
  fs::path run = run_dir_;
  std::vector<std::string> user_keys;
  std::optional<UserConfigRewrite> rewritten;
  fs::path user;
  if (!opts_.config_file.empty()) {
    user = fs::weakly_canonical(fs::absolute(opts_.config_file));
    rewritten =
        rewrite_user_config(read_whole_file(user.string()).value_or(""), user.parent_path(), run);
    collect_top_level_keys(user, user_keys);
  }
  auto user_sets = [&](std::initializer_list<const char*> names) {
    for (const char* n : names)
      if (std::find(user_keys.begin(), user_keys.end(), n) != user_keys.end()) return true;
    return false;
  };

  std::ostringstream conf;
  conf << "# Generated by harmonylite each time it starts the embedded nats-server; edits are "
          "lost.\n"
       << "# Priority: the settings below < the included server_config < the authorization block\n"
       << "# after it < harmonylite's command-line flags.\n"
       << "max_payload: " << opts_.max_payload_bytes << "\n";
  if (!user_sets({"http", "http_port", "monitor_port", "https", "https_port"}))
    conf << "http: \"127.0.0.1:-1\"\n";  // monitor on a random loopback port (the ports file tells)
  if (!opts_.cluster_listen.empty() && opts_.routes.empty()) {
    // nats-server 2.9 refuses clustered JetStream without routes ("JetStream cluster requires
    // configured routes"); a route to ourselves satisfies it and is detected as a self-connection.
    const auto listen = parse_url_address(opts_.cluster_listen);
    if (!listen) throw Error("cluster address \"" + opts_.cluster_listen + "\" is not host:port");
    conf << "cluster { routes: [ "
         << conf_quote(format_url("nats", {dial_host(listen->host), listen->port})) << " ] }\n";
  }
  if (!opts_.leaf_remotes.empty()) {
    if (user_sets({"leaf", "leafnodes"})) {
      spdlog::warn(
          "nats server_config {} configures leafnodes; ignoring the leaf servers given on "
          "the command line",
          user.string());
    } else {
      conf << "leafnodes { remotes: [";
      for (size_t i = 0; i < opts_.leaf_remotes.size(); ++i)
        conf << (i ? ", " : " ") << "{ url: " << conf_quote(opts_.leaf_remotes[i]) << " }";
      conf << " ] }\n";
    }
  }
  if (rewritten) {
    fs::path included = user;
    if (!rewritten->removed_store_dirs.empty()) {
      included = run / "harmonylite-server-config.conf";
      write_private_file(included.string(), "# Copy of " + user.string() +
                                                " without store_dir (harmonylite sets it).\n" +
                                                rewritten->text);
      spdlog::info(
          "nats server_config {} sets store_dir '{}'; the embedded server uses '{}' instead "
          "(nats-server cannot override a config store_dir from the command line)",
          user.string(), rewritten->removed_store_dirs.front(), opts_.store_dir);
    }
    conf << "# server_config " << user.string() << "\n"
         << "include " << conf_quote(included.lexically_relative(run).string()) << "\n";
  }
  if (!opts_.user.empty() || !opts_.password.empty()) {
    conf << "authorization { user: " << conf_quote(opts_.user)
         << ", password: " << conf_quote(opts_.password) << " }\n";
  }
  write_private_file(config_path_, conf.str());
}

std::vector<std::string> EmbeddedServer::build_argv(bool first) const {
  std::vector<std::string> a{opts_.binary, "-c", config_path_, "-js", "-sd", opts_.store_dir};
  if (!opts_.server_name.empty()) a.insert(a.end(), {"-n", opts_.server_name});
  if (!opts_.client_host.empty()) a.insert(a.end(), {"-a", opts_.client_host});
  // Restarts keep the ports discovered at the first start, so clients reconnect to the same URL.
  int client = first ? opts_.client_port : ports_.client;
  a.insert(a.end(), {"-p", std::to_string(client >= 0 ? client : -1)});
  if (!first && ports_.monitor > 0) a.insert(a.end(), {"-m", std::to_string(ports_.monitor)});
  if (!opts_.cluster_listen.empty()) {
    std::string listen = opts_.cluster_listen;
    if (listen.find("://") == std::string::npos) listen = "nats://" + listen;
    a.insert(a.end(), {"--cluster", listen, "--cluster_name", opts_.cluster_name});
    if (!opts_.routes.empty()) {
      std::string joined;
      for (const auto& r : opts_.routes) joined += (joined.empty() ? "" : ",") + r;
      a.insert(a.end(), {"--routes", joined});
    }
  }
  a.insert(a.end(), {"-l", log_path_, "--ports_file_dir", run_dir_});
  return a;
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
  int outfd = open(out_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
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
  std::string suffix = "_" + std::to_string(child) + ".ports";
  Ports found;
  bool have_ports = false;
  while (true) {
    if (reaped(child, status)) {
      exited = true;
      return "embedded nats-server exited during startup (" + describe_status(status) + ")";
    }
    if (!have_ports) {
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(run_dir_, ec)) {
        const std::string name = entry.path().filename().string();
        if (name.size() <= suffix.size() ||
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
          continue;
        try {
          auto j = nlohmann::json::parse(read_whole_file(entry.path().string()).value_or(""));
          if (j.contains("nats") && !j["nats"].empty())
            found.client = port_of_url(j["nats"][0].get<std::string>());
          if (j.contains("monitoring") && !j["monitoring"].empty())
            found.monitor = port_of_url(j["monitoring"][0].get<std::string>());
          have_ports = found.client > 0;
        } catch (const std::exception&) {
          // written but not complete yet: read again on the next round
        }
      }
    }
    if (have_ports && client_port_answers(dial_host(opts_.client_host), found.client, 500ms)) {
      std::lock_guard lk(mu_);
      ports_ = found;
      return "";
    }
    {
      std::unique_lock lk(mu_);
      if (cv_.wait_for(lk, 25ms, [&] { return stop_requested_; }))
        return "embedded nats-server start interrupted by stop()";
    }
    if (std::chrono::steady_clock::now() > deadline)
      return "embedded nats-server did not accept clients within " +
             std::to_string(timeout.count()) + " ms" +
             (have_ports ? " (port " + std::to_string(found.client) + ")" : " (no ports file yet)");
  }
}

std::string EmbeddedServer::failure_details() const {
  std::string d;
  if (!opts_.config_file.empty()) d += "; server_config: " + opts_.config_file;
  std::string out = tail_of(out_path_, 10);
  if (!out.empty()) d += "; server output:\n" + out;
  std::string log = tail_of(log_path_, 10);
  if (!log.empty()) d += "\nserver log (" + log_path_ + "):\n" + log;
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
    std::unique_lock lk(mu_);
    if (cv_.wait_for(lk, 100ms, [&] { return stop_requested_; })) return false;
  }
}

void EmbeddedServer::supervise(std::chrono::milliseconds ready_timeout) {
  bool first = true;
  auto backoff = 500ms;
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
    if (previous > 0) {  // the killed server's ports file stays behind
      std::error_code ec;
      for (const auto& entry : fs::directory_iterator(run_dir_, ec)) {
        const std::string name = entry.path().filename().string();
        const std::string suffix = "_" + std::to_string(previous) + ".ports";
        if (name.size() > suffix.size() &&
            name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
          fs::remove(entry.path(), ec);
      }
    }
    bool exited = false;
    int status = 0;
    if (child > 0) error = wait_ready(child, first ? ready_timeout : 60s, exited, status);

    if (first) {
      std::lock_guard lk(mu_);
      if (!error.empty()) {
        if (child > 0 && !exited) terminate_child(child, 0ms);
        pid_ = -1;
        start_error_ = error + failure_details();
        start_done_ = true;
        cv_.notify_all();
        return;
      }
      started_ = true;
      start_done_ = true;
      cv_.notify_all();
      spdlog::info("embedded nats-server started: pid {}, client {}, monitor port {}", child,
                   format_url("nats", {dial_host(opts_.client_host), ports_.client}),
                   ports_.monitor);
    } else if (child > 0 && error.empty()) {
      spdlog::info("embedded nats-server restarted: pid {}, client port {}", child, ports_.client);
    } else if (child > 0 && !exited) {
      spdlog::warn("restarted embedded nats-server (pid {}): {}", child, error);
    }
    first = false;

    auto up_since = std::chrono::steady_clock::now();
    if (child > 0 && !exited && !wait_stop_or_exit(child, status)) {
      std::chrono::milliseconds grace;
      {
        std::lock_guard lk(mu_);
        grace = stop_grace_;
      }
      terminate_child(child, grace);
      std::lock_guard lk(mu_);
      pid_ = -1;
      break;
    }
    {
      std::lock_guard lk(mu_);
      pid_ = -1;
    }
    previous = child;
    if (std::chrono::steady_clock::now() - up_since > 30s) backoff = 500ms;
    std::string last = tail_of(child > 0 ? log_path_ : out_path_, 1);
    spdlog::warn("embedded nats-server {} ({}); restarting in {} ms{}{}",
                 child > 0 ? "(pid " + std::to_string(child) + ") stopped unexpectedly"
                           : "could not be started",
                 child > 0 ? describe_status(status) : error, backoff.count(),
                 last.empty() ? "" : "; last log line: ", last);
    {
      std::unique_lock lk(mu_);
      if (cv_.wait_for(lk, backoff, [&] { return stop_requested_; })) break;
    }
    backoff = std::min<std::chrono::milliseconds>(backoff * 2, 10s);
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
  std::error_code ec;
  fs::create_directories(opts_.store_dir, ec);
  if (ec)
    throw Error("cannot create nats store directory " + opts_.store_dir + ": " + ec.message());
  if (!opts_.config_file.empty()) {
    std::ifstream probe(opts_.config_file);
    if (!probe)
      throw Error("nats server_config " + opts_.config_file +
                  " cannot be read: " + std::strerror(errno));
  }
  // Canonical, so the relative include computed in write_config() resolves the same way for
  // nats-server (which joins it lexically to this directory).
  run_dir_ = fs::weakly_canonical(fs::absolute(opts_.store_dir)).string();
  config_path_ = run_dir_ + "/harmonylite-nats-server.conf";
  out_path_ = run_dir_ + "/nats-server.out";
  log_path_ = opts_.log_file.empty() ? run_dir_ + "/nats-server.log" : opts_.log_file;
  for (const auto& entry : fs::directory_iterator(run_dir_, ec)) {  // stale ports files
    if (entry.path().extension() == ".ports") fs::remove(entry.path(), ec);
  }
  write_config();
  { std::ofstream truncate(out_path_, std::ios::trunc); }

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
