"""The results store: one SQLite row per (encoder, dataset, protocol) result, written as soon as the
cell finishes, with everything needed to trust or reproduce it."""

from __future__ import annotations

import functools
import json
import logging
import sqlite3
import subprocess
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from benchmark import __version__
from benchmark.errors import UserError

log = logging.getLogger(__name__)
DEFAULT_RESULTS = Path("results/runs.sqlite")
JSON_COLUMNS = ("encoder_identity", "encoder_facts", "environment", "params", "chosen", "details", "per_example",
                "preprocessing", "split_sizes", "cache_keys", "key_fields")
CELL = ["encoder", "dataset", "protocol"]
STORE_SCHEMA = 2  # PRAGMA user_version of a store this code writes (1: the stores before it, user_version 0)
OWN_TABLES = {"results", "skips", "sqlite_sequence"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    suite TEXT NOT NULL, encoder TEXT NOT NULL, encoder_spec TEXT NOT NULL, encoder_identity TEXT NOT NULL,
    random_init INTEGER NOT NULL, dataset TEXT NOT NULL, protocol TEXT NOT NULL, protocol_version TEXT NOT NULL,
    metric TEXT NOT NULL, value REAL NOT NULL, params TEXT NOT NULL, chosen TEXT NOT NULL, details TEXT NOT NULL,
    preprocessing TEXT NOT NULL, split_sizes TEXT NOT NULL, cache_keys TEXT NOT NULL, seed INTEGER,
    package_version TEXT NOT NULL, code_revision TEXT NOT NULL, seconds REAL NOT NULL, cell_key TEXT NOT NULL DEFAULT '',
    per_example TEXT NOT NULL DEFAULT '{}', precision TEXT NOT NULL DEFAULT 'fp32', device TEXT NOT NULL DEFAULT 'cpu',
    protocol_kind TEXT NOT NULL DEFAULT '', encoder_facts TEXT NOT NULL DEFAULT '{}',
    environment TEXT NOT NULL DEFAULT '{}', study_key TEXT NOT NULL DEFAULT '', key_fields TEXT NOT NULL DEFAULT '{}'
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
# TODO(0.3): remove, with migrate_v1, once no store of version 1 (PRAGMA user_version 0) is in use. A version-1
# row keeps its values (tables still show it) but is never reused (its cell_key predates identity.KEY_SCHEMA 2)
# and never combined with another seed (its study is its own).
V1_COLUMNS = ("created_at", "suite", "encoder", "encoder_spec", "encoder_identity", "random_init", "dataset",
              "protocol", "protocol_version", "metric", "value", "params", "chosen", "details", "preprocessing",
              "split_sizes", "cache_keys", "seed", "package_version", "code_revision", "seconds")


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
    seed: int | None  # the run seed the value depends on; None: it depends on none
    seconds: float
    cell_key: str  # digest of everything that determines the value (benchmark.identity.CellKey)
    per_example: dict[str, Any] = field(default_factory=dict)  # benchmark.outputs.PerExample.to_json()
    precision: str = "fp32"  # of feature extraction
    device: str = "cpu"  # where the protocol ran
    protocol_kind: str = ""  # the registered protocol behind the `protocol` column (TODO(0.3): "" only in v1 rows)
    encoder_facts: dict[str, Any] = field(default_factory=dict)  # published facts on the weights (ImageNet top-1)
    package_version: str = __version__
    code_revision: str = field(default_factory=lambda: code_revision())
    environment: dict[str, str] = field(default_factory=lambda: environment())  # library versions behind the number
    study_key: str = ""  # the cell key without the seed: rows of one study at several seeds share it
    key_fields: dict[str, Any] = field(default_factory=dict)  # the cell key's fields, readable (`plan --why`)
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


def check_ours(path: Path, tables: set[str], version: int, columns: set[str]) -> None:
    """Refuse, before writing anything, a file that is not an (empty, or this or an older) store of ours."""
    foreign = sorted(tables - OWN_TABLES)
    missing = [c for c in V1_COLUMNS if c not in columns] if "results" in tables else []
    reasons = [f"it holds other tables ({', '.join(foreign[:3])})" if foreign else "",
               f"its results table lacks {', '.join(missing[:3])}" if missing else "",
               f"it was written by a newer transferbench (store version {version})" if version > STORE_SCHEMA else ""]
    why = next((reason for reason in reasons if reason), "")
    if why:
        raise UserError(f"{path} is not a transferbench results store this version can use: {why}; nothing was "
                        f"written to it. Pass another --results file")


def migrate_v1(db: sqlite3.Connection, columns: set[str]) -> None:
    """Copy a version-1 store's rows into the current table (seed nullable, study_key, key_fields)."""
    db.execute("ALTER TABLE results RENAME TO results_v1")
    db.execute("DROP INDEX IF EXISTS results_cell")
    db.execute("DROP INDEX IF EXISTS results_cell_key")
    db.executescript(SCHEMA)
    kept = [c for c in (*V1_COLUMNS, "cell_key", "per_example", "precision", "device", "protocol_kind",
                        "encoder_facts", "environment") if c in columns]
    db.execute(f"INSERT INTO results (id, {', '.join(kept)}, study_key) "
               f"SELECT id, {', '.join(kept)}, 'v1:' || id FROM results_v1")
    db.execute("DROP TABLE results_v1")


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
        """Create or (from version 1) migrate the store, after checking that the file is ours or empty:
        another application's SQLite file is refused before anything is written to it."""
        with closing(self._connect()) as db:
            tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = db.execute("PRAGMA user_version").fetchone()[0]
            columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
            check_ours(self.path, tables, version, columns)
            if version == STORE_SCHEMA and {"results", "skips"} <= tables:
                return  # current: opening a store writes nothing
            with db:
                if "results" in tables and version < STORE_SCHEMA:
                    migrate_v1(db, columns)
                db.executescript(SCHEMA + SKIPS_SCHEMA + INDEXES)
                db.execute(f"PRAGMA user_version = {STORE_SCHEMA}")

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
        return self._one("SELECT * FROM results WHERE cell_key = ? ORDER BY id DESC LIMIT 1", (cell_key,))

    def _one(self, query: str, args: tuple[Any, ...]) -> ResultRow | None:
        with closing(self._connect()) as db:
            db.row_factory = sqlite3.Row
            found = db.execute(query, args).fetchone()
        if found is None:
            return None
        values = {k: found[k] for k in found.keys() if k != "id"}  # sqlite3.Row has no __iter__ over keys
        try:
            for column in JSON_COLUMNS:
                values[column] = json.loads(values[column])
        except (TypeError, ValueError):
            log.warning("results row %s of %s is damaged (unreadable JSON); it is not reused", found["id"], self.path)
            return None
        values["random_init"] = bool(values["random_init"])
        return ResultRow(**values)

    def newest(self, encoder: str, dataset: str, protocol: str) -> ResultRow | None:
        """The newest stored row of an (encoder, dataset, protocol column), whatever its key."""
        return self._one("SELECT * FROM results WHERE encoder = ? AND dataset = ? AND protocol = ? "
                         "ORDER BY id DESC LIMIT 1", (encoder, dataset, protocol))

    def frame(self) -> pd.DataFrame:
        """All rows, JSON columns decoded."""
        with closing(self._connect()) as db:
            frame = pd.read_sql_query("SELECT * FROM results ORDER BY id", db)
        frame = readable_rows(frame, self.path)
        frame["seed"] = pd.Series([None if pd.isna(s) else int(s) for s in frame["seed"]], index=frame.index,
                                  dtype=object)  # None: the row depends on no seed
        return frame

    def latest(self, suite: str | None = None) -> pd.DataFrame:
        """The newest result of every (encoder, dataset, protocol) cell, its seeds combined (`over_seeds`)."""
        frame = self.frame()
        return over_seeds(frame[frame["suite"] == suite] if suite else frame)


def readable_rows(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    """The rows with their JSON columns decoded; a damaged row is left out and reported, never fatal."""
    decoded = {column: frame[column].map(json_or_damaged) for column in JSON_COLUMNS}
    damaged = frame.index[pd.concat([values.map(lambda v: v is DAMAGED) for values in decoded.values()],
                                    axis=1).any(axis=1)].tolist() if len(frame) else []
    if damaged:
        log.warning("left out %d damaged results row(s) of %s (unreadable JSON; ids %s); rerun their cells to "
                    "replace them", len(damaged), path, ", ".join(str(frame.loc[i, "id"]) for i in damaged[:5]))
    frame = frame.drop(index=damaged)
    for column in JSON_COLUMNS:
        frame[column] = decoded[column].drop(index=damaged)
    return frame


DAMAGED = object()  # a JSON cell that does not decode


def json_or_damaged(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return DAMAGED


def latest_per_cell(rows: pd.DataFrame) -> pd.DataFrame:
    """The newest row of every (encoder, dataset, protocol) cell, each cell where the store first saw it:
    recomputing a cell replaces its value without moving its column or row in the report."""
    first_seen = rows.groupby(CELL, sort=False, dropna=False).ngroup()
    newest = rows.drop_duplicates(CELL, keep="last")
    return newest.iloc[first_seen.loc[newest.index].argsort(kind="stable")]


def stability_runs(details: Any, value: float) -> list[float] | None:
    """The stored run's value and its `stability: N` reruns' (`benchmark.pipeline.stability`); None without."""
    reruns = details.get("stability") if isinstance(details, dict) else None
    return [float(value), *reruns["values"]] if reruns else None


def with_rerun_means(rows: pd.DataFrame) -> pd.DataFrame:
    """`value` of a row with stability reruns becomes the mean over its run and its reruns, and
    `stability_runs` keeps them all: another CPU's value is one more draw of the same kind, so the mean
    is what a table can print the same on more machines."""
    runs = [stability_runs(d, v) for d, v in zip(rows["details"], rows["value"])] if "details" in rows else []
    if not any(runs):
        return rows.assign(stability_runs=pd.Series([None] * len(rows), index=rows.index, dtype=object))
    means = [float(np.mean(r)) if r else v for r, v in zip(runs, rows["value"])]
    return rows.assign(value=means, stability_runs=pd.Series(runs, index=rows.index, dtype=object))


def over_seeds(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per cell: its newest result, and the newest result of every other seed of the same study
    (the same `study_key`: identity.CellKey without the seed). `value` is their mean, `seed_std` their
    standard deviation (NaN with one seed) and `seed_values` {seed: value}; the other columns come from the lowest seed's row, so confidence
    intervals and paired tests describe that one run (within-run uncertainty). A seed's value with
    stability reruns is already the mean over its runs (`with_rerun_means`)."""
    if rows.empty:
        return rows.assign(seed_std=pd.Series(dtype=float), seed_values=pd.Series(dtype=object),
                           stability_runs=pd.Series(dtype=object))
    rows = with_rerun_means(rows)
    newest = latest_per_cell(rows)
    same_study = rows.reset_index(drop=True).merge(newest[CELL + ["study_key"]], on=CELL + ["study_key"])
    per_seed = same_study.drop_duplicates(CELL + ["seed"], keep="last").sort_values("seed", kind="stable")
    grouped = per_seed.groupby(CELL, sort=False)["value"]
    combined = per_seed.drop_duplicates(CELL).set_index(CELL)
    combined["value"] = grouped.mean()
    combined["seed_std"] = grouped.std(ddof=1)
    combined["seed_values"] = pd.Series({cell: {int(s): v for s, v in zip(group["seed"], group["value"]) if pd.notna(s)}
                                         for cell, group in per_seed.groupby(CELL, sort=False)})
    order = pd.MultiIndex.from_frame(newest[CELL])
    return combined.loc[order].reset_index()
