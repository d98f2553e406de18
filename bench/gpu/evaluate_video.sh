#!/usr/bin/env bash
# Evaluate mode with video on the GPU: 50 episodes of a trained checkpoint, recordVideo on, as a Batch job runs it.
# Usage: bash bench/gpu/evaluate_video.sh OUT_DIR CHECKPOINT.pt
# GL_LIB_DIR=dir holding libglvnd's libGL.so.1, libEGL.so.1, libGLX.so.0, libGLdispatch.so.0 (from Debian's
# packages), for a GPU host whose driver mounts NVIDIA's EGL vendor library but which lacks the glvnd loader
# (the task image installs it: libegl1 libgl1).
set -u
OUT=${1:?out dir}; CKPT=${2:?checkpoint}; S=/tmp/evaluate-video; rm -rf $S; mkdir -p $S "$OUT"
[ -n "${GL_LIB_DIR:-}" ] && export LD_LIBRARY_PATH="$GL_LIB_DIR:${LD_LIBRARY_PATH:-}"
cat > $S/spec.json <<JSON
{"jobId": "00000000-0000-4000-8000-0000000000e2", "mode": "evaluate", "task": "Isaac-Custom-Cartpole-Direct",
 "rlLibrary": "rsl_rl", "seed": 42, "numEnvs": 100, "numEpisodes": 50, "recordVideo": true, "maxIterations": 100,
 "envPackageUri": "file:///tmp/isaaclab-bench/custom_cartpole.tar.gz", "checkpointUri": "file://$CKPT",
 "stagingUri": "$S/staging", "device": "auto"}
JSON
cp $S/spec.json "$OUT/eval_video_spec.json"
python3 -m isaaclab_runner run --spec $S/spec.json --workdir $S/work > "$OUT/eval_video.log" 2>&1
echo "evaluate exit $?"
grep -iE "EGL|renderer|GL_VENDOR|GL_RENDERER|video" "$OUT/eval_video.log" | head -20
find $S/staging -name '*.mp4' -printf '%p %s bytes\n'
find $S/staging \( -name 'summary.json' -o -name 'episodes.csv' -o -name 'evaluation-config.json' \) -exec cp {} "$OUT/" \;
cp "$(find $S/staging -name '*.mp4' | head -1)" "$OUT/" 2>/dev/null
cat "$OUT/summary.json" 2>/dev/null | head -40
