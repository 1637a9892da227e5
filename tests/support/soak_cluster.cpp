// Soak-run replicator cluster (see soak_cluster.hpp).
#include "tests/support/soak_cluster.hpp"

#include <dirent.h>
#include <signal.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <sstream>

#include <fmt/format.h>

#include "shared/sqlite_db.hpp"
#include "tests/support/http.hpp"

namespace harmony::test {

namespace {
constexpr int kNetnsClusterPort = 7422;
constexpr const char* kStartMarker = "===== soak: start =====";
}  // namespace

std::vector<pid_t> child_pids(pid_t parent, const std::string& comm) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (dirent* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (!end || *end != '\0' || pid <= 0) continue;
    std::string stat = read_file(fmt::format("/proc/{}/stat", pid));
    // pid (comm) state ppid ...: comm may hold spaces or parentheses, so split at the last ')'.
    auto open = stat.find('('), close = stat.rfind(')');
    if (open == std::string::npos || close == std::string::npos || close < open) continue;
    std::string name = stat.substr(open + 1, close - open - 1);
    std::istringstream rest(stat.substr(close + 1));
    std::string state;
    long ppid = 0;
    rest >> state >> ppid;
    if (ppid == parent && name == comm) out.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return out;
}

SoakCluster::SoakCluster(SoakClusterOptions options, const std::string& dir)
    : options_(std::move(options)) {
  if (options_.netns) lab_ = std::make_unique<NetnsLab>(options_.nodes);
  nodes_.resize(static_cast<size_t>(options_.nodes));
  for (int i = 0; i < size(); ++i) {
    Node& n = node(i);
    n.db = fmt::format("{}/node-{}.db", dir, i + 1);
    n.config = fmt::format("{}/node-{}.toml", dir, i + 1);
    n.log = fmt::format("{}/node-{}.log", dir, i + 1);
    n.store = fmt::format("{}/nats-{}", dir, i + 1);
    n.metrics_port = free_port();
    if (lab_) {
      n.cluster_host = lab_->address(i);
      n.cluster_port = kNetnsClusterPort;
    } else {
      n.cluster_host = "127.0.0.1";
      n.cluster_port = free_port();
    }
    Db db = Db::open(n.db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    db.exec("PRAGMA journal_mode=WAL;");
    db.exec(options_.schema);
    std::string exclude;
    for (const auto& t : options_.exclude)
      exclude += (exclude.empty() ? "" : ", ") + quote_ident(t);
    write_file(n.config,
               fmt::format("db_path = \"{}\"\nnode_id = {}\nexclude_tables = [{}]\n{}\n"
                           "[replication_log]\nshards = 1\nreplicas = {}\nmax_entries = {}\n"
                           "compress = true\nstream_audit = {}\n"
                           "[anti_entropy]\ninterval = {}\n"
                           "[nats]\nstore_dir = \"{}\"\nreconnect_wait_seconds = 1\n"
                           "cluster_user = \"soak\"\ncluster_password = \"soak-routes\"\n"
                           "[prometheus]\nenable = true\nbind = \"127.0.0.1:{}\"\n"
                           "[logging]\nverbose = {}\n",
                           n.db, i + 1, exclude, options_.extra_config, options_.replicas,
                           options_.max_entries, options_.stream_audit ? "true" : "false",
                           options_.anti_entropy_interval_ms, n.store, n.metrics_port,
                           options_.verbose ? "true" : "false"));
  }
}

SoakCluster::~SoakCluster() {
  stop_all();
  // Processes first (a namespace lives on while a process runs in it), then the namespaces.
  lab_.reset();
}

void SoakCluster::start(int i, const std::map<std::string, std::string>& env) {
  Node& n = node(i);
  if (n.process && n.process->running()) return;
  std::vector<std::string> argv;
  if (lab_) argv = {"ip", "netns", "exec", lab_->ns(i)};  // execs in place: same pid
  argv.insert(argv.end(), {harmonylite_path(), "-config", n.config});
  argv.push_back("-cluster-addr");
  argv.push_back(fmt::format("{}:{}", n.cluster_host, n.cluster_port));
  std::string peers;
  for (int j = 0; j < size(); ++j) {
    if (j == i) continue;
    peers += fmt::format("{}nats://{}:{}/", peers.empty() ? "" : ",", node(j).cluster_host,
                         node(j).cluster_port);
  }
  argv.push_back("-cluster-peers");
  argv.push_back(peers);
  write_file(n.log, read_file(n.log) + "\n" + kStartMarker + "\n");
  n.process = std::make_unique<Process>(argv, n.log, env);
}

void SoakCluster::start_all() {
  for (int i = 0; i < size(); ++i) start(i);
}

bool SoakCluster::wait_ready(int i, std::chrono::milliseconds timeout) {
  return wait_until(
      [&] {
        if (!running(i)) return false;
        std::string l = read_file(node(i).log);
        auto start = l.rfind(kStartMarker);
        return l.find("is replicating", start == std::string::npos ? 0 : start) !=
               std::string::npos;
      },
      timeout, 100ms);
}

namespace {

// The value of a counter with only the node label in Prometheus text
// ("harmonylite_<name>{node=\"1\"} <value>").
int64_t metric_value(const std::string& text, const std::string& name) {
  const std::string key = "harmonylite_" + name + "{";
  for (size_t at = text.find(key); at != std::string::npos; at = text.find(key, at + 1)) {
    if (at != 0 && text[at - 1] != '\n') continue;
    const size_t close = text.find("} ", at);
    if (close == std::string::npos) break;
    return static_cast<int64_t>(std::strtod(text.c_str() + close + 2, nullptr));
  }
  return 0;
}

// User + system CPU seconds of a process (/proc/<pid>/stat fields 14 and 15); -1 when gone.
double cpu_seconds(pid_t pid) {
  const std::string stat = read_file(fmt::format("/proc/{}/stat", pid));
  const auto close = stat.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i >= 14) ticks += std::strtod(field.c_str(), nullptr);
  return ticks / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double sum_of(const std::map<pid_t, double>& m) {
  double sum = 0;
  for (const auto& [pid, s] : m) sum += s;
  return sum;
}

RepairVolumes& operator+=(RepairVolumes& a, const RepairVolumes& b) {
  a.rounds += b.rounds;
  a.rows_compared += b.rows_compared;
  a.rows_repaired += b.rows_repaired;
  a.audit_checked += b.audit_checked;
  a.audit_reapplied += b.audit_reapplied;
  a.leader_reads += b.leader_reads;
  a.leader_bytes += b.leader_bytes;
  a.samples += b.samples;
  return a;
}

}  // namespace

void SoakCluster::sample_metrics(int i) {
  Node& n = node(i);
  if (!n.process || !n.process->running()) return;
  if (const double cpu = cpu_seconds(n.process->pid()); cpu >= 0)
    n.replicator_cpu[n.process->pid()] = cpu;
  for (pid_t nats : nats_pids(i))
    if (const double cpu = cpu_seconds(nats); cpu >= 0) n.nats_cpu[nats] = cpu;
  std::string text;
  if (lab_) {
    // The node's loopback is inside its namespace: ask from there (curl's own timeout, so a
    // replicator that does not answer costs this run at most 3 s).
    const std::string cmd =
        fmt::format("ip netns exec {} curl -s --max-time 3 http://127.0.0.1:{}/metrics 2>/dev/null",
                    lab_->ns(i), n.metrics_port);
    if (FILE* f = popen(cmd.c_str(), "r")) {
      char buf[65536];
      size_t got = 0;
      while ((got = fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
      pclose(f);
    }
  } else {
    HttpResult r = http_get(n.metrics_port, "/metrics");
    if (r.status == 200) text = r.body;
  }
  if (text.find("harmonylite_anti_entropy_rounds_total") == std::string::npos) return;
  RepairVolumes v;
  v.rounds = metric_value(text, "anti_entropy_rounds_total");
  v.rows_compared = metric_value(text, "anti_entropy_rows_compared_total");
  v.rows_repaired = metric_value(text, "anti_entropy_rows_repaired_total");
  v.audit_checked = metric_value(text, "stream_messages_checked_total");
  v.audit_reapplied = metric_value(text, "stream_messages_repaired_total");
  v.leader_reads = metric_value(text, "stream_audit_leader_reads_total");
  v.leader_bytes = metric_value(text, "stream_audit_leader_bytes_total");
  v.samples = n.current.samples + 1;
  n.current = v;
}

RepairVolumes SoakCluster::repair_volumes(int i) const {
  RepairVolumes out = node(i).banked;
  out += node(i).current;
  out.replicator_cpu_s = sum_of(node(i).replicator_cpu);
  out.nats_cpu_s = sum_of(node(i).nats_cpu);
  return out;
}

void SoakCluster::bank_metrics(int i) {
  sample_metrics(i);
  Node& n = node(i);
  n.banked += n.current;
  n.current = {};
}

void SoakCluster::kill9(int i) {
  bank_metrics(i);
  auto& p = node(i).process;
  if (p) p->kill9();
  p.reset();
}

int SoakCluster::stop(int i) {
  auto& p = node(i).process;
  if (!p) return 0;
  bank_metrics(i);
  // A stopped nats-server child would hold the replicator's shutdown: let it run first.
  signal_nats(i, SIGCONT);
  int rc = p->stop(20s);
  if (rc == INT_MIN) p->kill9();
  p.reset();
  return rc;
}

void SoakCluster::stop_all() {
  for (int i = 0; i < size(); ++i) stop(i);
}

bool SoakCluster::running(int i) {
  auto& p = node(i).process;
  return p && p->running();
}

pid_t SoakCluster::pid(int i) {
  return running(i) ? node(i).process->pid() : -1;
}

std::vector<pid_t> SoakCluster::nats_pids(int i) {
  pid_t p = pid(i);
  if (p <= 0) return {};
  return child_pids(p, "nats-server");
}

int SoakCluster::signal_nats(int i, int sig) {
  int n = 0;
  for (pid_t c : nats_pids(i))
    if (::kill(c, sig) == 0) ++n;
  return n;
}

void SoakCluster::cut(int i) {
  if (!lab_) throw std::runtime_error("partitions need the netns cluster");
  lab_->cut(i);
}

void SoakCluster::heal(int i) {
  if (lab_) lab_->heal(i);
}

bool SoakCluster::is_cut(int i) const {
  return lab_ && lab_->is_cut(i);
}

std::string SoakCluster::log_tail(int i, int lines) const {
  std::string l = read_file(node(i).log);
  size_t pos = l.size();
  for (int k = 0; k <= lines && pos != std::string::npos && pos > 0; ++k)
    pos = l.rfind('\n', pos - 1);
  return pos == std::string::npos ? l : l.substr(pos + 1);
}

std::vector<std::string> SoakCluster::grep_logs(const std::string& needle) const {
  std::vector<std::string> out;
  for (int i = 0; i < size(); ++i) {
    std::istringstream in(read_file(node(i).log));
    std::string line;
    while (std::getline(in, line))
      if (line.find(needle) != std::string::npos)
        out.push_back(fmt::format("node {}: {}", i + 1, line));
  }
  return out;
}

}  // namespace harmony::test
