"""Plugins from outside the package, and user mistakes that end in one message (exit 2), never a
traceback, before any work starts."""

import sqlite3
import textwrap

import numpy as np
import pytest

import cli
from benchmark.errors import UserError
from benchmark.protocols import PROTOCOLS

PLUGIN = '''
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from benchmark.data import DatasetSpec, ImageSplit, register_dataset
from benchmark.params import CheckedParams, Constraints, Interval
from benchmark.protocols import PROTOCOLS, Protocol, ProtocolResult


@PROTOCOLS.register
class NearestCentroid(Protocol):
    name = "nearest_centroid"
    version = "1"

    @dataclass(frozen=True)
    class Params(CheckedParams):
        shrink: float = 0.0
        constraints: ClassVar[Constraints] = {"shrink": Interval(float, 0, 1)}

    def evaluate(self, data):
        train = data.trainval
        centroids = np.stack([train.x[train.y == c].mean(0) for c in range(data.num_classes)])
        predicted = ((data.test.x[:, None] - centroids[None]) ** 2).sum(-1).argmin(1)
        return ProtocolResult(value=100.0 * float(np.mean(predicted == data.test.y)), metric=data.metric)


def stripes(split, root):
    rng = np.random.default_rng(0 if split == "train" else 1)
    labels = np.arange(40) % 2
    images = rng.integers(0, 60, size=(40, 8, 8, 3)).astype(np.uint8)
    images[labels == 1, :, :4] += 150  # class 1: a bright left half
    return ImageSplit(images, labels)


register_dataset(DatasetSpec(name="stripes", num_classes=2, load=stripes, description="plugin test data"))
'''


def write(path, text):
    path.write_text(textwrap.dedent(text))
    return path


def evaluate(tmp_path, suite, *extra):
    return cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--results", str(tmp_path / "r.sqlite"),
                     "--cache-dir", str(tmp_path / "cache"), *extra])


def test_a_plugin_file_adds_a_protocol_and_a_dataset_that_evaluate_runs(tmp_path, capsys):
    plugin = write(tmp_path / "my_plugin.py", PLUGIN)
    suite = write(tmp_path / "s.yaml", """
        name: plugged
        protocols: {nearest_centroid: {shrink: 0.5}, knn: {k: [5]}}
        datasets: {stripes: {}}
        """)
    assert evaluate(tmp_path, suite, "--plugin", str(plugin)) == 0
    with sqlite3.connect(tmp_path / "r.sqlite") as db:
        rows = dict(db.execute("SELECT protocol, value FROM results").fetchall())
    assert rows["nearest_centroid"] == 100.0 and set(rows) == {"nearest_centroid", "knn"}
    assert "### nearest_centroid" in (out := capsys.readouterr().out) and "| stripes " in out


def test_an_unknown_plugin_is_one_message(tmp_path, capsys):
    assert cli.main(["ls", "protocols", "--plugin", str(tmp_path / "missing.py")]) == 2
    assert "plugin" in capsys.readouterr().err


def test_the_registry_refuses_what_is_not_a_protocol():
    with pytest.raises(UserError, match="expected a subclass of benchmark.protocols.Protocol"):
        PROTOCOLS.add("not_a_protocol", object)


@pytest.mark.parametrize("protocols, datasets, message", [
    ("{linear: {solver: skl}}", "{digits: {}}", "parameter solver='skl' is invalid: it must be one of"),
    ("{knn: {tempreature: 0.1}}", "{digits: {}}", "Did you mean 'temperature'"),
    ("{knn: {}}", "{digitz: {}}", "Did you mean 'digits'"),
    ("{lienar: {}}", "{digits: {}}", "Did you mean 'linear'"),
])
def test_a_suite_mistake_stops_the_run_before_any_work(tmp_path, capsys, protocols, datasets, message):
    suite = write(tmp_path / "s.yaml", f"name: bad\nprotocols: {protocols}\ndatasets: {datasets}\n")
    assert evaluate(tmp_path, suite) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and not (tmp_path / "cache").exists()


def test_cli_mistakes_are_one_message(tmp_path, capsys):
    assert cli.main(["pretrain", "--method", "simclr", "--param", "tempreature=0.5", "--out", str(tmp_path / "m.pt")]) == 2
    assert "Did you mean 'temperature'" in capsys.readouterr().err
    assert cli.main(["pretrain", "--method", "simclr", "--epochs", "0", "--out", str(tmp_path / "m.pt")]) == 2
    assert "epochs=0 is invalid" in capsys.readouterr().err
    assert cli.main(["table", "--results", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err
    (tmp_path / "junk.sqlite").write_bytes(np.arange(300, dtype=np.int64).tobytes())
    assert cli.main(["table", "--results", str(tmp_path / "junk.sqlite")]) == 2
    assert "not a transferbench results store" in capsys.readouterr().err
