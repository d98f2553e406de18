#!/usr/bin/env bash
# Stage Isaac Lab's wheel closure for the GPU machine in parts that fit one device call (<= 64 MiB each).
# Usage: bench/gpu/stage.sh   → .stage/p1 .. .stage/pN (git-ignored); then on the device, per part:
#   mkdir -p /tmp/stage && cp .stage/pK/* /tmp/stage/      (carry .stage/pK; calls within ~30 s of each other)
# and finally: bash bench/gpu/install_on_device.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PART_MB=${PART_MB:-55}
PY=.venvs/isaaclab/bin/python
mkdir -p .stage/wheels
# The closure minus what the device already has (torch and its CUDA libraries, numpy, tensorboard).
if [ ! -f .stage/requirements-gpu.txt ]; then
  .venvs/isaaclab/bin/pip freeze | grep -viE '^(torch|triton|nvidia-|cuda-|numpy|tensorboard|protobuf|-e )' \
    | grep -iE '^(farama-notifications|gitpython|pyyaml|attrs|boto3|botocore|certifi|cloudpickle|cmeel|gitdb|glfw|gymnasium|hydra-core|isaaclab|jmespath|lazy[-_]loader|mujoco|mujoco[-_]warp|newton|newton[-_]usd[-_]schemas|omegaconf|pillow|prettytable|python-dateutil|pyvers|rich|markdown-it-py|mdurl|pygments|rsl-rl-lib|s3transfer|smmap|tensordict|tqdm|urllib3|usd[-_]exchange|warp-lang|wcwidth|jsonschema|jsonschema-specifications|referencing|rpds-py|importlib[-_]metadata|zipp|orjson|moviepy|imageio|imageio-ffmpeg|decorator|proglog|pyglet|pyopengl|antlr4-python3-runtime)==' \
    > .stage/requirements-gpu.txt
fi
# Two of them are published as sdists only: build their (pure-Python) wheels here.
SDIST_ONLY='^(antlr4-python3-runtime|moviepy)=='
grep -viE "$SDIST_ONLY" .stage/requirements-gpu.txt > .stage/requirements-wheels.txt
.venvs/isaaclab/bin/pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_34_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform any -d .stage/wheels -r .stage/requirements-wheels.txt
grep -iE "$SDIST_ONLY" .stage/requirements-gpu.txt | xargs -r .venvs/isaaclab/bin/pip wheel -q --no-deps -w .stage/wheels
rm -rf .stage/p[0-9]*
$PY - "$PART_MB" <<'PY'
import sys, shutil
from pathlib import Path
limit = int(sys.argv[1]) * 1024 * 1024
src, parts, sizes = Path(".stage/wheels"), [], []
pieces = []
for f in sorted(src.iterdir(), key=lambda p: -p.stat().st_size):
    data_size = f.stat().st_size
    if data_size <= limit:
        pieces.append((f, None, data_size))
        continue
    with f.open("rb") as fh:  # split big wheels; install_on_device.sh concatenates *.part-* back
        i = 0
        while chunk := fh.read(limit):
            pieces.append((f, (i, chunk), len(chunk)))
            i += 1
for f, chunk, size in pieces:  # first-fit decreasing
    for k, used in enumerate(sizes):
        if used + size <= limit:
            break
    else:
        k = len(sizes); sizes.append(0); parts.append(Path(f".stage/p{k + 1}")); parts[k].mkdir(parents=True)
    sizes[k] += size
    if chunk is None:
        shutil.copy(f, parts[k] / f.name)
    else:
        (parts[k] / f"{f.name}.part-{chunk[0]:02d}").write_bytes(chunk[1])
for p, s in zip(parts, sizes):
    print(f"{p}: {s / 2**20:.1f} MiB, {len(list(p.iterdir()))} files")
PY
