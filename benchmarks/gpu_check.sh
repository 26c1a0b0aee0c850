#!/usr/bin/env bash
# The prepared GPU run (issues: CUDA backends, architecture-only profile of both pplx-embed-v1
# sizes). Meant for a machine with one CUDA GPU whose Python already has torch, transformers,
# sentence-transformers and onnxruntime; it installs this project without dependencies and the
# few pure-Python ones it lacks from wheels carried in ./wheels (if present). Stays under 8 minutes:
# every profile cell has a 20 s budget. Writes everything under ${OUT:-gpu-out}.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
python -m pip install --no-deps --no-index --find-links wheels -e . >/dev/null 2>&1 || python -m pip install --no-deps -e . >/dev/null
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
export HF_HUB_OFFLINE=1
timeout 150 python -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tail -5 | tee "$OUT/gpu-tests.txt"
timeout 300 python -m bench.cli profile --device cuda --models pplx-embed-v1-0.6b,pplx-embed-v1-4b \
  --lengths 128,512,2048,8192,32768 --batch-sizes 1,8 --dtypes bfloat16,float32 --budget 20 --repeats 2 \
  --task SciFact --task-sample 64 --output-dir "$OUT" 2>&1 | tail -45 | tee "$OUT/profile.md"
