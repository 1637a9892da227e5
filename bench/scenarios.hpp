// The measured scenarios of the replication benchmark (issue 8, items 2-6), each returning its
// figures as JSON: sustained throughput, commit-to-visible delay, catch-up of a restarted node,
// snapshot save/restore, and per-process CPU and memory during the throughput runs.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "bench/workload.hpp"

namespace harmony::bench {

// (2) + (6): a writer on node 1 commits `txn_rows`-row transactions for `seconds` (pausing
// while the slower replica lags by more than `lag_cap` rows, so the figure is a sustained rate
// and not a backlog); rows/s = rows / (first commit -> last row applied on nodes 2 and 3).
// Also a time series (for the plot) and each node's CPU and peak memory.
nlohmann::json run_throughput(BenchCluster& bc, const std::string& table, int txn_rows,
                              double seconds, int64_t lag_cap);

// (3): single-row transactions at a steady `rate` per second for `seconds`; a reader on node 2
// polls PRAGMA data_version and, for each new row, takes now - t_us (milliseconds). `trace`
// (the cluster runs with debug logging): also each row's timeline through the replicators,
// from their "delay trace:" log lines, as the median and p99 of each leg ("legs_ms").
nlohmann::json run_delay(BenchCluster& bc, const std::string& table, double rate, double seconds,
                         bool trace = false);

// (4): node 3 stopped, `rows` rows written on node 1 (1,000-row transactions) and applied on
// node 2; then node 3 restarts: time until it holds every row, and a content check.
nlohmann::json run_catchup(BenchCluster& bc, const std::string& table, int64_t rows);

// (5): a database of about `megabytes` MB on node 1 of a two-node cluster (external
// nats-server); `harmonylite -save-snapshot` through the real binary, then a fresh node 2 that
// must restore it at start-up (its stream position is older than what the stream keeps).
nlohmann::json run_snapshot(int64_t megabytes);

// (7): the write-lock duty cycle as users meet it. Node 1 commits `rows_per_s` rows/s (100-row
// transactions, paced) while the stock `sqlite3` shell, a fresh process per write and no busy
// timeout (as people run it: `sqlite3 db "INSERT ..."`), writes one row at a time into node 2's
// database, which is applying that load. Reports the share of shell writes that failed with
// "database is locked" (and any other failure separately).
nlohmann::json run_shell_contention(BenchCluster& bc, double rows_per_s, double seconds);

}  // namespace harmony::bench
