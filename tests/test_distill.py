"""`suite distill`: the cells that keep a table's ranking, on a table whose best subset is known, on the
published Ericsson table (the shipped lite suite is what the command writes), and on our own rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import cli
from benchmark.config import load_suite
from benchmark.errors import UserError
from benchmark.lite import stored_wide
from benchmark.results.distill import distill

ENCODERS = [f"e{i}" for i in range(8)]


def known_table() -> pd.DataFrame:
    """Columns A and B rank the encoders in their true order; each noise column comes with its mirror
    image, so together they add the same to every encoder's rank sum: the full ranking is A's."""
    truth = np.arange(8, 0, -1, dtype=float)  # e0 best
    noise = np.array([3, 7, 0, 5, 1, 6, 2, 4], dtype=float)
    columns = {("p", "A"): truth, ("p", "B"): truth + 0.5, ("p", "N1"): noise, ("p", "N1r"): -noise,
               ("q", "N2"): np.roll(noise, 3), ("q", "N2r"): -np.roll(noise, 3)}
    return pd.DataFrame(columns, index=ENCODERS)


COSTS = {"A": 10.0, "B": 1.0, "N1": 100.0, "N1r": 100.0, "N2": 100.0, "N2r": 100.0}


def cost(columns):
    return sum(COSTS[d] for _, d in columns)


def test_the_known_best_columns_are_chosen_cheapest_first():
    one = distill(known_table(), 1, cost)
    assert one.columns == (("p", "B"),) and one.tau == pytest.approx(1.0) and one.held_out_tau == pytest.approx(1.0)
    assert one.cost_fraction == pytest.approx(1 / 411)
    two = distill(known_table(), 2, cost)
    assert set(two.columns) == {("p", "A"), ("p", "B")} and two.tau == pytest.approx(1.0)


def test_a_noise_column_alone_ranks_worse_than_the_chosen_one():
    table = known_table()
    assert distill(table.drop(columns=[("p", "A"), ("p", "B")]), 1, cost).tau < 1.0


def test_lower_is_better_columns_are_ranked_ascending():
    table = known_table()
    table[("ece", "A")] = -table[("p", "A")]  # the same order, as an error: lower is better
    table = table.drop(columns=[("p", "A"), ("p", "B")])
    result = distill(table, 1, lambda columns: 1.0, lower_is_better={"ece"})
    assert result.columns == (("ece", "A"),) and result.tau == pytest.approx(1.0)


def test_bad_cell_counts_are_one_message():
    with pytest.raises(UserError, match="choose between 1 and 5"):
        distill(known_table(), 6, cost)
    with pytest.raises(UserError, match="at least 3 encoders"):
        distill(known_table().iloc[:2], 1, cost)


def test_the_shipped_lite_suite_is_what_distill_writes_from_the_published_table(tmp_path, capsys):
    out = tmp_path / "lite.yaml"
    assert cli.main(["suite", "distill", "--reference", "ericsson2021", "--cells", "8", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "8 cells, Kendall tau 1.000 (held out: mean 0.984, lowest 0.967)" in printed
    shipped = (Path(__file__).parents[1] / "suites" / "ericsson2021-lite.yaml").read_text()
    without_date = lambda text: text.split("\n", 1)[1]  # noqa: E731 - the first line dates the file
    assert without_date(out.read_text()) == without_date(shipped)
    lite, full = load_suite(str(out)), load_suite("ericsson2021")
    cells = [(t.protocol, d) for d in lite.datasets for t in lite.tasks(d)]
    assert len(cells) == 8
    for column, dataset in cells:  # each cell runs exactly as in the full suite
        ours = next(t for t in lite.tasks(dataset) if t.protocol == column)
        assert ours in full.tasks(dataset)


def test_the_shipped_offline_lite_suite_runs_each_cell_as_the_offline_suite_does():
    lite, full = load_suite("offline-lite"), load_suite("offline")
    cells = [(t.protocol, d) for d in lite.datasets for t in lite.tasks(d)]
    assert cells == [("linear", "fashion_mnist"), ("retrieval", "fashion_mnist"), ("linear", "lfw_faces"),
                     ("retrieval", "lfw_faces")]
    for column, dataset in cells:  # the same parameters and dataset options: the same cell keys, rows reused
        assert next(t for t in lite.tasks(dataset) if t.protocol == column) in full.tasks(dataset)
        assert {k: v for k, v in lite.datasets[dataset].items() if k != "protocols"} == {
            k: v for k, v in full.datasets[dataset].items() if k != "protocols"}
    assert lite.preprocessing == full.preprocessing


def test_our_rows_drop_label_free_diagnostics_and_keep_error_directions():
    rows = pd.DataFrame([{"encoder": e, "dataset": "digits", "protocol": p, "metric": m, "value": v}
                         for i, e in enumerate(ENCODERS)
                         for p, m, v in (("linear", "top1", 90 - i), ("calibration", "ece", i), ("rankme", "rankme", 5))])
    wide, lower = stored_wide(load_suite("offline"), rows)
    assert list(wide.columns) == [("linear", "digits"), ("calibration", "digits")] and lower == {"calibration"}
    with pytest.raises(UserError, match="run `evaluate --suite offline`"):
        stored_wide(load_suite("offline"), rows.iloc[:0])
