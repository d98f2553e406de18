#!/usr/bin/env bash
# Interruption on the GPU: SIGTERM the runner mid-training (as Batch does on a spot reclaim), then start
# attempt 2 as Batch's retryStrategy does (AWS_BATCH_JOB_ATTEMPT=2) and check it resumed and finished.
# Usage: bash bench/gpu/resume.sh OUT_DIR   (needs /tmp/isaaclab-bench/custom_cartpole.tar.gz from overhead.py)
set -u
OUT=${1:?out dir}; S=/tmp/resume; rm -rf $S; mkdir -p $S "$OUT"
cat > $S/spec.json <<JSON
{"jobId": "00000000-0000-4000-8000-0000000000f1", "mode": "train", "task": "Isaac-Custom-Cartpole-Direct",
 "rlLibrary": "rsl_rl", "seed": 42, "numEnvs": 4096, "maxIterations": 100, "device": "auto",
 "envPackageUri": "file:///tmp/isaaclab-bench/custom_cartpole.tar.gz", "stagingUri": "$S/staging",
 "overrides": ["agent.save_interval=10"]}
JSON
ISAACLAB_RUNNER_EXPORT=0 AWS_BATCH_JOB_ATTEMPT=1 python3 -m isaaclab_runner run --spec $S/spec.json \
  --workdir $S/work1 > "$OUT/resume_attempt1.log" 2>&1 &
pid=$!
for _ in $(seq 600); do
  it=$(python3 -c "import json;print(json.load(open('$S/staging/progress.json')).get('iteration',0))" 2>/dev/null || echo 0)
  [ "$it" -ge 45 ] && break; sleep 0.5
done
echo "SIGTERM at progress iteration $it"; kill -TERM $pid; wait $pid; echo "attempt 1 exit $?"
ISAACLAB_RUNNER_EXPORT=0 AWS_BATCH_JOB_ATTEMPT=2 python3 -m isaaclab_runner run --spec $S/spec.json \
  --workdir $S/work2 > "$OUT/resume_attempt2.log" 2>&1; echo "attempt 2 exit $?"
echo "attempt 1 last iteration: $(grep -o 'Learning iteration [0-9]*' "$OUT/resume_attempt1.log" | tail -1)"
grep -m1 "resuming from" "$OUT/resume_attempt2.log"
echo "attempt 2 first iteration: $(grep -o 'Learning iteration [0-9]*' "$OUT/resume_attempt2.log" | head -1)"
echo "attempt 2 last iteration: $(grep -o 'Learning iteration [0-9]*/[0-9]*' "$OUT/resume_attempt2.log" | tail -1)"
echo "staged checkpoints: $(find $S/staging -name 'model_*.pt' -printf '%f\n' | sort -t_ -k2 -n | uniq | tr '\n' ' ')"
