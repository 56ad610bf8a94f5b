#!/usr/bin/env bash
# One GPU session's checks, in priority order, each under its own time limit; everything lands in $OUT:
#   1. decode speed on the 7B-shaped Qwen2.5-Omni thinker (eager generate vs compiled static-cache step)
#   2. prefill efficiency of the four pruners on the same shape (realized vs ideal)
#   3. the CUDA paths of the suite on tiny checkpoints: static/compiled decode == eager, benchmark cases
# Wheels the image lacks travel in .whl (see docs/gpu-ci.md); the repo itself is used from the checkout.
set -uo pipefail
OUT=${OUT:-results/gpu-check}
mkdir -p "$OUT"
LOG="$OUT/log.txt"
if ls .whl/*.whl >/dev/null 2>&1; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD" MARATHON_CACHE=${MARATHON_CACHE:-/tmp/marathon-cache} HF_HUB_OFFLINE=1
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false

step() {  # step <seconds> <title> <command...>
    local limit=$1 title=$2; shift 2
    echo "=== $title ($(date +%T), limit ${limit}s)" | tee -a "$LOG"
    local start=$SECONDS
    timeout "$limit" "$@" 2>&1 | grep -v '^\[transformers\]' | tee -a "$LOG" | tail -n 40
    echo "=== $title: exit ${PIPESTATUS[0]} after $((SECONDS - start)) s" | tee -a "$LOG"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch, transformers; print('torch', torch.__version__, 'transformers', transformers.__version__)"
} 2>&1 | tee -a "$LOG"

step 270 "decode speed, shape:Qwen/Qwen2.5-Omni-7B" \
    python3 -m marathon_lib.cli decode-bench --prompt-tokens 7500 --new-tokens 64 --modes eager,compiled \
    --prune-ratio 0,0.5 --repeats 2 --out "$OUT/decode.json"
step 120 "prefill efficiency, qwen2.5-omni-7b" \
    python3 -m marathon_lib.cli efficiency --repeats 3 --out "$OUT/efficiency.json"
MARATHON_TEST_DEVICE=cuda step 120 "static/compiled decode == eager on CUDA (tiny checkpoints)" \
    python3 -m pytest tests_bench/unit/test_decode.py -q -x -p no:cacheprovider -k "equals_eager or compiled or shorter"
step 150 "benchmark cases on CUDA, compiled decode" \
    python3 -m pytest tests_bench/test_cases.py -q -p no:cacheprovider --device cuda \
    --models tiny-qwen2.5-omni,tiny-qwen2-audio --tasks TAU,HAD,LibriSpeech --pruners base,dart --prune-ratio 0.5 \
    --decode compiled --synthetic-seconds 30 --synthetic-samples 2 --results-dir results/gpu-cases
tar czf "$OUT/cases.tgz" results/gpu-cases 2>/dev/null
echo "done $(date +%T)" | tee -a "$LOG"
