"""Unpack a verified archive into a folder, refusing any member that would land outside it.

torchvision's `extract_archive` calls `tarfile.extractall` with no filter, which writes a member named
`../x` or `/etc/x` where it says; here tars go through tarfile's "data" filter (absolute paths, `..`,
links leaving the folder and device files are refused) and zip names are checked before anything is
written. The caller extracts into a staging folder and renames it into place, so a refusal or a full
disk leaves no half dataset behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from benchmark.data.download import DiskFullError
from benchmark.errors import UserError


class UnsafeArchiveError(UserError):
    pass


def extract(archive: Path, into: Path, inner: str = "") -> None:
    """Extract `archive` (a .zip, else a tar in any compression) into `into`; with `inner`, extract that
    member archive of it instead (copied into `into` first, under a hidden name, and deleted afterwards)."""
    into.mkdir(parents=True, exist_ok=True)
    try:
        if inner:
            nested = pull_member(archive, inner, into)
            try:
                extract(nested, into)
            finally:
                nested.unlink(missing_ok=True)
        elif is_zip(archive):
            extract_zip(archive, into)
        else:
            extract_tar(archive, into)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise DiskFullError(f"the disk filled up while extracting {archive.name} into {into.parent}") from None
        raise


def is_zip(archive: Path) -> bool:
    """By the official file name; a renamed file by its content (a tar can end in bytes that look like a zip)."""
    return archive.suffix == ".zip" if archive.suffix in (".zip", ".gz", ".tgz", ".tar") else zipfile.is_zipfile(archive)


def extract_tar(archive: Path, into: Path) -> None:
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(into, members=named_inside(archive, tar), filter="data")
    except tarfile.FilterError as err:
        raise UnsafeArchiveError(f"{archive.name} has a member that would be written outside its folder "
                                 f"({err}); refused: this is not the official archive") from None
    except tarfile.ReadError as err:
        raise UserError(f"{archive.name} is not a readable tar or zip archive ({err})") from None


def named_inside(archive: Path, tar: tarfile.TarFile):
    """The tar's members, each name checked as it is read (the data filter alone would quietly strip the
    leading "/" of an absolute name)."""
    for member in tar:
        check_member_name(archive, member.name)
        yield member


def extract_zip(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        for name in zf.namelist():
            check_member_name(archive, name)
        zf.extractall(into)


def check_member_name(archive: Path, name: str) -> None:
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise UnsafeArchiveError(f"{archive.name} has a member named {name!r}, which would be written outside its "
                                 f"folder; refused: this is not the official archive")


def pull_member(archive: Path, member: str, folder: Path) -> Path:
    """Copy one member of a zip or tar to `folder/.inner-<its file name>` and return that path."""
    target = folder / f".inner-{PurePosixPath(member).name}"
    if is_zip(archive):
        with zipfile.ZipFile(archive) as zf:
            if member not in zf.namelist():
                raise UserError(f"{archive.name} has no file {member!r}; is it the official archive?")
            with zf.open(member) as src, open(target, "wb") as out:
                shutil.copyfileobj(src, out)
        return target
    with tarfile.open(archive) as tar:
        src = tar.extractfile(member) if member in tar.getnames() else None
        if src is None:
            raise UserError(f"{archive.name} has no file {member!r}; is it the official archive?")
        with src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    return target


def place(file: Path, into: Path) -> None:
    """Put a verified file into `into` as it is: a hard link when both are on one disk, else a copy."""
    into.mkdir(parents=True, exist_ok=True)
    target = into / file.name
    try:
        os.link(file, target)
    except OSError:
        shutil.copy2(file, target)
