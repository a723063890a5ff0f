"""Successive halving against the full fine-tune grid, on small real tasks: does it choose the grid's
(lr, w), or one within the grid's own validation noise, at a fraction of the training steps?

Per task, the 20-pair Ericsson grid runs at `--steps` (train -> val), then halving runs over the same
pairs. A run is seeded, so halving's final rung (the full budget) repeats grid runs exactly; those are
reused, not retrained, and only the lower rungs train anew. "Within noise": the chosen pair's
full-budget validation score is within one binomial standard error, sqrt(p (1 - p) / n_val), of the
grid's best.

    python perf/halving.py [--quick] [--steps 60] [--rate 3]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmark.data import DATASETS, load_split  # noqa: E402
from benchmark.data.splits import holdout_split  # noqa: E402
from benchmark.encoders import load_encoder  # noqa: E402
from benchmark.metrics import score  # noqa: E402
from benchmark.pipeline.inputs import concat_images  # noqa: E402
from benchmark.protocols import Features, ModelTask, make_protocol  # noqa: E402
from benchmark.protocols._search import grid_search, one_by_one, successive_halving  # noqa: E402
from perf._machine import describe  # noqa: E402

TASKS = {"digits": {}, "lfw_faces": {}, "textures": {}, "mnist5k": {"train_subset": 600, "test_subset": 100},
         "fashion_mnist": {"train_subset": 600, "test_subset": 100}}


def model_task(name: str, options: dict, encoder, input_size: int) -> ModelTask:
    spec = DATASETS.get(name)
    train = load_split(spec, "train", None, options.get("train_subset"))
    test = load_split(spec, "test", None, None, options.get("test_subset"))
    pool = concat_images([train, test])
    tr, va = holdout_split(len(train))
    rows = lambda i: Features(np.arange(len(pool))[i], pool.labels[i])  # noqa: E731
    return ModelTask(rows(tr), rows(va), rows(np.arange(len(train), len(pool))), spec.num_classes,
                     "top1", images=pool, encoder=encoder,
                     preprocessing=encoder.preprocessing.with_overrides({"input_size": input_size}))


def compare(name: str, data: ModelTask, params: dict, rates: list[int]) -> list[dict]:
    protocol = make_protocol("finetune", params)
    pairs = [(lr, w) for lr in protocol.params.lrs for w in protocol.params.regularisation]
    memo: dict[tuple[int, int], float] = {}
    val_y = np.asarray(data.val.y)

    def val_score(candidate: int, steps: int) -> float:
        if (candidate, steps) not in memo:
            outputs = protocol.train_and_predict(data, data.train, data.val, *pairs[candidate], steps=steps)
            memo[candidate, steps] = score(data.metric, val_y, outputs)
        return memo[candidate, steps]

    grid = grid_search(len(pairs), protocol.params.steps, one_by_one(val_score))
    scores = grid.rungs[0].scores
    best = scores[grid.best]
    noise = 100 * math.sqrt(best / 100 * (1 - best / 100) / len(val_y))
    results = []
    for rate in rates:
        halving = successive_halving(len(pairs), protocol.params.steps, rate, one_by_one(val_score))
        chosen = scores[halving.best]
        results.append({"task": name, "rate": rate, "grid": pairs[grid.best], "halving": pairs[halving.best],
                        "grid_val": best, "halving_val": chosen, "noise": noise,
                        "ok": halving.best == grid.best or best - chosen <= noise,
                        "ratio": halving.total_steps() / grid.total_steps()})
    return results


def pair(lr_w: tuple[float, float]) -> str:
    return f"({lr_w[0]:g}, {lr_w[1]:g})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 task, 4 pairs, 9 steps: a smoke run")
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--rates", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--model", default="bundled:efficientnet_lite0")
    parser.add_argument("--input-size", type=int, default=32)
    args = parser.parse_args()
    params = {"steps": 9 if args.quick else args.steps, "batch_size": 32}
    if args.quick:
        params |= {"lrs": [0.1, 0.01], "regularisation": [0.0, 1e-4]}
    encoder = load_encoder(args.model)
    print(describe())
    print(f"{args.model} at {args.input_size} px, {params['steps']} steps of batch 32")
    print(f"{'task':14s} {'rate':>4s} {'grid (lr, w)':>20s} {'val':>6s} {'halving (lr, w)':>20s} {'val':>6s} "
          f"{'noise':>6s} {'ok':>3s} {'steps':>6s}")
    results = []
    for name, options in list(TASKS.items())[:1 if args.quick else None]:
        start = time.perf_counter()
        for r in compare(name, model_task(name, options, encoder, args.input_size), params, args.rates):
            results.append(r)
            print(f"{name:14s} {r['rate']:4d} {pair(r['grid']):>20s} {r['grid_val']:6.1f} {pair(r['halving']):>20s} "
                  f"{r['halving_val']:6.1f} {r['noise']:6.1f} {'yes' if r['ok'] else 'no':>3s} {r['ratio']:6.1%}")
        print(f"{'':14s} ({time.perf_counter() - start:.0f} s)", flush=True)
    for rate in args.rates:
        mine = [r for r in results if r["rate"] == rate]
        print(f"rate {rate}: halving chose the grid's pair or one within its validation noise on "
              f"{sum(r['ok'] for r in mine)} of {len(mine)} tasks, at {np.mean([r['ratio'] for r in mine]):.1%} of the "
              f"grid's training steps")


if __name__ == "__main__":
    main()
