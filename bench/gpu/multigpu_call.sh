#!/usr/bin/env bash
# One device call of a resumable multigpu.py measurement (after install_compact.sh put the snapshot in /tmp/snap).
# Results stay in $RES on the machine between calls; multigpu.json is copied to $OUT every 5 s (a call cut short
# still returns what it measured) and the logs come back as one tarball at the end.
#   bash bench/gpu/multigpu_call.sh SECONDS [multigpu.py arguments...]   (SECONDS: when to stop starting runs)
set -uo pipefail
budget=$1
shift
RES=${RES:-/tmp/bench-multigpu}
mkdir -p "$RES"
(while sleep 5; do cp "$RES/multigpu.json" "$OUT/" 2>/dev/null; done) &
copier=$!
cd /tmp/snap || exit 1
PYTHONUNBUFFERED=1 python3 bench/gpu/multigpu.py --out "$RES" --scratch /tmp/bench-scratch \
  --stop-after $((budget - SECONDS)) "$@"
rc=$?
kill "$copier"
cp "$RES/multigpu.json" "$OUT/" 2>/dev/null
tar -czf "$OUT/logs.tar.gz" -C "$RES" logs 2>/dev/null
exit $rc
