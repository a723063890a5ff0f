"""`data fetch`: official-format miniature archives served on 127.0.0.1, fetched, verified, unpacked into
the layouts the loaders read, then checked and evaluated; and every way a fetch can go wrong."""

from __future__ import annotations

import errno
import hashlib
import io
import tarfile
import zipfile

import pytest

import cli
from benchmark.data import dataset_spec, load_split
from benchmark.data import download as download_module
from tests import archives

END_TO_END = ("cifar10", "dtd", "flowers102", "pets", "eurosat", "voc2007")


@pytest.fixture(autouse=True)
def miniature_files_pass_torchvisions_own_md5(monkeypatch):
    """torchvision checks CIFAR's batches and Flowers' .mat files against the official md5s itself."""
    import torchvision.datasets

    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", lambda *args, **kwargs: True)
    monkeypatch.setattr(torchvision.datasets.flowers102, "check_integrity", lambda *args, **kwargs: True)


@pytest.fixture
def server():
    served = archives.serve()
    yield served
    served.shutdown()


@pytest.fixture
def recipes():
    """Recipes pointed at test files are put back after the test."""
    originals = {}

    def point(name, files, base="", **kwargs):
        originals.setdefault(name, dataset_spec(name).fetch)
        return archives.point_recipe(name, files, base, **kwargs)

    yield point
    archives.restore(originals)


def publish(name, tmp_path, server, recipes, monkeypatch):
    """Build `name`'s archives, serve them, point its recipe there, and set its official sizes to the
    miniature's (so check-data can say ok); returns the miniature's split sizes."""
    files = archives.build(name, tmp_path / "src" / name, tmp_path / "served" / name)
    server.files.update({f.name: f.read_bytes() for f in files})
    recipes(name, files, server.base)
    spec = dataset_spec(name)
    sizes = {split: len(load_split(spec, split, tmp_path / "src" / name)) for split in spec.splits}
    for split, size in sizes.items():
        monkeypatch.setitem(spec.official_sizes, split, size)
    return sizes


def fetch(data_root, *extra):
    return cli.main(["data", "fetch", "--suite", "ericsson2021", "--data-root", str(data_root), *extra])


def test_fetch_then_check_data_then_evaluate_end_to_end(tmp_path, server, recipes, monkeypatch, capsys):
    sizes = {name: publish(name, tmp_path, server, recipes, monkeypatch) for name in END_TO_END}
    data = tmp_path / "data"
    assert fetch(data, "--only", *END_TO_END) == 0
    out = capsys.readouterr().out
    assert out.count("FETCHED") == 6 and "6 of 6 datasets in place" in out
    for name in END_TO_END:  # every split loads from the fetched root with the miniature's sizes
        spec = dataset_spec(name)
        assert {s: len(load_split(spec, s, data / name)) for s in spec.splits} == sizes[name]
    assert not list(data.glob(".*.partial"))
    suite = tmp_path / "fetched.yaml"
    suite.write_text("name: fetched\nprotocols: {knn: {k: [3]}, fewshot: {ways: 4, shots: 1, queries: 1, episodes: 4}}\n"
                     "datasets:\n" + "".join(f"  {n}: {{protocols: [{'fewshot' if n == 'eurosat' else 'knn'}]}}\n"
                                             for n in END_TO_END))
    assert cli.main(["check-data", "--suite", str(suite), "--data-root", str(data), "--verify"]) == 0
    out = capsys.readouterr().out
    assert out.count(" ok (") == 6 and "cifar-10-python.tar.gz: ok" in out and "WRONG" not in out
    code = cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--data-root", str(data),
                     "--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "cache")])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "6 results" in out and "FAILED" not in err
    assert fetch(data, "--only", "cifar10") == 0  # a second fetch leaves what is there
    assert "PRESENT" in capsys.readouterr().out and server.requests.count("cifar-10-python.tar.gz") == 1


@pytest.mark.parametrize("name", ["caltech101", "sun397"])
def test_an_archive_inside_an_archive_and_split_lists_in_a_second_one(tmp_path, server, recipes, monkeypatch, name,
                                                                     capsys):
    sizes = publish(name, tmp_path, server, recipes, monkeypatch)
    data = tmp_path / "data"
    assert fetch(data, "--only", name) == 0
    assert " ok (" in capsys.readouterr().out
    spec = dataset_spec(name)
    assert {s: len(load_split(spec, s, data / name)) for s in spec.splits} == sizes
    assert not list(data.rglob("*ObjectCategories.tar.gz"))  # the inner archive's copy is gone


def test_imagenet_tars_are_placed_for_torchvision_and_not_read(tmp_path, recipes, capsys):
    archives_dir = tmp_path / "data" / "_archives"
    archives_dir.mkdir(parents=True)
    files = []
    for archive in dataset_spec("imagenet").fetch.archives:
        (archives_dir / archive.file).write_bytes(archive.file.encode())
        files.append(archives_dir / archive.file)
    assert fetch(tmp_path / "data", "--only", "imagenet") == 1  # the official checksums: these are not the files
    assert "ILSVRC2012_img_train.tar is not the official file" in capsys.readouterr().out
    recipes("imagenet", files)
    assert fetch(tmp_path / "data", "--only", "imagenet") == 0
    assert "torchvision checks them and sorts them" in capsys.readouterr().out
    placed = tmp_path / "data" / "imagenet" / "ILSVRC2012_img_val.tar"
    assert placed.read_bytes() == b"ILSVRC2012_img_val.tar"
    assert placed.stat().st_ino == (archives_dir / "ILSVRC2012_img_val.tar").stat().st_ino  # a hard link, not a copy


def test_a_dropped_connection_resumes_to_the_same_bytes(tmp_path, server, recipes, monkeypatch, capsys):
    publish("dtd", tmp_path, server, recipes, monkeypatch)
    data, official = tmp_path / "data", server.files["dtd-r1.0.1.tar.gz"]
    server.drop_after["dtd-r1.0.1.tar.gz"] = len(official) // 3
    assert fetch(data, "--only", "dtd") == 0
    assert server.ranges == [("dtd-r1.0.1.tar.gz", len(official) // 3)]
    assert (data / "_archives" / "dtd-r1.0.1.tar.gz").read_bytes() == official
    assert (data / "dtd" / "dtd" / "dtd" / "labels" / "train1.txt").is_file()  # ROOT/dtd/dtd, as torchvision reads


def test_a_part_file_left_by_an_earlier_run_is_resumed(tmp_path, server, recipes, monkeypatch, capsys):
    publish("cifar10", tmp_path, server, recipes, monkeypatch)
    data, official = tmp_path / "data", server.files["cifar-10-python.tar.gz"]
    (data / "_archives").mkdir(parents=True)
    (data / "_archives" / "cifar-10-python.tar.gz.part").write_bytes(official[:1000])
    assert fetch(data, "--only", "cifar10") == 0
    assert server.ranges == [("cifar-10-python.tar.gz", 1000)]
    assert (data / "_archives" / "cifar-10-python.tar.gz").read_bytes() == official


def test_a_tampered_download_is_deleted_and_nothing_is_extracted(tmp_path, server, recipes, monkeypatch, capsys):
    publish("cifar10", tmp_path, server, recipes, monkeypatch)
    server.files["cifar-10-python.tar.gz"] = server.files["cifar-10-python.tar.gz"][:-1] + b"x"
    data = tmp_path / "data"
    assert fetch(data, "--only", "cifar10") == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "is not the official file: md5" in out and "I deleted it" in out
    assert not (data / "cifar10").exists() and list((data / "_archives").iterdir()) == []


def test_an_archive_a_user_put_there_is_checked_but_never_deleted(tmp_path, recipes, capsys):
    files = archives.build("cifar10", tmp_path / "src", tmp_path / "served")
    recipes("cifar10", files)
    data = tmp_path / "data"
    (data / "_archives").mkdir(parents=True)
    (data / "_archives" / "cifar-10-python.tar.gz").write_bytes(b"not it")
    assert fetch(data, "--only", "cifar10") == 1
    assert "replace it with the official file" in capsys.readouterr().out
    assert (data / "_archives" / "cifar-10-python.tar.gz").read_bytes() == b"not it"
    assert cli.main(["check-data", "--suite", "ericsson2021", "--data-root", str(data), "--verify"]) == 1
    assert "cifar-10-python.tar.gz: WRONG: md5" in capsys.readouterr().out


def evil_tar(member: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name in ("cifar-10-batches-py/batches.meta", member):
            info = tarfile.TarInfo(name)
            info.size = 3
            archive.addfile(info, io.BytesIO(b"bad"))
    return buffer.getvalue()


@pytest.mark.parametrize("member", ["../escaped.txt", "/tmp/transferbench-escaped.txt"])
def test_a_member_outside_the_folder_is_refused(tmp_path, recipes, member, capsys):
    served = tmp_path / "served"
    served.mkdir()
    (served / "cifar-10-python.tar.gz").write_bytes(evil_tar(member))
    recipes("cifar10", [served / "cifar-10-python.tar.gz"])
    data = tmp_path / "data"
    assert fetch(data, "--only", "cifar10", "--mirror", str(served)) == 1
    assert "would be written outside its folder" in capsys.readouterr().out
    assert not (tmp_path / "escaped.txt").exists() and not (data / "escaped.txt").exists()
    assert sorted(p.name for p in data.iterdir()) == ["_archives"]  # no dataset, no staging folder


def test_a_zip_member_outside_the_folder_is_refused(tmp_path, recipes, capsys):
    served = tmp_path / "served"
    served.mkdir()
    with zipfile.ZipFile(served / "EuroSAT.zip", "w") as archive:
        archive.writestr("2750/Forest/a.jpg", b"x")
        archive.writestr("../../escaped.txt", b"x")
    recipes("eurosat", [served / "EuroSAT.zip"])
    assert fetch(tmp_path / "data", "--only", "eurosat", "--mirror", str(served)) == 1
    assert "'../../escaped.txt', which would be written outside its folder" in capsys.readouterr().out
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "data" / "eurosat").exists()


def test_a_full_disk_while_downloading_ends_in_one_message_and_leaves_nothing(tmp_path, server, recipes,
                                                                              monkeypatch, capsys):
    publish("cifar10", tmp_path, server, recipes, monkeypatch)

    class SmallDisk(io.FileIO):  # a disk with 4 kB free
        def write(self, chunk):
            if self.tell() + len(chunk) > 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            return super().write(chunk)

    monkeypatch.setattr(download_module, "open", lambda path, mode: SmallDisk(path, mode[0]), raising=False)
    data = tmp_path / "data"
    assert fetch(data, "--only", "cifar10") == 1
    out = capsys.readouterr().out
    assert "disk holding" in out and "is full; I deleted the partial cifar-10-python.tar.gz.part" in out
    assert list((data / "_archives").iterdir()) == [] and not (data / "cifar10").exists()


def test_too_little_free_space_is_refused_before_downloading(tmp_path, server, recipes, monkeypatch, capsys):
    publish("cifar10", tmp_path, server, recipes, monkeypatch)
    monkeypatch.setattr(download_module.shutil, "disk_usage", lambda path: type("U", (), {"free": 100})())
    assert fetch(tmp_path / "data", "--only", "cifar10") == 1
    assert "GB free; nothing was downloaded" in capsys.readouterr().out and server.requests == []


def test_a_full_disk_while_extracting_removes_the_staging_folder(tmp_path, server, recipes, monkeypatch, capsys):
    publish("dtd", tmp_path, server, recipes, monkeypatch)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tarfile, "copyfileobj", full)
    data = tmp_path / "data"
    assert fetch(data, "--only", "dtd") == 1
    assert "filled up while extracting dtd-r1.0.1.tar.gz" in capsys.readouterr().out
    assert sorted(p.name for p in data.iterdir()) == ["_archives"]
    assert (data / "_archives" / "dtd-r1.0.1.tar.gz").is_file()  # the verified archive stays for the next run


def test_no_network_is_one_message_naming_the_mirror_and_the_manual_route(tmp_path, recipes, capsys):
    files = archives.build("cifar10", tmp_path / "src", tmp_path / "served")
    recipes("cifar10", files, "http://127.0.0.1:9")  # the discard port: nothing listens
    assert fetch(tmp_path / "data", "--only", "cifar10", "dtd") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "could not reach http://127.0.0.1:9/cifar-10-python.tar.gz" in err
    assert "--mirror BASE" in err and "--archives DIR" in err


def test_a_mirror_folder_is_used_by_file_name_and_still_verified(tmp_path, recipes, capsys):
    files = archives.build("pets", tmp_path / "src", tmp_path / "mirror")
    recipes("pets", files, "http://127.0.0.1:9")  # the official host is unreachable; the mirror is not
    data = tmp_path / "data"
    assert fetch(data, "--only", "pets", "--mirror", str(tmp_path / "mirror")) == 0
    assert len(load_split(dataset_spec("pets"), "test", data / "pets")) == 10
    (tmp_path / "mirror" / "images.tar.gz").write_bytes(b"changed")
    assert fetch(tmp_path / "other", "--only", "pets", "--mirror", str(tmp_path / "mirror")) == 1
    assert "images.tar.gz is not the official file" in capsys.readouterr().out


def test_a_manual_dataset_lists_its_steps_then_unpacks_what_the_user_put_there(tmp_path, recipes, capsys):
    data = tmp_path / "data"
    assert fetch(data, "--only", "cars") == 1
    out = capsys.readouterr().out
    assert "MANUAL" in out and "put these files in" in out and "cars_train.tgz (979.3 MB; sha256 512b227b" in out
    files = archives.build("cars", tmp_path / "src", data / "_archives")
    recipes("cars", files, checksum=lambda path: hashlib.md5(path.read_bytes()).hexdigest())
    assert fetch(data, "--only", "cars") == 0
    assert "FETCHED" in capsys.readouterr().out
    assert len(load_split(dataset_spec("cars"), "train", data / "cars")) == 30


def test_evaluate_download_fetches_what_is_missing_then_evaluates(tmp_path, server, recipes, monkeypatch, capsys):
    publish("flowers102", tmp_path, server, recipes, monkeypatch)
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\nprotocols: {knn: {k: [3]}}\ndatasets: {flowers102: {}, digits: {}}\n")
    argv = ["evaluate", "--suite", str(suite), "--model", "pixels:4", "--data-root", str(tmp_path / "data"),
            "--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "cache"), "--download"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "flowers102     FETCHED" in out and "digits" not in out.split("\n\n")[0] and "2 results" in out
    assert cli.main(argv) == 0  # present now: nothing fetched again
    assert "FETCHED" not in capsys.readouterr().out and server.requests.count("102flowers.tgz") == 1


def test_dry_run_lists_all_16_ericsson_datasets_with_sources_sizes_and_checksums(tmp_path, capsys):
    assert fetch(tmp_path / "data", "--dry-run") == 0
    out = capsys.readouterr().out
    headers = [line for line in out.splitlines() if " -> " in line and not line.startswith(" ")]
    assert len(headers) == 16
    assert sorted(h.split()[0] for h in headers if "[MANUAL]" in h) == ["cars", "chestx", "cropdiseases", "imagenet",
                                                                         "isic"]
    automatic = [h.split()[0] for h in headers if "[automatic]" in h]
    assert len(automatic) == 11
    assert "SUN397.tar.gz (39.1 GB; md5 8ca2778205c41d23104230ba66911c7a" in out
    assert "from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in out
    assert "page: https://image-net.org/" in out
    assert not (tmp_path / "data").exists()  # a dry run writes nothing


def test_ctrl_c_while_unpacking_leaves_no_staging_folder_and_says_how_to_go_on(tmp_path, server, recipes,
                                                                              monkeypatch, capsys):
    publish("dtd", tmp_path, server, recipes, monkeypatch)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tarfile, "copyfileobj", interrupted)
    data = tmp_path / "data"
    assert fetch(data, "--only", "dtd") == 130
    assert "run the same command again to go on" in capsys.readouterr().err
    assert sorted(p.name for p in data.iterdir()) == ["_archives"]


def test_unknown_only_names_the_suites_datasets(tmp_path, capsys):
    assert fetch(tmp_path, "--only", "cifar11") == 2
    assert "--only cifar11: not in this suite" in capsys.readouterr().err
