// Benchmark tables and row payloads (see bench_rows.hpp).
#include "bench/bench_rows.hpp"

#include <fmt/format.h>

namespace harmony::bench {

std::string bench_schema() {
  std::string out;
  for (const char* t : kTables)
    out += fmt::format(
        "CREATE TABLE {} (id INTEGER PRIMARY KEY, t_us INTEGER NOT NULL, payload TEXT NOT NULL);",
        t);
  return out;
}

namespace {
uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
}  // namespace

std::string row_payload(int64_t id) {
  const uint64_t a = splitmix64(static_cast<uint64_t>(id));
  return fmt::format("{:016x}{:016x} row {} of the replication benchmark", a, splitmix64(a), id);
}

}  // namespace harmony::bench
