#!/usr/bin/env bash
# The prepared GPU run (issue "Memory at GPU speed"): correctness on the device, then the speed benchmarks with
# the compiled memory fast path, bf16 training throughput and the peer comparison. Outputs go to $OUT (default
# benchmarks/results/gpu-<date>), one file per step; about 10 minutes on an H100/H200.
#   bash scripts/gpu_run.sh            # needs a CUDA device
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu-$(date +%Y%m%d)}
mkdir -p "$OUT"
export PYTHONPATH=$PWD:$PWD/benchmarks
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
step() {  # name timeout command...
  local name=$1 limit=$2; shift 2
  echo "== $name"; timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1; echo "   exit $?"; tail -n 25 "$OUT/$name.txt"
}
step device_check 150 python benchmarks/device_check.py
step memory_compile 240 python benchmarks/memory_compile.py --device cuda
step train_throughput_bf16 150 python benchmarks/train_throughput.py --device cuda --dtype bf16 --presets small 40m \
    --batch 8 --seq 1024 --intervals 64 --repeats 5
step peers 90 python benchmarks/peers.py --device cuda --batch 8 --repeats 5
