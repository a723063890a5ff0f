"""`data fetch`: a suite's datasets from their official archives to the layouts their loaders read.

For each dataset with a recipe (`DatasetSpec.fetch`): every archive is taken from the archives folder
(`--archives`, default DATA_ROOT/_archives) when it is there, verified but never deleted, else downloaded
there from its official URL or `--mirror BASE/<file name>` (resumable, verified, deleted when wrong). The
archives are unpacked into DATA_ROOT/.<name>.partial, every split is loaded from it, and only then is it
renamed to DATA_ROOT/<name>: an interrupted or refused fetch leaves a complete dataset or none. A dataset
that needs an account or a licence click gets its steps instead, until its files are in the archives folder.
"""

from __future__ import annotations

import errno
import os
import shutil
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from benchmark.data import dataset_spec
from benchmark.data.base import DATA_ROOT_ENV, DatasetSpec
from benchmark.data.check import DataReport, check_dataset, size_problems, split_counts
from benchmark.data.download import DiskFullError, Unreachable, download, mismatches, verify
from benchmark.data.label_fractions import OFFICIAL_LISTS
from benchmark.data.recipe import ARCHIVES_FOLDER, Archive, Recipe, Unpack
from benchmark.data.unpack import extract, place
from benchmark.errors import UserError



class Outcome(StrEnum):
    FETCHED = "fetched"
    PRESENT = "present"  # its root exists already: left as it is
    MANUAL = "manual"  # waiting for files only a user can download
    NO_RECIPE = "no recipe"
    FAILED = "failed"


@dataclass(frozen=True)
class FetchOptions:
    data_root: Path
    archives: Path | None = None
    mirror: str = ""  # a base URL, or a folder, holding the archives under their official file names
    progress: bool = True

    @property
    def archives_dir(self) -> Path:
        return self.archives or self.data_root / ARCHIVES_FOLDER

    @property
    def mirror_folder(self) -> Path | None:
        return Path(self.mirror).expanduser().resolve() if self.mirror and "://" not in self.mirror else None

    def url(self, archive: Archive) -> str:
        if not self.mirror:
            return archive.url
        if self.mirror_folder is not None:
            return (self.mirror_folder / archive.file).as_uri()
        return f"{self.mirror.rstrip('/')}/{archive.file}"


@dataclass(frozen=True)
class FetchResult:
    dataset: str
    outcome: Outcome
    message: str

    def line(self) -> str:
        return f"{self.dataset:14s} {self.outcome.upper()}: {self.message}"


def data_root_of(data_root: Path | None) -> Path:
    root = data_root or (Path(os.environ[DATA_ROOT_ENV]) if os.environ.get(DATA_ROOT_ENV) else None)
    if root is None:
        raise UserError(f"say where datasets go: --data-root DIR (each dataset lands in DIR/<name>) or "
                        f"{DATA_ROOT_ENV}=DIR")
    return root.expanduser()


def selected(suite_datasets: dict[str, dict], only: list[str]) -> dict[str, dict]:
    unknown = sorted(set(only) - set(suite_datasets))
    if unknown:
        raise UserError(f"--only {' '.join(unknown)}: not in this suite; its datasets are "
                        f"{', '.join(suite_datasets)}")
    return {name: opts for name, opts in suite_datasets.items() if not only or name in only}


def target_of(name: str, suite_options: dict, data_root: Path) -> Path:
    if suite_options.get("root"):
        return Path(suite_options["root"]).expanduser()
    return data_root / (dataset_spec(name, suite_options).folder or name)


def missing_with_recipe(suite_datasets: dict[str, dict], data_root: Path) -> dict[str, dict]:
    """The datasets `evaluate --download` fetches: those with a recipe and no root yet."""
    return {name: opts for name, opts in suite_datasets.items()
            if dataset_spec(name, opts).fetch is not None and not target_of(name, opts, data_root).exists()}


def fetch_suite(suite_datasets: dict[str, dict], options: FetchOptions, only: list[str] = ()) -> list[FetchResult]:
    """Fetch every selected dataset; one that fails is reported and the others go on. No connection at
    all stops the run with one message (every other download would fail the same way)."""
    results = []
    for name, suite_options in selected(suite_datasets, list(only)).items():
        try:
            fetch_label_list(name, suite_options, options)
            result = fetch_dataset(name, suite_options, options)
        except Unreachable as err:
            raise UserError(f"{err}. This machine seems to have no internet. Fetch on a machine that has it and "
                            f"copy {options.data_root} here; or put the archives (`data fetch --dry-run` lists "
                            f"them) in {options.archives_dir} or --archives DIR; or pass --mirror BASE, a server or "
                            f"folder holding them under their official file names") from None
        except UserError as err:
            result = FetchResult(name, Outcome.FAILED, str(err))
        print(result.line(), flush=True)
        results.append(result)
    return results


def fetch_label_list(name: str, suite_options: dict, options: FetchOptions) -> None:
    """The official label list a dataset entry names (`train_list: simclr_1percent`), into the archives
    folder, checked against its sha256 (`data.label_fractions`)."""
    listed = OFFICIAL_LISTS.get(str(suite_options.get("train_list")))
    if listed is not None:
        [(_, path)], _ = gather(Recipe((listed,)), options)
        print(f"{name:14s} train_list {suite_options['train_list']}: {path} ({listed.source})", flush=True)


def fetch_dataset(name: str, suite_options: dict, options: FetchOptions) -> FetchResult:
    spec = dataset_spec(name, suite_options)
    target = target_of(name, suite_options, options.data_root)
    if spec.fetch is None and not spec.needs_root:
        return FetchResult(name, Outcome.PRESENT, "nothing to fetch: it is read without a data root")
    if spec.fetch is None:
        return FetchResult(name, Outcome.NO_RECIPE, f"no fetch recipe; get it by hand: "
                                                    f"{spec.download or spec.layout or spec.description}")
    if target.exists():
        return FetchResult(name, Outcome.PRESENT, f"{target} exists and is left as it is (remove it to fetch again)"
                                                  f"{checked(spec, suite_options, options)}")
    files, missing = gather(spec.fetch, options)
    if missing:
        return FetchResult(name, Outcome.MANUAL, manual_steps(spec.fetch, missing, options))
    staged, counts = stage(spec, files, target)
    os.replace(staged, target)
    if not spec.fetch.check_splits:
        return FetchResult(name, Outcome.FETCHED, f"{target}{noted(spec)}")
    report = DataReport(name, target, counts, size_problems(spec, counts), spec.download, spec.layout)  # read staging
    return FetchResult(name, Outcome.FETCHED, f"{target}\n{'':16s}check-data: {report.line()}")


def checked(spec: DatasetSpec, suite_options: dict, options: FetchOptions) -> str:
    """check-data's line for a dataset already in place, unless reading it is a job of its own (ImageNet)."""
    if not spec.fetch.check_splits:
        return noted(spec)
    return f"\n{'':16s}check-data: {check_dataset(spec.name, suite_options, options.data_root).line()}"


def noted(spec: DatasetSpec) -> str:
    return f"\n{'':16s}{spec.fetch.note}" if spec.fetch.note else ""


def gather(recipe: Recipe, options: FetchOptions) -> tuple[list[tuple[Archive, Path]], list[Archive]]:
    """Each archive's verified local file, and the archives that only a user can get."""
    folder = options.archives_dir
    folder.mkdir(parents=True, exist_ok=True)
    files, missing = [], []
    for archive in recipe.archives:
        local = folder / archive.file
        if local.exists():
            if archive.checksums and local.stat().st_size > 1e9:
                print(f"checking {local} ({human_size(local.stat().st_size)}) against its checksum", flush=True)
            verify(local, archive.checksums, delete=False)
        elif options.mirror_folder and not (options.mirror_folder / archive.file).is_file():
            raise UserError(f"{archive.file} is not in the mirror folder {options.mirror_folder}; put it there or "
                            f"drop --mirror")
        elif options.url(archive):
            download(options.url(archive), local, archive.checksums, archive.size, options.progress)
        else:
            missing.append(archive)
            continue
        files.append((archive, local))
    return files, missing


def stage(spec: DatasetSpec, files: list[tuple[Archive, Path]], target: Path) -> tuple[Path, dict[str, int]]:
    """Unpack into a staging folder beside `target` and load every split from it (the images per split come
    back); on any failure the staging folder is removed, so nothing half-made is left."""
    counts: dict[str, int] = {}
    staging = target.parent / f".{target.name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for archive, path in files:
            if archive.unpack is Unpack.PLACE:
                place(path, staging / archive.into)
            else:
                extract(path, staging / archive.into, archive.inner)
        if spec.fetch.check_splits:
            counts = counts_that_load(spec, staging)
    except OSError as err:
        shutil.rmtree(staging, ignore_errors=True)
        if err.errno == errno.ENOSPC:
            raise DiskFullError(f"the disk holding {target.parent} filled up while unpacking {spec.name}; nothing "
                                f"was left there. Free space, or pass --data-root on a larger disk") from None
        raise
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging, counts


def counts_that_load(spec: DatasetSpec, root: Path) -> dict[str, int]:
    counts, unloaded = split_counts(spec, root)
    if unloaded:
        raise UserError(f"the archives of {spec.name} did not give the layout its loader reads ({unloaded[0]}); "
                        f"nothing was moved into place")
    return counts


def manual_steps(recipe: Recipe, missing: list[Archive], options: FetchOptions) -> str:
    pad = " " * 16
    lines = [recipe.manual or "these files have no download URL"]
    lines += [f"page: {recipe.page}"] if recipe.page else []
    lines += [f"put these files in {options.archives_dir} (or pass --archives DIR), then run the same command again:"]
    lines += [f"  {describe(archive)}" for archive in missing]
    return f"\n{pad}".join(lines)


def describe(archive: Archive) -> str:
    size = human_size(archive.size) if archive.size is not None else "size not published"
    sums = ", ".join(f"{name} {value}" for name, value in archive.checksums.items()) or "no published checksum"
    return f"{archive.file} ({size}; {sums})"


def human_size(size: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"


def dry_run(suite_datasets: dict[str, dict], options: FetchOptions, only: list[str] = ()) -> list[str]:
    """What `fetch` would do, touching nothing: per dataset, its target and each archive's source, size
    and checksums, or its manual steps; then the totals."""
    lines, to_download, manual = [], 0, []
    for name, suite_options in selected(suite_datasets, list(only)).items():
        spec = dataset_spec(name, suite_options)
        target = target_of(name, suite_options, options.data_root)
        if spec.fetch is None:
            lines.append(f"{name}: " + ("nothing to fetch" if not spec.needs_root else
                                        f"no fetch recipe ({spec.download or spec.layout or spec.description})"))
            continue
        state = "present, left as it is" if target.exists() else ("automatic" if spec.fetch.automatic else "MANUAL")
        lines.append(f"{name} -> {target} [{state}]")
        lines += [f"    {line}" for line in archive_lines(spec.fetch, options)]
        if not spec.fetch.automatic and not target.exists():
            manual.append(name)
        if not target.exists():
            to_download += sum(a.size or 0 for a in spec.fetch.archives
                               if options.url(a) and not (options.archives_dir / a.file).exists())
    lines.append(f"to download: {human_size(to_download)} into {options.archives_dir}; "
                 f"manual step needed: {', '.join(manual) or 'none'}")
    return lines


def archive_lines(recipe: Recipe, options: FetchOptions) -> list[str]:
    lines = [recipe.manual, f"page: {recipe.page}"] if recipe.manual else []
    for archive in recipe.archives:
        here = (options.archives_dir / archive.file).exists()
        where = ("already in the archives folder" if here else
                 f"from {options.url(archive)}" if options.url(archive) else "to be put in the archives folder")
        lines.append(f"{describe(archive)} {where}")
    return lines + ([recipe.note] if recipe.note else [])


def verify_archives(spec: DatasetSpec, archives_dir: Path) -> list[str]:
    """`check-data --verify`: each of a dataset's archives that is present, checked against its checksums."""
    lines = []
    for archive in spec.fetch.archives if spec.fetch else ():
        path = archives_dir / archive.file
        if not path.exists():
            continue
        wrong = mismatches(path, archive.checksums)
        status = ("WRONG: " + "; ".join(wrong)) if wrong else ("ok" if archive.checksums else "no published checksum")
        lines.append(f"{archive.file}: {status}")
    return lines
