"""Miniature official archives (same file names and formats as the publishers', built from
`tests.miniatures`) and a loopback HTTP server that serves them with Range support, for `data fetch`."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from benchmark.data import dataset_spec
from benchmark.data.recipe import Recipe
from tests import miniatures as mini

TWO = {"train": 6, "test": 2}
THREE = {"train": 2, "val": 2, "test": 2}


def tar(out: Path, members: list[tuple[Path, str]], skip=lambda name: False) -> Path:
    mode = "w" if out.name.endswith(".tar") else "w:gz"
    with tarfile.open(out, mode) as archive:
        for path, arcname in members:
            archive.add(path, arcname, filter=lambda info: None if skip(info.name) else info)
    return out


def zip_folder(out: Path, folder: Path, arcname: str) -> Path:
    with zipfile.ZipFile(out, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, f"{arcname}/{path.relative_to(folder)}")
    return out


def build(name: str, src: Path, out: Path) -> list[Path]:
    """Write the miniature of `name` under `src` and its official archives into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    if name == "cifar10":
        mini.write_cifar(src, False, TWO)
        return [tar(out / "cifar-10-python.tar.gz", [(src / "cifar-10-batches-py", "cifar-10-batches-py")])]
    if name == "dtd":
        mini.write_dtd(src, THREE)
        return [tar(out / "dtd-r1.0.1.tar.gz", [(src / "dtd" / "dtd", "dtd")])]
    if name == "flowers102":
        base = mini.write_flowers102(src, THREE) / "flowers-102"
        return [tar(out / "102flowers.tgz", [(base / "jpg", "jpg")]),
                Path(shutil.copy(base / "imagelabels.mat", out)), Path(shutil.copy(base / "setid.mat", out))]
    if name == "pets":
        base = mini.write_pets(src, TWO) / "oxford-iiit-pet"
        return [tar(out / f"{part}.tar.gz", [(base / part, part)]) for part in ("images", "annotations")]
    if name == "eurosat":
        mini.write_eurosat(src, 4)
        return [zip_folder(out / "EuroSAT.zip", src / "2750", "2750")]
    if name == "voc2007":
        mini.write_voc2007(src, {"train": mini.voc_images(0), "val": mini.voc_images(100), "test": mini.voc_images(200)})
        test_ids = set(mini.voc_images(200))
        in_test = lambda arc: "_test" in arc or arc.endswith("/test.txt") or Path(arc).stem in test_ids  # noqa: E731
        devkit = [(src / "VOCdevkit", "VOCdevkit")]
        return [tar(out / "VOCtrainval_06-Nov-2007.tar", devkit, skip=in_test),
                tar(out / "VOCtest_06-Nov-2007.tar", devkit, skip=lambda arc: not in_test(arc) and "." in arc)]
    if name == "cars":
        base = mini.write_cars(src, TWO) / "stanford_cars"
        return [tar(out / "cars_train.tgz", [(base / "cars_train", "cars_train")]),
                tar(out / "cars_test.tgz", [(base / "cars_test", "cars_test")]),
                tar(out / "car_devkit.tgz", [(base / "devkit", "devkit")]),
                Path(shutil.copy(base / "cars_test_annos_withlabels.mat", out))]
    if name == "caltech101":  # the CaltechDATA zip holds the tar.gz the layout comes from
        mini.write_caltech101(src, 40)
        inner = tar(src / "101_ObjectCategories.tar.gz", [(src / "101_ObjectCategories", "101_ObjectCategories")])
        with zipfile.ZipFile(out / "caltech-101.zip", "w") as archive:
            archive.write(inner, "caltech-101/101_ObjectCategories.tar.gz")
            archive.writestr("__MACOSX/caltech-101/._101_ObjectCategories.tar.gz", b"resource fork")
        return [out / "caltech-101.zip"]
    if name == "sun397":  # the images archive, and the split lists in Partitions.zip
        mini.write_sun397(src, TWO)
        lists = lambda arc: Path(arc).name.startswith(("Training_", "Testing_"))  # noqa: E731
        with zipfile.ZipFile(out / "Partitions.zip", "w") as archive:
            for path in sorted((src / "SUN397").glob("*_01.txt")):
                archive.write(path, f"Partitions/{path.name}")
        return [tar(out / "SUN397.tar.gz", [(src / "SUN397", "SUN397")], skip=lists), out / "Partitions.zip"]
    raise KeyError(name)


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class Served(ThreadingHTTPServer):
    """Serves `files` by name; `drop_after[name] = n` closes that file's next response after n bytes."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.files: dict[str, bytes] = {}
        self.drop_after: dict[str, int] = {}
        self.ranges: list[tuple[str, int]] = []
        self.requests: list[str] = []

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Served

    def do_GET(self):  # noqa: N802 - the http.server API
        name = self.path.lstrip("/")
        self.server.requests.append(name)
        data = self.server.files.get(name)
        if data is None:
            self.send_error(404)
            return
        start = int(self.headers["Range"].split("=")[1].split("-")[0]) if self.headers.get("Range") else 0
        if self.headers.get("Range"):
            self.server.ranges.append((name, start))
            if start >= len(data):
                self.send_error(416)
                return
        self.send_response(206 if start else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:][:self.server.drop_after.pop(name, None)]
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, *args):
        pass


def serve() -> Served:
    server = Served()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def point_recipe(name: str, files: list[Path], base: str = "", checksum=md5) -> Recipe:
    """`name`'s recipe with its URLs at `base` and its checksums and sizes those of the miniature files;
    installed on the registered spec (undo with `restore`)."""
    spec = dataset_spec(name)
    by_name = {f.name: f for f in files}
    archives = tuple(dataclasses.replace(a, url=f"{base}/{a.file}" if base else "", md5=checksum(by_name[a.file]),
                                         sha256="", size=by_name[a.file].stat().st_size) for a in spec.fetch.archives)
    recipe = dataclasses.replace(spec.fetch, archives=archives)
    object.__setattr__(spec, "fetch", recipe)
    return recipe


def restore(originals: dict[str, Recipe]) -> None:
    for name, recipe in originals.items():
        object.__setattr__(dataset_spec(name), "fetch", recipe)
