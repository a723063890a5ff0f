#!/usr/bin/env bash
# Every perf script in its --quick mode (a smoke run, numbers not reported): so none can break unseen.
set -euo pipefail
cd "$(dirname "$0")/.."
scratch="$(mktemp -d)"
trap 'rm -rf "$scratch"' EXIT
for script in perf/[a-z]*.py; do
  start=$SECONDS
  case "$script" in
    perf/linear_probe.py|perf/linear_why.py) args=(--quick --cache-dir "$scratch/cache") ;;
    *) args=(--quick) ;;
  esac
  if ! TRANSFERBENCH_CACHE="$scratch/cache" python3 "$script" "${args[@]}" >"$scratch/out" 2>&1; then
    echo "FAILED: $script --quick"; tail -30 "$scratch/out"; exit 1
  fi
  echo "ok: $script --quick ($((SECONDS - start)) s)"
done
