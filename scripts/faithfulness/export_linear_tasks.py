"""Write the linear protocol's exact inputs (train / val / test features and labels, as the runner
hands them over) of every linear dataset of a suite, one .npz per dataset, for checks against the
reference code in another environment (see `reference_linear.py`).

    python3 scripts/faithfulness/export_linear_tasks.py --suite offline --model bundled:efficientnet_lite0 \
        --out /tmp/linear-tasks
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmark.cache import FeatureCache
from benchmark.config import load_suite
from benchmark.encoders import load_encoder
from benchmark.pipeline.inputs import ExtractOptions, cached_features, feature_task, pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="offline")
    parser.add_argument("--model", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    suite, encoder = load_suite(args.suite), load_encoder(args.model)
    cache = FeatureCache()  # the CLI's own rule: $TRANSFERBENCH_CACHE, else ~/.cache/transferbench
    args.out.mkdir(parents=True, exist_ok=True)
    for name, options in suite.datasets.items():
        if "linear" not in options.get("protocols", suite.protocols):
            continue
        pairing = pair(encoder, args.model, suite, name, None)
        splits, _, _ = cached_features(cache, pairing, ExtractOptions())
        data, _ = feature_task(splits, pairing)
        np.savez(args.out / f"{name}.npz", train_x=data.train.x, train_y=data.train.y, val_x=data.val.x,
                 val_y=data.val.y, test_x=data.test.x, test_y=data.test.y, metric=str(data.metric),
                 task=str(data.task), num_classes=data.num_classes)
        print(f"{name}: train {data.train.x.shape}, val {data.val.x.shape}, test {data.test.x.shape}, {data.metric}")


if __name__ == "__main__":
    main()
