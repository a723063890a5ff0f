"""Checkpoint series: `evaluate --series` over a run's checkpoints, reused when evaluated before, and
`leaderboard --series` drawing each cell against the step with the best checkpoint's paired test."""

from __future__ import annotations

import pandas as pd
import pytest
import timm
import torch

import cli
from benchmark.backbones import timm_preprocessing
from benchmark.encoders.checkpoint import save_checkpoint
from benchmark.errors import UserError
from benchmark.series import expand
from tests.conftest import write_suite


def write_run(folder, steps, **metadata):
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for step in steps:
        torch.manual_seed(step)
        model = timm.create_model("resnet18", num_classes=0)
        name = f"ckpt_{step}.pt" if not metadata else "final.pt"
        paths.append(save_checkpoint(folder / name, arch="resnet18", state_dict=model.state_dict(),
                                     preprocessing=timm_preprocessing(model), **metadata))
    return paths


def test_a_series_is_expanded_in_step_order_named_by_its_folder(tmp_path):
    write_run(tmp_path / "exp1", [10, 2, 1])
    members = expand(f"checkpoint:{tmp_path}/exp1/ckpt_*.pt")
    assert [m.label for m in members] == ["exp1@step1", "exp1@step2", "exp1@step10"]  # by number, not by name
    assert [m.label for m in expand(f"checkpoint:{tmp_path}/exp1", "mine")][0] == "mine@step1"  # a folder works too
    write_run(tmp_path / "exp2", [0], step=700)
    assert expand(f"checkpoint:{tmp_path}/exp2/final.pt")[0].step == 700  # no number in the name: the metadata's
    with pytest.raises(UserError, match="no checkpoint matches"):
        expand(f"checkpoint:{tmp_path}/nothing_*.pt")


def test_evaluate_series_then_leaderboard_series(tmp_path, capsys):
    write_run(tmp_path / "exp1", [1, 2, 3])
    suite = write_suite(tmp_path / "s.yaml", {"textures": {}}, {"knn": {}}, {"input_size": 32})
    store = ["--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "cache")]
    argv = ["evaluate", "--suite", str(suite), "--series", f"checkpoint:{tmp_path}/exp1/ckpt_*.pt", *store]
    assert cli.main(argv) == 0
    assert "3 results" in capsys.readouterr().out
    assert cli.main(argv) == 0  # every checkpoint evaluated before: reused
    assert "(0 computed, 3 reused" in capsys.readouterr().out
    out_dir = tmp_path / "board"
    assert cli.main(["leaderboard", "--series", "--suite", "tiny", "--results", str(tmp_path / "r.sqlite"),
                     "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out_dir / "series.csv")
    assert list(table["step"]) == [1, 2, 3] and set(table["series"]) == {"exp1"} and table["ci95"].notna().all()
    best = table.loc[table["value"].idxmax()]
    assert f"exp1 knn·textures: best step {best['step']}" in printed and "p = " in printed
    assert (out_dir / "series.png").stat().st_size > 10_000


def test_leaderboard_series_without_a_series_is_one_message(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", {"digits": {}}, {"knn": {}}, {})
    store = ["--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "cache")]
    assert cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", *store]) == 0
    capsys.readouterr()
    assert cli.main(["leaderboard", "--series", "--suite", "tiny", "--results", str(tmp_path / "r.sqlite"),
                     "--out", str(tmp_path / "b")]) == 2
    assert "no checkpoint series in these results" in capsys.readouterr().err
