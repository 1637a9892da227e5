// Helpers for the replication benchmark: clocks, per-process CPU and memory from /proc,
// percentiles, load average and a description of the machine the figures come from.
#pragma once
#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace harmony::bench {

using Clock = std::chrono::steady_clock;

// Wall-clock microseconds since the epoch (CLOCK_REALTIME: the same clock on every process of
// this host, so a writer and a reader in different processes can compare them).
int64_t wall_us();
double seconds_between(Clock::time_point from, Clock::time_point to);

// One reading of /proc/<pid>: CPU time used so far (user + system) and memory.
struct ProcSample {
  bool ok = false;
  double cpu_seconds = 0;
  int64_t rss_kb = 0;  // VmRSS
  int64_t hwm_kb = 0;  // VmHWM: peak resident set size since the process started
};
ProcSample read_proc(pid_t pid);
// Direct children of `parent` (the embedded nats-server of a harmonylite process).
std::vector<pid_t> child_pids(pid_t parent);

struct Summary {
  size_t n = 0;
  double min = 0, mean = 0, p50 = 0, p90 = 0, p99 = 0, p999 = 0, max = 0;
  nlohmann::json to_json() const;
};
// Sorts `v` and summarizes it.
Summary summarize(std::vector<double>& v);
// Value at quantile q (0..1) of a sorted vector (nearest rank).
double quantile(const std::vector<double>& sorted, double q);

std::array<double, 3> load_average();
// CPU model, cores, memory, kernel, SQLite and nats-server versions, git commit.
nlohmann::json machine_info();

// 12345 -> "12.3k", 1234567 -> "1.23M".
std::string human_rate(double r);

}  // namespace harmony::bench
