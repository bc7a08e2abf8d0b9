#!/usr/bin/env bash
# One end-to-end harness run with real vLLM on this GPU: Offline and Server performance and an
# Offline AccuracyOnly run, on synthetic prompts with dummy Llama-3.1-8B weights. Prints the
# summary lines. Usage: bash scripts/gpu_e2e.sh [SAMPLES] [OUT_DIR]
set -euo pipefail
samples=${1:-500}
out=${2:-gpu-e2e}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
python -m harness synthetic --samples "$samples" --out "$out/synthetic.json"
cat > "$out/user.conf" <<CONF
llama3_1-8b.*.performance_sample_count_override = $samples
llama3_1-8b.Offline.target_qps = 1
llama3_1-8b.Offline.min_duration = 0
llama3_1-8b.Offline.min_query_count = $samples
llama3_1-8b.Server.target_qps = 15
llama3_1-8b.Server.min_duration = 0
llama3_1-8b.Server.min_query_count = $samples
CONF
. "$(dirname "$0")/worker_up.sh"
start_worker "$out/worker.log" --engine vllm --model "$here/benchmarks/models/llama3.1-8b" \
    --load-format dummy --max-num-seqs 512 --max-num-batched-tokens 16384
common=(--workers "$worker_address" --dataset "$out/synthetic.json" --user-conf "$out/user.conf" --output "$out/runs" --quiet)
for spec in "Offline PerformanceOnly --force-output-tokens" "Server PerformanceOnly --force-output-tokens --allow-invalid" \
            "Offline AccuracyOnly"; do
  set -- $spec
  echo "=== $1 $2"
  python -m harness --scenario "$1" --mode "$2" "${common[@]}" "${@:3}" | grep -E \
    "Scenario|Mode|per second|Result is|first token latency \(ns\)|50.00 percentile time to|99.00 percentile time to|Result:|logs:|invalid:" || true
done
