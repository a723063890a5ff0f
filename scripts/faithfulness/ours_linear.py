"""transferbench's `solver: reference` linear protocol on tasks written by `export_linear_tasks.py`, printing
the same JSON lines as `reference_linear.py` prints from scikit-learn, so that the two compare line by line:

    python3 scripts/faithfulness/ours_linear.py /tmp/linear-tasks/*.npz --num-wd 12 --permutation 0 > ours.jsonl
    /tmp/skl13/bin/python scripts/faithfulness/reference_linear.py /tmp/linear-tasks/*.npz --num-wd 12 \
        --permutation 0 > sklearn.jsonl
    diff <(jq -c '[.task, .permutation, .C, .score]' ours.jsonl) <(jq -c '[.task, .permutation, .C, .score]' sklearn.jsonl)

`--permutation SEED` shuffles the rows by `reference_under_permutation`'s rule, which `reference_linear.py` repeats.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import scipy

from benchmark.protocols import make_protocol
from benchmark.protocols._linear_sweep import reference_under_permutation
from benchmark.protocols.base import Features, FeatureTask


def load_task(path: str) -> FeatureTask:
    arrays = dict(np.load(path))
    return FeatureTask(Features(arrays["train_x"], arrays["train_y"]), Features(arrays["val_x"], arrays["val_y"]),
                       Features(arrays["test_x"], arrays["test_y"]), int(arrays["num_classes"]), str(arrays["metric"]),
                       str(arrays["task"]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--permutation", type=int, action="append", default=[])
    parser.add_argument("--num-wd", type=int, default=45)
    args = parser.parse_args()
    for path in args.tasks:
        data = load_task(path)
        protocol = make_protocol("linear", {"num_wd": args.num_wd, "solver": "reference"})
        for permutation in args.permutation or [None]:
            if permutation is None:
                result = protocol.evaluate(data)
                C, value = result.chosen["C"], result.value
            else:
                C, value = reference_under_permutation(data, protocol.params, permutation)
            print(json.dumps({"task": path, "permutation": permutation, "scipy": scipy.__version__, "C": C,
                              "score": value}))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
