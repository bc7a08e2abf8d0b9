# Sourced by the GPU scripts: `start_worker LOG [worker flags...]` starts `python -m sut.worker` on a
# port the kernel picks (a fixed port can be taken by another process's ephemeral port on a busy
# host), waits for its READY line, and sets $worker (pid) and $worker_address (host:port); every
# worker started this way is killed when the calling script exits (an EXIT trap it installs). If the
# worker exits or is not READY within $WORKER_READY_S seconds (default 900), it prints the log's
# tail and exits 1 at once instead of waiting out the deadline.
start_worker() {
  local log=$1; shift
  python -m sut.worker --host 127.0.0.1 --port 0 "$@" > "$log" 2>&1 &
  worker=$!
  started_workers+=("$worker")
  trap 'kill "${started_workers[@]}" 2>/dev/null || true' EXIT
  local deadline=$((SECONDS + ${WORKER_READY_S:-900}))
  until grep -qs '^READY' "$log"; do
    if ! kill -0 "$worker" 2>/dev/null; then
      echo "worker exited before READY ($log):" >&2; tail -n 20 "$log" >&2; exit 1
    fi
    if ((SECONDS >= deadline)); then
      echo "worker not READY after ${WORKER_READY_S:-900} s ($log):" >&2; tail -n 20 "$log" >&2; exit 1
    fi
    sleep 1
  done
  worker_address=$(grep -m1 '^READY' "$log" | awk '{print $2}')
  echo "worker READY at $worker_address"
}
