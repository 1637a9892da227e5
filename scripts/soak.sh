#!/usr/bin/env bash
# The long randomized convergence run (issue 6): builds build/harmony_soak (normal build) and runs
# it. Without arguments: 20 minutes, every fault (kill -9 of replicators and nats-servers,
# network partitions in namespaces, NATS stopped, long application transactions, rolling schema
# changes, a replicator with a skewed clock), a fresh seed.
# Partitions need root (network namespaces and iptables).
#
#   scripts/soak.sh                          the 20-minute run with every fault
#   scripts/soak.sh --duration 5m --seed 42  any harmony_soak options instead (see --help)
#   scripts/soak.sh --duration 5m --faults SchemaChange,ClockSkew   chosen faults only
#   scripts/soak.sh --duration 20m --all-faults --no-stream-audit   anti-entropy alone: every node
#                                            runs with [replication_log] stream_audit = false
#
# Every node runs anti-entropy every 5 s (--anti-entropy-interval); the summary gives per node the
# anti-entropy rounds, rows compared and repaired, the stream audit's checks, re-applied messages
# and leader reads (its cost), and the CPU seconds of the replicators and their nats-servers.
#
# The timeline and the summary table are printed and kept in build-soak/soak-<date>.log; a failing run
# keeps its directory (node databases and logs) and prints the seed that repeats it.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# Its own build directory, so rebuilding build/ meanwhile does not swap binaries under the run.
build="$root/build-soak"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target harmonylite harmony harmony_soak
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--duration 20m --all-faults)
log="$build/soak-$(date +%Y%m%d-%H%M%S).log"
echo "soak: harmony_soak ${args[*]} (log: $log)"
"$build/harmony_soak" "${args[@]}" 2>&1 | tee "$log"
exit "${PIPESTATUS[0]}"
