#!/usr/bin/env bash
# Every perf script in its --quick mode (a smoke run, numbers not reported): so none can break unseen.
# Two at a time, one thread each (two threads each oversubscribe 2 cores, and their OpenMP threads spin),
# each with its own cache: a quick run is mostly imports and small work, so two share 2 cores well
# (measured on an AMD EPYC with AVX2, 2 cores: 530 s one by one, 281 s two at a time).
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT

run_quick() {  # run_quick SCRIPT SCRATCH: its --quick mode, output kept unless it fails
  local script=$1 own="$2/$(basename "$1" .py)" start=$SECONDS
  mkdir -p "$own"
  local args=(--quick)
  case "$script" in
    perf/linear_probe.py|perf/linear_why.py) args+=(--cache-dir "$own/cache") ;;
  esac
  if ! OMP_NUM_THREADS=1 TRANSFERBENCH_CACHE="$own/cache" python3 "$script" "${args[@]}" >"$own/out" 2>&1; then
    echo "FAILED: $script --quick"; tail -30 "$own/out"; return 1
  fi
  echo "ok: $script --quick ($((SECONDS - start)) s)"
}
export -f run_quick

slowest_first=(perf/run_all.py perf/halving.py perf/scale.py perf/gpu.py perf/machines.py)
scripts=("${slowest_first[@]}")
for script in perf/[a-z]*.py; do
  [[ " ${slowest_first[*]} " == *" $script "* ]] || scripts+=("$script")
done
printf '%s\n' "${scripts[@]}" | xargs -P 2 -I{} bash -c 'run_quick "$1" "$2"' _ {} "$scratch"
