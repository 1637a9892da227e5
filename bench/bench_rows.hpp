// The rows every benchmark writes: the tables' shape and names, and the payload of a row. Kept
// apart from workload.hpp (which needs the test cluster) so apply_bench, a single process
// without a cluster, writes exactly the same rows as harmony_bench.
#pragma once
#include <cstdint>
#include <string>

namespace harmony::bench {

// shell_load and shell_writes: (7), the stock shell writing on a replica under replicated load.
constexpr const char* kTables[] = {"warm",     "tp_txn1000", "tp_txn1",
                                   "delay_50", "delay_100",  "delay_1000",
                                   "catchup",  "shell_load", "shell_writes"};
// Every table has this shape; `t_us` is the writer's wall clock at commit.
std::string bench_schema();
// About 80 bytes of text that differs per row (compresses like ordinary data, not like zeros).
std::string row_payload(int64_t id);

}  // namespace harmony::bench
