"""The reference's linear evaluation, transcribed from ssl-transfer's `linear.py` (LinearTester.validate
and .evaluate with its LogisticRegression wrapper), run on tasks written by `export_linear_tasks.py`.

Meant for a side environment holding the scikit-learn the reference ran (<= 1.3; `multi_class` was removed
in 1.8), e.g.
    python3 -m venv /tmp/skl13 && /tmp/skl13/bin/pip install scikit-learn==1.3.2 "numpy<2" scipy==1.11.4
    /tmp/skl13/bin/python scripts/faithfulness/reference_linear.py /tmp/linear-tasks/*.npz --permutation 0
or the 2020 stack the reference ran (its loss was numpy code; Python 3.8):
    python3.8 -m venv /tmp/skl24 && /tmp/skl24/bin/pip install scikit-learn==0.24.2 scipy==1.5.4 numpy==1.19.5
Prints one JSON line per task: the chosen C and the test score. `--permutation SEED` first shuffles the
train rows and the train+val rows as `reference_under_permutation` in benchmark/protocols/_linear_sweep.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import confusion_matrix, precision_recall_curve


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    return sum((np.max(precision[recall >= t]) if np.sum(recall >= t) else 0.0) / 11.0 for t in np.linspace(0, 1, 11))


def fit_and_score(clf: LogisticRegression, metric: str, x: np.ndarray, y: np.ndarray, xt: np.ndarray,
                  yt: np.ndarray) -> float:
    if metric == "top1":
        clf.fit(x, y)
        return 100.0 * clf.score(xt, yt)
    if metric == "mean_per_class":
        clf.fit(x, y)
        cm = confusion_matrix(yt, clf.predict(xt))
        return 100.0 * (cm.diagonal() / cm.sum(axis=1)).mean()
    aps = []
    for c in range(y.shape[1]):
        clf.fit(x, y[:, c])
        precision, recall, _ = precision_recall_curve(yt[:, c], clf.decision_function(xt))
        aps.append(voc_ap(recall, precision))
    return 100.0 * np.mean(aps)


def reference_linear(task: dict, permutation: int | None, wd_num: int) -> dict:
    x, y, xv, yv = task["train_x"], task["train_y"], task["val_x"], task["val_y"]
    xtv, ytv = np.concatenate([x, xv]), np.concatenate([y, yv])
    if permutation is not None:
        rng = np.random.default_rng(permutation)
        order = rng.permutation(len(y))
        x, y = x[order], y[order]
        order = rng.permutation(len(ytv))
        xtv, ytv = xtv[order], ytv[order]
    metric = str(task["metric"])
    clf = LogisticRegression(solver="lbfgs", multi_class="multinomial", warm_start=True)
    # torch.logspace(-6, 5, wd_num) in float32, C = 1 / wd.item()
    best_score, best_c = 0.0, None
    for wd in np.logspace(-6, 5, wd_num).astype(np.float32):
        C = 1.0 / float(wd)
        clf.set_params(C=C)
        score = fit_and_score(clf, metric, x, y, xv, yv)
        if score > best_score:
            best_score, best_c = score, C
    clf.set_params(C=best_c)
    return {"C": best_c, "score": fit_and_score(clf, metric, xtv, ytv, task["test_x"], task["test_y"])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("tasks", nargs="+")
    parser.add_argument("--permutation", type=int, action="append", default=[])
    parser.add_argument("--num-wd", type=int, default=45)
    args = parser.parse_args()
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.simplefilter("ignore", FutureWarning)
    for path in args.tasks:
        task = dict(np.load(path))
        for permutation in args.permutation or [None]:
            result = reference_linear(task, permutation, args.num_wd)
            print(json.dumps({"task": path, "permutation": permutation, "sklearn": sklearn.__version__, **result}))
            sys.stdout.flush()


if __name__ == "__main__":
    main()
