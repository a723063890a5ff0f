#!/usr/bin/env bash
# The check for the first session that is lent a GPU (one call, under 8 minutes on one H100): every protocol
# of the offline suite on CUDA against the CPU run, zero-shot and image-text with the text tower on the GPU,
# one pretraining step per method, a 2-process torchrun sharing the GPU, the device tests, then perf/gpu.py
# at GPU sizes (extraction, the linear sweep, fine-tuning, each beside its ceiling).
#   run: bash perf/gpu_check.sh            (packages missing there travel as wheels in .whl/: see the README)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --find-links .whl -e ".[test]"
else
  python3 -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || true  # deps already there
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -m pytest -q -x -rs tests/test_cuda.py tests/test_device_placement.py tests/test_device.py
python3 perf/gpu.py --device cuda
# issue 30's GPU projection: per-batch costs of the streamed protocols at ImageNet's width and class count
python3 perf/scale.py --rows 200000 --dim 2048 --classes 1000 --device cuda --protocols linear_sgd knn retrieval_train --timeout 120
