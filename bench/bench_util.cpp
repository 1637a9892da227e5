// Clocks, /proc readings, percentiles and machine description for the benchmark (see
// bench_util.hpp).
#include "bench/bench_util.hpp"

#include <sqlite3.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <fmt/format.h>

#include "shared/files.hpp"

namespace harmony::bench {

int64_t wall_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

double seconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

namespace {
std::string slurp(const std::string& path) {
  return read_whole_file(path).value_or("");
}

int64_t status_kb(const std::string& status, const char* key) {
  auto at = status.find(key);
  if (at == std::string::npos) return 0;
  return std::atoll(status.c_str() + at + std::string_view(key).size());
}

// First line of a command's output ("" when it cannot run).
std::string command_line_output(const std::string& cmd) {
  std::unique_ptr<FILE, decltype(&pclose)> p(popen(cmd.c_str(), "r"), pclose);
  if (!p) return "";
  char buf[512];
  std::string out;
  if (fgets(buf, sizeof buf, p.get())) out = buf;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}
}  // namespace

ProcSample read_proc(pid_t pid) {
  ProcSample s;
  const std::string stat = slurp(fmt::format("/proc/{}/stat", pid));
  // Fields after the command name (which may hold spaces) start after the last ')'.
  auto close = stat.rfind(')');
  if (close == std::string::npos) return s;
  std::istringstream in(stat.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {  // field 3 = state, 14 = utime, 15 = stime
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  static const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  s.cpu_seconds = static_cast<double>(utime + stime) / ticks;
  const std::string status = slurp(fmt::format("/proc/{}/status", pid));
  s.rss_kb = status_kb(status, "VmRSS:");
  s.hwm_kb = status_kb(status, "VmHWM:");
  s.ok = true;
  return s;
}

std::vector<pid_t> child_pids(pid_t parent) {
  std::vector<pid_t> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
    const std::string name = e.path().filename();
    if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
    const std::string stat = slurp(e.path().string() + "/stat");
    auto close = stat.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream in(stat.substr(close + 2));
    std::string state;
    long ppid = 0;
    if (in >> state >> ppid && ppid == parent) out.push_back(static_cast<pid_t>(std::stol(name)));
  }
  return out;
}

nlohmann::json Summary::to_json() const {
  return {{"n", n},     {"min", min}, {"mean", mean}, {"p50", p50},
          {"p90", p90}, {"p99", p99}, {"p999", p999}, {"max", max}};
}

double quantile(const std::vector<double>& sorted, double q) {
  if (sorted.empty()) return 0;
  auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

Summary summarize(std::vector<double>& v) {
  Summary s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  s.n = v.size();
  s.min = v.front();
  s.max = v.back();
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / static_cast<double>(v.size());
  s.p50 = quantile(v, 0.5);
  s.p90 = quantile(v, 0.9);
  s.p99 = quantile(v, 0.99);
  s.p999 = quantile(v, 0.999);
  return s;
}

std::array<double, 3> load_average() {
  std::array<double, 3> out{};
  std::istringstream in(slurp("/proc/loadavg"));
  in >> out[0] >> out[1] >> out[2];
  return out;
}

nlohmann::json machine_info() {
  nlohmann::json m;
  std::string cpuinfo = slurp("/proc/cpuinfo");
  if (auto at = cpuinfo.find("model name"); at != std::string::npos) {
    auto colon = cpuinfo.find(':', at);
    auto eol = cpuinfo.find('\n', at);
    m["cpu"] = cpuinfo.substr(colon + 2, eol - colon - 2);
  }
  m["cores"] = sysconf(_SC_NPROCESSORS_ONLN);
  m["memory_mb"] = status_kb(slurp("/proc/meminfo"), "MemTotal:") / 1024;
  utsname u{};
  if (uname(&u) == 0) m["kernel"] = fmt::format("{} {} {}", u.sysname, u.release, u.machine);
  m["sqlite"] = sqlite3_libversion();
  m["nats_server"] = command_line_output("nats-server --version 2>&1");
  m["git_commit"] = command_line_output("git -C " HARMONY_SOURCE_DIR " rev-parse --short HEAD");
  m["git_dirty"] =
      !command_line_output("git -C " HARMONY_SOURCE_DIR " status --porcelain -uno").empty();
  return m;
}

std::string human_rate(double r) {
  if (r >= 1e6) return fmt::format("{:.2f}M", r / 1e6);
  if (r >= 1e4) return fmt::format("{:.1f}k", r / 1e3);
  if (r >= 1e3) return fmt::format("{:.2f}k", r / 1e3);
  return fmt::format("{:.0f}", r);
}

}  // namespace harmony::bench
