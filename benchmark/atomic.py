"""Writes that never leave a half-written file: write to a temporary sibling, then rename over."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | Path, write: Callable[[Path], None], directory: bool = False) -> Path:
    """Call `write(tmp)` on a temporary file (or directory) beside `path`, then rename it to `path`.

    A crash leaves the previous `path` (or none). When another writer renamed its own copy into place
    first (a directory `path` that exists), that copy is kept and ours is dropped."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    else:
        handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(handle)
        tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError:
        if not (directory and path.exists()):  # not a lost race with another writer of the same entry
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True) if directory else tmp.unlink(missing_ok=True)
    return path
