#!/usr/bin/env bash
# One device call of overhead.py: installs the staged Isaac Lab first when the machine lacks it (the last part of
# stage_compact.sh must be in /tmp/stage), then runs overhead.py from the snapshot with its results under $OUT/NAME
# (they come back with the call; overhead.json is rewritten after every repetition, so a call cut short keeps them).
#   bash bench/gpu/overhead_call.sh NAME SECONDS [overhead.py arguments...]   (SECONDS: the call's limit, install
#   included)
set -uo pipefail
name=$1 limit=$2
shift 2
if ! python3 -c "import isaaclab_runner, isaaclab" 2>/dev/null; then
  start=$SECONDS
  bash /tmp/stage/install_compact.sh || exit 1
  echo "install_compact: $((SECONDS - start)) s"
fi
export ISAACLAB_RUNNER_SCHEMAS_DIR=/tmp/snap/include/schemas
cd /tmp/snap || exit 1
mkdir -p "$OUT/$name"
PYTHONUNBUFFERED=1 timeout "$((limit - SECONDS))" python3 bench/gpu/overhead.py --out "$OUT/$name" --scratch /tmp/bench-scratch "$@"
rc=$?
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/$name/gpu.txt" 2>&1
exit $rc
