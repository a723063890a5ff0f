"""Download one file so that an interruption costs nothing: bytes go to `<file>.part`, a dropped
connection resumes from there with an HTTP Range request (in this run, and in the next one), and only a
file whose checksums match is renamed to its final name. torchvision's `download_url` restarts from zero
and cannot resume, which at SUN397's 39 GB matters; its checksum helper is md5-only, so both digests are
computed here in one pass.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path

from benchmark.errors import UserError

CHUNK = 1 << 20
RETRIES = 3  # resumed attempts after a dropped connection, within one run
TIMEOUT_S = 60
USER_AGENT = "transferbench-data-fetch"


class ChecksumError(UserError):
    """A file is not the official one."""


class DiskFullError(UserError):
    pass


class Unreachable(UserError):
    """No connection to the host at all (no network, a wrong host name, a firewall)."""


def digests(path: Path, algorithms: list[str]) -> dict[str, str]:
    hashers = {name: hashlib.new(name) for name in algorithms}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for hasher in hashers.values():
                hasher.update(chunk)
    return {name: hasher.hexdigest() for name, hasher in hashers.items()}


def mismatches(path: Path, expected: dict[str, str]) -> list[str]:
    """'md5 abc (expected def)' for each checksum that differs; [] when all match (or none is known)."""
    found = digests(path, list(expected))
    return [f"{name} {found[name]} (expected {value})" for name, value in expected.items() if found[name] != value]


def verify(path: Path, expected: dict[str, str], delete: bool) -> None:
    wrong = mismatches(path, expected)
    if not wrong:
        return
    if delete:
        path.unlink()
    what = "deleted it" if delete else "left it there: replace it with the official file"
    raise ChecksumError(f"{path.name} is not the official file: {'; '.join(wrong)}. I {what}; nothing was extracted.")


def download(url: str, dest: Path, expected: dict[str, str], size: int | None = None, progress: bool = True) -> Path:
    """`url` -> `dest`, resumed from `dest.part`, verified against `expected`; a wrong file is deleted."""
    part = dest.with_name(dest.name + ".part")
    check_free_space(dest.parent, (size or 0) - (part.stat().st_size if part.exists() else 0), dest.name)
    for attempt in range(RETRIES + 1):
        try:
            fetch_to(url, part, size, progress)
            break
        except (ConnectionError, TimeoutError, http.client.HTTPException) as err:
            if attempt == RETRIES:
                raise UserError(f"the connection for {url} dropped {RETRIES + 1} times ({err}); {part} keeps the "
                                f"{part.stat().st_size:,} bytes received: run the same command again to resume") from None
    os.replace(part, dest)
    verify(dest, expected, delete=True)
    return dest


def fetch_to(url: str, part: Path, size: int | None, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, **({"Range": f"bytes={have}-"} if have else {})}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part file is whole
            return
        raise UserError(f"{url} answered HTTP {err.code} ({err.reason}); check the URL or use --mirror BASE") from None
    except urllib.error.URLError as err:
        raise Unreachable(f"could not reach {url}: {err.reason}") from None
    with response:
        resumed = have and response.status == 206
        length = int(response.headers.get("Content-Length") or 0)
        total = (have if resumed else 0) + length or size
        write_body(response, part, append=bool(resumed), total=total, progress=progress)


def write_body(response, part: Path, append: bool, total: int | None, progress: bool) -> None:
    from tqdm import tqdm

    start = part.stat().st_size if append else 0
    with open(part, "ab" if append else "wb") as out, \
            tqdm(total=total, initial=start, unit="B", unit_scale=True, desc=part.name[:-5], disable=not progress,
                 leave=False) as bar:
        while chunk := response.read(CHUNK):
            write_chunk(out, chunk, part)
            bar.update(len(chunk))
    if total is not None and part.stat().st_size < total:
        raise IncompleteRead(f"{part.stat().st_size:,} of {total:,} bytes")


def write_chunk(out, chunk: bytes, part: Path) -> None:
    try:
        out.write(chunk)
    except OSError as err:
        if err.errno != errno.ENOSPC:
            raise
        out.close()
        part.unlink(missing_ok=True)
        raise DiskFullError(f"the disk holding {part.parent} is full; I deleted the partial {part.name}. Free space "
                            f"there or pass --archives DIR on a larger disk, then run the same command again") from None


def check_free_space(folder: Path, needed: int, name: str) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DiskFullError(f"{name} needs {needed / 1e9:.2f} GB and {folder} has {free / 1e9:.2f} GB free; nothing "
                            f"was downloaded. Free space or pass --archives DIR on a larger disk")


class IncompleteRead(ConnectionError):
    """The server closed the connection before the whole body arrived."""
