#!/usr/bin/env bash
# On the GPU machine, after every .stage/pK was copied to /tmp/stage: install Isaac Lab, the runner and the
# example env into the machine's Python 3.12 (it already has torch, numpy and tensorboard).
set -euo pipefail
cd "$(dirname "$0")/../.."
cd /tmp/stage
for first in *.part-00; do
  [ -e "$first" ] || continue
  name=${first%.part-00}
  cat "$name".part-* > "$name" && rm "$name".part-*
done
cd - >/dev/null
PY=${PY:-python3}
$PY -m pip install -q --no-deps --no-index /tmp/stage/*.whl
$PY -m pip install -q --no-deps --no-build-isolation -e task_image
$PY -m pip install -q --no-deps --no-build-isolation examples/envs/custom_cartpole
$PY -c "import isaaclab, isaaclab_tasks, rsl_rl, warp, newton, isaaclab_runner; print('isaaclab', isaaclab.__version__ if hasattr(isaaclab, '__version__') else 'ok')"
nvidia-smi --query-gpu=name,memory.total --format=csv
