"""How a dataset's official files become the layout its loader reads: each archive's file name, official
URL, published size and checksums, and what to do with it. A `Recipe` is data only; `benchmark.data.fetch`
carries it out (`transferbench data fetch`), and a dataset declares its own (`DatasetSpec.fetch`).

Checksums are the publisher's where it gives one, else torchvision's (md5, the value its own download code
checks) or TensorFlow Datasets' (sha256, from its `url_checksums`); `source` on an archive says which.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath

from benchmark.errors import UserError


ARCHIVES_FOLDER = "_archives"  # DATA_ROOT/_archives: where fetched and user-provided archives are kept


class Unpack(StrEnum):
    EXTRACT = "extract"  # a tar / tgz / zip, extracted into `into`
    PLACE = "place"  # kept as it is in `into` (a .mat sidecar; ImageNet's tars, which torchvision reads itself)


HEX = {"md5": re.compile(r"[0-9a-f]{32}"), "sha256": re.compile(r"[0-9a-f]{64}")}


@dataclass(frozen=True)
class Archive:
    """One official file. `file` is its name at the publisher, under `--mirror BASE/` and in `--archives`."""

    file: str
    url: str = ""  # "" when it cannot be fetched without an account or a licence click
    size: int | None = None  # bytes, as published (for --dry-run and the free-space check)
    md5: str = ""
    sha256: str = ""
    source: str = ""  # where the size and checksums come from
    into: str = "."  # the folder under the dataset root it goes to
    unpack: Unpack = Unpack.EXTRACT
    inner: str = ""  # a member archive to extract instead of the file itself (Caltech-101's zip holds a tar.gz)

    def __post_init__(self) -> None:
        object.__setattr__(self, "unpack", Unpack(self.unpack))
        if not self.file or "/" in self.file or self.file in (".", ".."):
            raise UserError(f"archive file name {self.file!r}: give a plain file name")
        for algorithm, pattern in HEX.items():
            value = getattr(self, algorithm)
            if value and not pattern.fullmatch(value):
                raise UserError(f"archive {self.file}: {algorithm} {value!r} is not a lower-case hex digest")
        if PurePosixPath(self.into).is_absolute() or ".." in PurePosixPath(self.into).parts:
            raise UserError(f"archive {self.file}: `into` must stay inside the dataset root, not {self.into!r}")

    @property
    def checksums(self) -> dict[str, str]:
        return {algorithm: getattr(self, algorithm) for algorithm in HEX if getattr(self, algorithm)}


@dataclass(frozen=True)
class Recipe:
    """The archives of one dataset. `manual` (why it is manual, and the steps) marks a dataset whose
    files need an account or a licence click: the tool then verifies and unpacks files a user put in
    `--archives`, and says where to get them when they are not there."""

    archives: tuple[Archive, ...]
    page: str = ""  # the dataset's download page
    manual: str = ""
    check_splits: bool = True  # load every split before moving the dataset into place
    note: str = ""  # shown by --dry-run (e.g. what torchvision does on first use)

    def __post_init__(self) -> None:
        if not self.archives:
            raise UserError("a fetch recipe needs at least one archive")
        names = [a.file for a in self.archives]
        if len(set(names)) != len(names):
            raise UserError(f"a fetch recipe names an archive twice: {names}")

    @property
    def automatic(self) -> bool:
        return not self.manual and all(a.url for a in self.archives)

    @property
    def total_size(self) -> int | None:
        sizes = [a.size for a in self.archives]
        return None if None in sizes else sum(sizes)  # type: ignore[arg-type]
