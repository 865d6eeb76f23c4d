#!/usr/bin/env bash
# SmolLM2-135M-Instruct numbers for RESULTS.md (issue 5):
#   * MMLU, all 57 subjects (14,042 questions), 0-shot, letter form and cloze form, scored through
#     lm-evaluation-harness on the in-memory model;
#   * BABILong qa1-qa5 at 0k, 1k, 2k, 4k, 100 samples each, instruction format (chat template, label rule).
#
# Usage: scripts/smollm2_results.sh [cpu|cuda] [OUT_DIR]     (defaults: cpu, results/smollm2)
# Each command writes JSON (and CSVs / PNGs) under OUT_DIR and prints its table; machine.txt records where it ran.
#
# Time on the 2-core CPU machines (fp32): on CPU each MMLU form runs as two one-thread processes over subject
# halves of equal prompt tokens, side by side; the letter form took 63 minutes per half with lm2's former own
# scorer (2026-11-26) and lm-eval's pass takes about 1.2x that, so some 1 h 20 min, and the cloze form about
# twice that. BABILong, one thread per process: about 1.4 / 4.3 / 10 s per sample at 0k / 1k / 2k (and some
# 25 s at 4k). In all some 12 hours on CPU: a GPU job (cuda) is the way to run it whole.
set -uo pipefail

DEVICE=${1:-cpu}
OUT=${2:-results/smollm2}
SHOTS=${SHOTS:-0}
if [[ $DEVICE == cuda* ]]; then MMLU_BATCH=${MMLU_BATCH:-32}; BABILONG_BATCH=${BABILONG_BATCH:-8}
else MMLU_BATCH=${MMLU_BATCH:-8}; BABILONG_BATCH=${BABILONG_BATCH:-1}; fi

mkdir -p "$OUT"
{
  date -u
  python -c "import torch, transformers, lm_eval; print('torch', torch.__version__, '| transformers', transformers.__version__, '| lm_eval', lm_eval.__version__)"
  if [[ $DEVICE == cuda* ]]; then nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
  else lscpu | grep -E "^(Model name|CPU\(s\))"; fi
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"

status=0
mmlu() {  # FORM [extra flags]: the scores of one MMLU form
  local form=$1; shift
  lm2 eval mmlu --model smollm2-135m --form "$form" --shots 0 --device "$DEVICE" \
      --batch-size "$MMLU_BATCH" --no-progress "$@"
}
for FORM in letter cloze; do
  if [[ $DEVICE == cuda* ]]; then
    mmlu "$FORM" --out "$OUT/mmlu" || status=1
  else  # two processes of one thread each, over subject halves of equal prompt tokens, then one table
    PIDS=()
    for HALF in a b; do
      OMP_NUM_THREADS=1 mmlu "$FORM" --subjects $(cat "scripts/mmlu-subjects-$HALF.txt") \
          --out "$OUT/mmlu-$HALF" > "$OUT/mmlu-$FORM-$HALF.log" 2>&1 &
      PIDS+=($!)
    done
    for PID in "${PIDS[@]}"; do wait "$PID" || status=1; done
    python scripts/merge_mmlu.py --form "$FORM" --out "$OUT/mmlu" "$OUT/mmlu-a" "$OUT/mmlu-b" || status=1
  fi
done

lm2 eval babilong --model smollm2-135m --tasks qa1-qa5 --lengths 0k,1k,2k,4k --n 100 \
    --format instruction --shots "$SHOTS" --device "$DEVICE" --batch-size "$BABILONG_BATCH" \
    --out "$OUT/babilong" --resume || status=1  # --resume: a rerun keeps the answers a stopped run saved

exit $status
