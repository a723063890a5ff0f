"""The results store: one SQLite row per (encoder, dataset, protocol) result, written as soon as the
cell finishes, with everything needed to trust or reproduce it."""

from __future__ import annotations

import functools
import json
import sqlite3
import subprocess
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from benchmark import __version__
from benchmark.errors import UserError

DEFAULT_RESULTS = Path("results/runs.sqlite")
JSON_COLUMNS = ("encoder_identity", "encoder_facts", "environment", "params", "chosen", "details", "per_example",
                "preprocessing", "split_sizes", "cache_keys")
CELL = ["encoder", "dataset", "protocol"]
# column -> value for rows of older stores
ADDED_COLUMNS = {"per_example": "{}", "precision": "fp32", "device": "cpu", "protocol_kind": "", "encoder_facts": "{}",
                 "environment": "{}"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    suite TEXT NOT NULL, encoder TEXT NOT NULL, encoder_spec TEXT NOT NULL, encoder_identity TEXT NOT NULL,
    random_init INTEGER NOT NULL, dataset TEXT NOT NULL, protocol TEXT NOT NULL, protocol_version TEXT NOT NULL,
    metric TEXT NOT NULL, value REAL NOT NULL, params TEXT NOT NULL, chosen TEXT NOT NULL, details TEXT NOT NULL,
    preprocessing TEXT NOT NULL, split_sizes TEXT NOT NULL, cache_keys TEXT NOT NULL, seed INTEGER NOT NULL,
    package_version TEXT NOT NULL, code_revision TEXT NOT NULL, seconds REAL NOT NULL, cell_key TEXT NOT NULL,
    per_example TEXT NOT NULL DEFAULT '{}', precision TEXT NOT NULL DEFAULT 'fp32', device TEXT NOT NULL DEFAULT 'cpu',
    protocol_kind TEXT NOT NULL DEFAULT '',
    encoder_facts TEXT NOT NULL DEFAULT '{}',
    environment TEXT NOT NULL DEFAULT '{}'
);
"""
SKIPS_SCHEMA = """
CREATE TABLE IF NOT EXISTS skips (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, suite TEXT NOT NULL, encoder TEXT NOT NULL,
    dataset TEXT NOT NULL, protocol TEXT NOT NULL, reason TEXT NOT NULL, cell_key TEXT NOT NULL
);
"""
INDEXES = """
CREATE INDEX IF NOT EXISTS results_cell ON results (encoder, dataset, protocol);
CREATE INDEX IF NOT EXISTS results_cell_key ON results (cell_key);
"""


@dataclass
class ResultRow:
    suite: str
    encoder: str
    encoder_spec: str
    encoder_identity: dict[str, Any]
    random_init: bool
    dataset: str
    protocol: str
    protocol_version: str
    metric: str
    value: float
    params: dict[str, Any]
    chosen: dict[str, Any]
    details: dict[str, Any]
    preprocessing: dict[str, Any]
    split_sizes: dict[str, int]
    cache_keys: dict[str, str]
    seed: int
    seconds: float
    cell_key: str  # hash of everything that determines the value (see planner.cell_key)
    per_example: dict[str, Any] = field(default_factory=dict)  # benchmark.outputs.PerExample.to_json()
    precision: str = "fp32"  # of feature extraction
    device: str = "cpu"  # where the protocol ran
    protocol_kind: str = ""  # the registered protocol behind the `protocol` column ("" in older rows: the same)
    encoder_facts: dict[str, Any] = field(default_factory=dict)  # published facts on the weights (ImageNet top-1)
    package_version: str = __version__
    code_revision: str = field(default_factory=lambda: code_revision())
    environment: dict[str, str] = field(default_factory=lambda: environment())  # library versions behind the number
    created_at: float = field(default_factory=time.time)


NUMERIC_LIBRARIES = ("numpy", "scipy", "scikit-learn", "torch", "faiss-cpu", "timm")


@functools.cache
def environment() -> dict[str, str]:
    """The Python and numeric library versions of this process (the installed scikit-learn and torch
    change what an unconverged fit returns), read once."""
    import platform
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in NUMERIC_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


@functools.cache
def code_revision() -> str:
    """The git commit of the code that produced a result ("+dirty" with local edits), if known; read
    once per process. An installed wheel has no git checkout: "unknown" (the package version remains)."""
    repo = Path(__file__).resolve().parents[2]
    if not (repo / ".git").exists():  # installed as a package: no checkout of ours to ask
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short=12", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head + ("+dirty" if dirty else "")) if head else "unknown"


class ResultsStore:
    def __init__(self, path: str | Path = DEFAULT_RESULTS):
        self.path = Path(path)
        if self.path.is_dir():
            raise UserError(f"--results {self.path} is a directory; name a file, e.g. {self.path / 'runs.sqlite'}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._create_schema()
        except sqlite3.DatabaseError as err:
            raise UserError(f"{self.path} is not a transferbench results store ({err}); pass another --results "
                            f"file") from None

    def _create_schema(self) -> None:
        with closing(self._connect()) as db, db:
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
            if "cell_key" not in columns:  # stores written before results were resumable
                db.execute("ALTER TABLE results ADD COLUMN cell_key TEXT NOT NULL DEFAULT ''")
            for column, default in ADDED_COLUMNS.items():  # stores written by earlier versions
                if column not in columns:
                    db.execute(f"ALTER TABLE results ADD COLUMN {column} TEXT NOT NULL DEFAULT '{default}'")
            db.executescript(SKIPS_SCHEMA + INDEXES)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def add(self, row: ResultRow) -> None:
        values = asdict(row)
        for column in JSON_COLUMNS:
            values[column] = json.dumps(values[column], sort_keys=True, default=str)
        values["random_init"] = int(values["random_init"])
        columns = ", ".join(values)
        with closing(self._connect()) as db, db:  # one transaction per row
            db.execute(f"INSERT INTO results ({columns}) VALUES ({', '.join('?' * len(values))})",
                       tuple(values.values()))

    def add_skip(self, suite: str, encoder: str, dataset: str, protocol: str, reason: str, cell_key: str) -> None:
        """Record a cell that cannot run (e.g. a ResNet has no text tower), with the reason shown in tables."""
        with closing(self._connect()) as db, db:
            db.execute("INSERT INTO skips (created_at, suite, encoder, dataset, protocol, reason, cell_key) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (time.time(), suite, encoder, dataset, protocol, reason, cell_key))

    def is_skipped(self, cell_key: str) -> bool:
        with closing(self._connect()) as db:
            return db.execute("SELECT 1 FROM skips WHERE cell_key = ? LIMIT 1", (cell_key,)).fetchone() is not None

    def skips(self, suite: str | None = None) -> pd.DataFrame:
        with closing(self._connect()) as db:
            frame = pd.read_sql_query("SELECT * FROM skips ORDER BY id", db)
        return latest_per_cell(frame[frame["suite"] == suite] if suite else frame)

    def find(self, cell_key: str) -> ResultRow | None:
        """The newest stored result of a cell, if any (what makes a re-run resume)."""
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            found = db.execute("SELECT * FROM results WHERE cell_key = ? ORDER BY id DESC LIMIT 1",
                               (cell_key,)).fetchone()
        if found is None:
            return None
        values = {k: found[k] for k in found.keys() if k != "id"}  # sqlite3.Row has no __iter__ over keys
        for column in JSON_COLUMNS:
            values[column] = json.loads(values[column])
        values["random_init"] = bool(values["random_init"])
        return ResultRow(**values)

    def frame(self) -> pd.DataFrame:
        """All rows, JSON columns decoded."""
        with closing(self._connect()) as db:
            frame = pd.read_sql_query("SELECT * FROM results ORDER BY id", db)
        for column in JSON_COLUMNS:
            frame[column] = frame[column].map(json.loads)
        return frame

    def latest(self, suite: str | None = None) -> pd.DataFrame:
        """The newest result of every (encoder, dataset, protocol) cell, its seeds combined (`over_seeds`)."""
        frame = self.frame()
        return over_seeds(frame[frame["suite"] == suite] if suite else frame)


def latest_per_cell(rows: pd.DataFrame) -> pd.DataFrame:
    """The newest row of every (encoder, dataset, protocol) cell (rows in the order they were written)."""
    return rows.drop_duplicates(CELL, keep="last")


SEED_PARAMS = ("seed", "val_split")  # parameters that differ between the seeds of one run


def run_identity(row: pd.Series) -> str:
    """What rows of one cell share when they are the same study at different seeds: the protocol, its
    version, its parameters other than the seed, and the features it read."""
    params = {k: v for k, v in row["params"].items() if k not in SEED_PARAMS}
    return json.dumps([row.get("protocol_kind", ""), row["protocol_version"], params, row["cache_keys"]],
                      sort_keys=True, default=str)


def over_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its newest result, and the newest result of every other seed of the same study
    (`run_identity`). `value` is their mean, `seed_std` their standard deviation (NaN with one seed) and
    `seed_values` {seed: value}; the other columns come from the lowest seed's row, so confidence
    intervals and paired tests describe that one run (within-run uncertainty)."""
    if rows.empty:
        return rows.assign(seed_std=pd.Series(dtype=float), seed_values=pd.Series(dtype=object))
    rows = rows.assign(run=rows.apply(run_identity, axis=1))
    newest = latest_per_cell(rows)
    same_study = rows.reset_index(drop=True).merge(newest[CELL + ["run"]], on=CELL + ["run"])
    per_seed = same_study.drop_duplicates(CELL + ["seed"], keep="last").sort_values("seed", kind="stable")
    grouped = per_seed.groupby(CELL, sort=False)["value"]
    combined = per_seed.drop_duplicates(CELL).set_index(CELL)
    combined["value"] = grouped.mean()
    combined["seed_std"] = grouped.std(ddof=1)
    combined["seed_values"] = pd.Series({cell: dict(zip(group["seed"].astype(int), group["value"]))
                                         for cell, group in per_seed.groupby(CELL, sort=False)})
    order = pd.MultiIndex.from_frame(newest[CELL])
    return combined.loc[order].reset_index().drop(columns="run")
