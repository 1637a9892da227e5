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
  procps psmisc                    # pgrep/pkill/fuser used by scripts
  openssl                          # throwaway CA and certificates for the TLS route tests
  # Remote snapshot stores: libcurl (S3 SigV4, WebDAV, sftp:// via libssh2); their test servers
  # (rclone serve webdav|sftp) and host keys for the SFTP tests. The S3 test server needs node
  # and npm (installed with the other node tooling) and is installed below.
  libcurl4-openssl-dev rclone openssh-client
)

# The S3 test server (tests/support/store_servers.cpp) from the npm registry into a fixed
# directory: @20minutes/s3rver, a fork of s3rver that verifies SigV4 signatures (upstream s3rver
# 3.7 accepts any signature, so a wrong secret would pass). Pinned; skipped when present.
install_s3_test_server() {
  local dir=/opt/harmony-test
  [ -d "$dir/node_modules/@20minutes/s3rver" ] && return 0
  if ! command -v npm >/dev/null; then
    echo "setup: npm missing: the S3 snapshot store tests will fail until it is installed" >&2
    return 0
  fi
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --loglevel=error @20minutes/s3rver@5.0.0)
}
trap install_s3_test_server EXIT

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages already installed"
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
