#!/usr/bin/env bash
# Installs every Debian 12 package harmonylite needs to build, test, demo and benchmark.
# Idempotent: apt-get skips what is already installed; `apt-get update` runs only when the
# package lists are missing or older than a day, so re-running is cheap.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl
  sqlite3 libsqlite3-dev           # the database and the stock shell used by tests and the demo
  nats-server libnats-dev          # JetStream server (embedded child) and the C client
  nlohmann-json3-dev               # JSON + CBOR codec for the wire format and status output
  libfmt-dev libspdlog-dev         # formatting and structured logs
  libtomlplusplus-dev              # TOML config (HarmonyLite's format)
  libzstd-dev                      # batch compression (compress=true)
  libcpp-httplib-dev libssl-dev    # health/metrics endpoints; SHA-256 for snapshot digests
  catch2                           # unit tests (v2; Debian 12 has no v3)
  clang libclang-rt-14-dev         # libFuzzer targets
  iptables iproute2                # partition faults in the soak harness (namespaces, rules)
  gnuplot-nox                      # benchmark plots
  valgrind                         # callgrind instruction counts in capture_bench (issue 18)
  procps psmisc                    # pgrep/pkill/fuser used by scripts
  openssl                          # throwaway CA and certificates for the TLS route tests
  python3                          # a host the extension is tested in (tests/integration/test_hosts)
  # Remote snapshot stores: libcurl (S3 SigV4, WebDAV, sftp:// via libssh2); their test servers
  # (rclone serve webdav|sftp) and host keys for the SFTP tests. The S3 test server needs node
  # and npm (installed with the other node tooling) and is installed below.
  libcurl4-openssl-dev rclone openssh-client
)

# The Debian package test (tests/package/deb_install.sh): dpkg-shlibdeps (dpkg-dev) computes the
# package's library dependencies, systemd-analyze (systemd) verifies harmonylite@.service, and
# the package's postinst creates its user with adduser.
PACKAGES+=(dpkg-dev systemd adduser)

# better-sqlite3 (npm), the host with its own SQLite that tests/integration/test_hosts.cpp loads
# the extension into, goes to .cache/node (ignored by git). No prebuilt binary can be downloaded
# here, so npm compiles it (several minutes, once). A failure is reported, not fatal: that test
# then says SKIPPED and why.
install_better_sqlite3() {
  local dir=.cache/node
  [ -f "$dir/node_modules/better-sqlite3/build/Release/better_sqlite3.node" ] && return 0
  command -v npm >/dev/null || { echo "setup: npm missing, better-sqlite3 not installed"; return 0; }
  echo "setup: npm install better-sqlite3@12 into $dir (compiles its SQLite; takes minutes)"
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error better-sqlite3@12) ||
    echo "setup: WARNING: npm install better-sqlite3@12 failed; the better-sqlite3 test will skip"
}

# The S3 test server (tests/support/store_servers.cpp) from the npm registry into a fixed
# directory: @20minutes/s3rver, a fork of s3rver that verifies SigV4 signatures (upstream s3rver
# 3.7 accepts any signature, so a wrong secret would pass). Pinned; skipped when present. A
# failure is reported; the S3 store tests then fail and say the server could not start.
install_s3_test_server() {
  local dir=/opt/harmony-test
  [ -d "$dir/node_modules/@20minutes/s3rver" ] && return 0
  if ! command -v npm >/dev/null; then
    echo "setup: npm missing: the S3 snapshot store tests will fail until it is installed" >&2
    return 0
  fi
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error @20minutes/s3rver@5.0.0) ||
    echo "setup: WARNING: npm install @20minutes/s3rver failed; the S3 store tests will fail" >&2
}

# What npm brings, after the Debian packages (npm may be one of them).
install_npm_test_tools() {
  install_better_sqlite3
  install_s3_test_server
}
cd "$(dirname "$0")/.."

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm, the other host: Debian's nodejs and npm only where the machine has none (an
# installed Node.js from elsewhere bundles its npm, and Debian's npm would conflict with it).
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
  install_npm_test_tools
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
lists=/var/lib/apt/lists
if [ -z "$(find "$lists" -maxdepth 1 -name '*Packages*' -mmin -1440 2>/dev/null | head -1)" ]; then
  $SUDO apt-get update -q
fi
echo "setup: installing ${missing[*]}"
$SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
install_npm_test_tools
