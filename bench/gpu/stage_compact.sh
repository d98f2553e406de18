#!/usr/bin/env bash
# Stage Isaac Lab for a training benchmark in as few device calls as possible (3 parts of <= 58 MiB instead of 6).
#   bash bench/gpu/stage.sh && bash bench/gpu/stage_compact.sh   → .stage/q1 .. .stage/qN (git-ignored)
# Then on the device, one call per part, within ~30 s of each other (the machine goes back when idle):
#   mkdir -p /tmp/stage && cp .stage/qK/* /tmp/stage/        (carry .stage/qK)
# and after the last one: bash /tmp/stage/install_compact.sh  (it is in every part's archive; see below).
# What it leaves out or repacks, against stage.sh's closure:
#   * the video packages (moviepy, imageio, imageio-ffmpeg, decorator, proglog, pyglet, PyOpenGL: 72 MB), boto3
#     and botocore (18 MB: the runner imports them only for s3:// URIs, the benchmarks use local paths) and
#     pillow, which the device image has: training never imports them (Isaac Lab imports moviepy lazily);
#   * warp-lang's wheel (164 MB, deflate) travels as its unpacked tree in xz (~100 MB) and is unpacked into
#     site-packages as pip would (Python's own lzma: nothing to install first);
#   * a snapshot of the committed bench/gpu, task_image and example env (git archive HEAD), so the device runs
#     what was committed, not files others are editing in the working tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
PART_MB=${PART_MB:-58}
SKIP='^(moviepy|imageio|imageio_ffmpeg|decorator|proglog|pyglet|pyopengl|pillow|boto3|botocore|s3transfer|jmespath|warp_lang)-'
test -d .stage/wheels || { echo "run bench/gpu/stage.sh first" >&2; exit 1; }
rm -rf .stage/compact .stage/q[0-9]*
mkdir -p .stage/compact/wheels
for whl in .stage/wheels/*.whl; do
  name=$(basename "$whl")
  if ! echo "$name" | grep -qiE "$SKIP"; then cp "$whl" .stage/compact/wheels/; fi
done
warp=$(ls .stage/wheels/warp_lang-*.whl)
xz_file=.stage/$(basename "$warp" .whl).tar.xz
if [ ! -f "$xz_file" ]; then  # ~5 min on one core; kept for the next staging
  tmp=$(mktemp -d)
  (cd "$tmp" && python3 -m zipfile -e "$OLDPWD/$warp" .)
  tar -C "$tmp" -cf - . | xz -9 -T1 > "$xz_file.tmp" && mv "$xz_file.tmp" "$xz_file"
  rm -rf "$tmp"
fi
cp "$xz_file" .stage/compact/
git archive --format=tar HEAD bench/gpu task_image include/schemas examples/envs/custom_cartpole > .stage/compact/snapshot.tar
cp bench/gpu/install_compact.sh .stage/compact/
tar -C .stage/compact -cf .stage/all.tar .
size=$(stat -c %s .stage/all.tar)
parts=$(( (size + PART_MB * 1048576 - 1) / (PART_MB * 1048576) ))
split -n "$parts" -d -a 2 .stage/all.tar .stage/all.tar.part-
for i in $(seq 1 "$parts"); do
  mkdir -p ".stage/q$i" && mv ".stage/all.tar.part-$(printf %02d $((i - 1)))" ".stage/q$i/"
done
rm .stage/all.tar
du -sh --apparent-size .stage/q* | sed 's/^/  /'
echo "$parts parts; device: cat /tmp/stage/all.tar.part-* | tar -x -C /tmp/stage && bash /tmp/stage/install_compact.sh"
