#!/usr/bin/env bash
# One round of the GPU benchmarks on a lent 2-GPU machine (the device tool: ten-minute calls, an idle
# machine taken back after ~30 s), in the order the calls are made. Every result names the commit
# given as COMMIT (the device's copy of .git is stale).
#   bash benchmarks/device_round.sh part N       copy the carried .vllm-wheels/pN (or .gguf/X) to /tmp/parts
#   bash benchmarks/device_round.sh install      install vLLM and the harness's wheels, join the SmolLM2 GGUF
#   COMMIT=sha bash benchmarks/device_round.sh PHASE   scaling | unequal | e2e-qps | tune | fq-single | fq-escalate
# Phases that run two one-GPU jobs run them side by side, one per GPU, each under its own timeout,
# with its log in $OUT. Knobs: PROMPTS (scaling 2000, unequal 1500, e2e-qps 6000 by default), BUDGET
# (each tune's --budget-s) and LIMIT (each tune's timeout). At e8f9495 (2xH200): scaling PROMPTS=2000,
# unequal PROMPTS=1500, e2e-qps PROMPTS=4000, tune BUDGET=470 LIMIT=540 (what was left of the device
# time); find_qps_check then had 15-s probes and a 60-s confirm (its defaults are 6 s and 60 s since).
# fq-single: find_qps_check on GPU 0 beside gpu_suite --parts single (PROMPTS, 2000) on GPU 1 (at 7ac25ac
# it passed --prompts 1500, which single ignores: it ran its default 2000);
# fq-escalate: find_qps_check on GPU 0 and the same with find-qps --escalate on GPU 1.
set -uo pipefail
phase=${1:?phase}
out=${OUT:-/tmp/out}
mkdir -p "$out" /tmp/parts
export PYTHONPATH=$PWD:/tmp/vllm-pkgs:/tmp/site VLLM_USE_FLASHINFER_SAMPLER=0 VLLM_NO_USAGE_STATS=1 \
       DO_NOT_TRACK=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
commit=${COMMIT:-}
llama=benchmarks/models/llama3.1-8b
dummy=(--worker-arg=--load-format=dummy --worker-arg=--engine-arg=enable_prefix_caching=false)

syn() {  # the 3000 synthetic prompts every tune probe subsets
  [ -s /tmp/syn.json ] || python3 -c "import json; from harness.run.synthetic import synthetic_records as s; json.dump(s(3000, 0), open('/tmp/syn.json', 'w'))"
}

case $phase in
  part)
    cp "${2:?folder}"/*.part.* /tmp/parts/ && ls -l /tmp/parts ;;
  install)
    bash .vllm-wheels/p6/install.sh > "$out/install.log" 2>&1 || { tail -20 "$out/install.log"; exit 1; }
    python3 -m pip install -q --no-index --no-deps --no-cache-dir --target /tmp/site .whl/*.whl .whlsrv/*.whl \
      >> "$out/install.log" 2>&1 || { tail -20 "$out/install.log"; exit 1; }
    cat /tmp/parts/gguf.part.* > /tmp/smol.gguf && sha256sum /tmp/smol.gguf
    python3 -c "import vllm, mlperf_loadgen, pydantic, gguf; print('vllm', vllm.__version__)"
    nvidia-smi --query-gpu=name,memory.total --format=csv,noheader ;;
  scaling)
    python3 -m harness.perf.gpu_suite --parts scaling --prompts "${PROMPTS:-2000}" --commit "$commit" --out "$out" 2>&1 | tee "$out/scaling.log" ;;
  unequal)
    python3 -m harness.perf.gpu_suite --parts unequal --unequal-prompts "${PROMPTS:-1500}" --commit "$commit" --out "$out" 2>&1 | tee "$out/unequal.log" ;;
  e2e-qps)
    (CUDA_VISIBLE_DEVICES=0 MLPERF_HARNESS_GGUF=/tmp/smol.gguf timeout 560 \
       bash scripts/gpu_e2e_smollm2.sh /tmp/e2e "${PROMPTS:-6000}" > "$out/e2e.log" 2>&1
     echo "e2e rc $?" >> "$out/e2e.log"; cp /tmp/e2e/bench.json "$out/e2e-bench.json" 2>/dev/null
     cp /tmp/e2e/worker.log "$out/e2e-worker.log" 2>/dev/null) &
    (CUDA_VISIBLE_DEVICES=1 timeout 570 python3 -m harness.perf.find_qps_check --model $llama "${dummy[@]}" \
       --force-output-tokens --commit "$commit" --out "$out" > "$out/find-qps-check.log" 2>&1
     echo "find_qps_check rc $?" >> "$out/find-qps-check.log") &
    wait ;;
  tune)
    syn
    # GPU 0: the full 3000 prompts per probe (the ratio); GPU 1: a 24-GiB card's memory budget
    (timeout "${LIMIT:-560}" python3 -m harness tune --model $llama --dataset /tmp/syn.json --gpus 0 --subset 3000 \
       "${dummy[@]}" --budget-s "${BUDGET:-500}" --output /tmp/tune3000 --preset-dir "$out" --commit "$commit" --quiet \
       > "$out/tune3000.log" 2>&1; echo "tune rc $?" >> "$out/tune3000.log"
     cp /tmp/tune3000/tune.json "$out/tune3000.json" 2>/dev/null) &
    (timeout "${LIMIT:-560}" python3 -m harness tune --model $llama --dataset /tmp/syn.json --gpus 1 --subset 1000 \
       --gpu-memory-gib 24 --name vllm-24gib-emulated "${dummy[@]}" --budget-s "${BUDGET:-480}" --output /tmp/tune24 --preset-dir "$out" \
       --commit "$commit" --quiet > "$out/tune24.log" 2>&1; echo "tune rc $?" >> "$out/tune24.log"
     cp /tmp/tune24/tune.json "$out/tune24.json" 2>/dev/null) &
    wait ;;
  fq-single)
    (CUDA_VISIBLE_DEVICES=0 timeout 580 python3 -m harness.perf.find_qps_check --model $llama "${dummy[@]}" \
       --force-output-tokens --commit "$commit" --out "$out" > "$out/find-qps-check.log" 2>&1
     echo "find_qps_check rc $?" >> "$out/find-qps-check.log") &
    (CUDA_VISIBLE_DEVICES=1 timeout 580 python3 -m harness.perf.gpu_suite --parts single --single-prompts "${PROMPTS:-2000}" \
       --commit "$commit" --out "$out" > "$out/single.log" 2>&1; echo "single rc $?" >> "$out/single.log") &
    wait ;;
  fq-escalate)
    for gpu in 0 1; do
      flag=(); [ $gpu = 1 ] && flag=(--find-qps-arg=--escalate)
      (CUDA_VISIBLE_DEVICES=$gpu timeout 580 python3 -m harness.perf.find_qps_check --model $llama "${dummy[@]}" \
         "${flag[@]}" --force-output-tokens --commit "$commit" --out "$out/gpu$gpu" > "$out/find-qps-check-gpu$gpu.log" 2>&1
       echo "find_qps_check rc $?" >> "$out/find-qps-check-gpu$gpu.log") &
    done
    wait ;;
  *) echo "unknown phase $phase" >&2; exit 2 ;;
esac
