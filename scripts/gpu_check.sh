#!/usr/bin/env bash
# GPU check, run on a CUDA machine from the repo root: every notebook at COURSE_SIZE=full, then the
# benchmarks. Results land in $OUT (the device tool's output folder) or gpu_results/:
#   notebooks.tsv   notebook, seconds, status
#   train.jsonl     one line per training run (course_lib.training.train): items/s, flops_per_item
#   summary.txt     tokens/s and model-FLOP utilisation per training run
#   bench.json      python -m bench results
# Keep it short: the device budget is 15 minutes for everything. Chapters add nothing here: every
# notebook under chapters/ is picked up, and training loops report through COURSE_RESULTS.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu_results}
mkdir -p "$out"
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" > "$out/nvidia-smi.txt"
export COURSE_SIZE=full COURSE_RESULTS="$out/train.jsonl"
: > "$COURSE_RESULTS"
printf 'notebook\tseconds\tstatus\n' > "$out/notebooks.tsv"
work=$(mktemp -d)  # executed copies go here; the repo's notebooks are not rewritten
for nb in chapters/*.ipynb; do
  start=$(date +%s)
  if timeout "${NB_TIMEOUT:-900}" python scripts/run_notebook.py --out "$work" "$nb" > "$out/$(basename "$nb" .ipynb).log" 2>&1; then
    status=ok; else status=FAILED; fi
  printf '%s\t%s\t%s\n' "$nb" "$(( $(date +%s) - start ))" "$status" | tee -a "$out/notebooks.tsv"
done
timeout "${BENCH_TIMEOUT:-600}" python -m bench --out "$out/bench.json" > "$out/bench.log" 2>&1 || echo "bench FAILED" >> "$out/bench.log"
# MFU = FLOPs/item (counted by course_lib.training.train: 6·N + 12·L·d·T per token for a Transformer)
# × items/s ÷ peak. Peak: H200 dense bf16 matmul ≈ 790 TFLOP/s (measured); override with PEAK_FLOPS.
python - "$COURSE_RESULTS" "${PEAK_FLOPS:-7.9e14}" > "$out/summary.txt" <<'PY'
import json, sys
path, peak = sys.argv[1], float(sys.argv[2])
print(f"{'training run':<40}{'items/s':>14}{'GFLOP/item':>12}{'loss':>9}{'MFU':>8}   (peak {peak / 1e12:.0f} TFLOP/s)")
for line in open(path):
    r = json.loads(line)
    flops = r.get("flops_per_item")
    mfu = f"{flops * r['items_per_second'] / peak:.1%}" if flops else "-"
    gflop = f"{flops / 1e9:.4f}" if flops else "-"
    print(f"{r['desc']:<40}{r['items_per_second']:>14,.0f}{gflop:>12}{r['final_loss']:>9.3f}{mfu:>8}")
PY
cat "$out/summary.txt" "$out/notebooks.tsv"
