#!/usr/bin/env bash
# On the GPU machine, after every part of stage_compact.sh was copied to /tmp/stage: install Isaac Lab, the runner
# and the example env into the machine's Python 3.12 (it has torch, numpy, tensorboard, pillow), and unpack the
# committed snapshot (bench/gpu, task_image, examples) in /tmp/snap, where the benchmarks then run from.
set -euo pipefail
PY=${PY:-python3}
cd /tmp/stage
if ls all.tar.part-* >/dev/null 2>&1; then
  cat all.tar.part-* | tar -x -C /tmp/stage && rm all.tar.part-*
fi
SITE=$($PY -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])')
$PY - "$SITE" <<'PY'
import sys, tarfile, glob
for archive in glob.glob("/tmp/stage/warp_lang-*.tar.xz"):  # the unpacked wheel: what pip would put there
    with tarfile.open(archive) as tar:
        tar.extractall(sys.argv[1], filter="fully_trusted")
PY
$PY -m pip install -q --no-deps --no-index --no-compile /tmp/stage/wheels/*.whl
rm -rf /tmp/snap && mkdir -p /tmp/snap && tar -x -C /tmp/snap -f /tmp/stage/snapshot.tar
cd /tmp/snap
$PY -m pip install -q --no-deps --no-build-isolation -e task_image
$PY -m pip install -q --no-deps --no-build-isolation examples/envs/custom_cartpole
$PY -c "import isaaclab, isaaclab_tasks, rsl_rl, warp, newton, isaaclab_runner; print('isaaclab ok, warp', warp.__version__)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
