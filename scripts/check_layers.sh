#!/usr/bin/env bash
# Checks that no #include runs back up the layers (ARCHITECTURE.md, "Layers"). A file may include
# headers of its own folder and of folders of a strictly lower layer:
#   0 shared/                      the database-side engine (extension and replicator)
#   1 extension/  replicator/common/
#   2 replicator/config/
#   3 replicator/wire/  replicator/nats/
#   4 replicator/publish/  replicator/receive/  replicator/snapshot/  replicator/sync/
#   5 replicator/ops/
#   6 replicator/node/
#   7 replicator/main.cpp
# Exit 1 with one line per offending include.
set -euo pipefail
cd "$(dirname "$0")/.."

# The layer of a folder ("shared", "replicator/nats", "replicator" for main.cpp); empty if none.
layer_of() {
  case "$1" in
    shared) echo 0 ;;
    extension | replicator/common) echo 1 ;;
    replicator/config) echo 2 ;;
    replicator/wire | replicator/nats) echo 3 ;;
    replicator/publish | replicator/receive | replicator/snapshot | replicator/sync) echo 4 ;;
    replicator/ops) echo 5 ;;
    replicator/node) echo 6 ;;
    replicator) echo 7 ;;
    *) echo "" ;;
  esac
}

status=0
while IFS= read -r file; do
  folder=$(dirname "$file")
  own=$(layer_of "$folder")
  if [ -z "$own" ]; then
    echo "$file: folder $folder has no layer in scripts/check_layers.sh"
    status=1
    continue
  fi
  while IFS=: read -r line include; do
    target=$(dirname "$include")
    [ "$target" = "$folder" ] && continue
    theirs=$(layer_of "$target")
    if [ -z "$theirs" ] || [ "$theirs" -ge "$own" ]; then
      echo "$file:$line: includes $include (layer ${theirs:-?}) from layer $own"
      status=1
    fi
  done < <(grep -no '^#include "\(shared\|extension\|replicator\)/[^"]*"' "$file" |
           sed 's/#include "\(.*\)"/\1/')
done < <(find shared extension replicator -name '*.[ch]pp' | sort)
[ "$status" -eq 0 ] && echo "layers: every include points down"
exit "$status"
