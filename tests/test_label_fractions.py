"""Label fractions (issue 35): train_fraction and train_list on a dataset entry, SimCLR's official lists."""

import numpy as np
import pytest
import yaml

import cli
from benchmark.data.base import ImageSplit
from benchmark.data.label_fractions import OFFICIAL_LISTS, Labelled
from benchmark.errors import UserError
from tests.miniatures import write_imagenet


def split_of(counts):
    """A split whose image i holds the value i (so a selection's images can be told apart)."""
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)])
    return ImageSplit(np.arange(len(labels), dtype=np.uint8)[:, None, None, None].repeat(3, axis=3), labels)


def test_a_fraction_keeps_that_share_of_every_class_drawn_by_its_seed():
    train = split_of([8, 4, 12])
    kept = Labelled(fraction=0.25).select(train)
    assert kept.labels.tolist() == [0, 0, 1, 2, 2, 2]  # round(0.25 x 8, 4, 12) of each class
    positions = lambda split: split.images[:, 0, 0, 0].tolist()  # noqa: E731
    again, other = Labelled(fraction=0.25).select(train), Labelled(fraction=0.25, seed=1).select(train)
    assert positions(again) == positions(kept) != positions(other)  # seeded: another seed, other images
    assert all(train.labels[i] == label for i, label in zip(positions(kept), kept.labels))
    with pytest.raises(UserError, match=r"leaves 1 class\(es\) without a train image \(first: \[1\]\)"):
        Labelled(fraction=0.1).select(train)  # 0.1 x 4 rounds to none of class 1
    with pytest.raises(UserError, match=r"train_fraction must be a number in \(0, 1\]"):
        Labelled(fraction=1.5)


def imagenet_suite(tmp_path, entry, protocols=("knn",)):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "preprocessing": {"input_size": 16, "resize_size": 16},
                                     "protocols": {"knn": {"k": [1]}},
                                     "datasets": {"imagenet": {**entry, "protocols": list(protocols)}}}))
    return suite


def run(tmp_path, suite, capsys):
    code = cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--data-root", str(tmp_path / "data"),
                     "--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "cache")])
    return code, capsys.readouterr().out


def test_a_list_of_file_names_keeps_those_train_images_and_has_its_own_cache_key(tmp_path, capsys):
    write_imagenet(tmp_path / "data" / "imagenet", {"train": 6, "test": 2})
    listed = tmp_path / "2percent.txt"
    listed.write_text("".join(f"n0144{c:04d}_{n}.JPEG\n" for c in range(5) for n in (1, 4)))
    code, out = run(tmp_path, imagenet_suite(tmp_path, {"train_list": str(listed)}), capsys)
    assert code == 0, out
    assert "(train 10, test 10)" in out  # 2 of the 6 train images of each class; every test image
    code, out = run(tmp_path, imagenet_suite(tmp_path, {}), capsys)  # the whole train split: its own features
    assert code == 0 and "(train 30, test 10)" in out, out
    listed.write_text("n01440000_1.JPEG\nn01440000_99.JPEG\n")
    code, out = run(tmp_path, imagenet_suite(tmp_path, {"train_list": str(listed)}), capsys)
    assert code == 1 and "names 1 image(s) that the train split does not have (first: ['n01440000_99.JPEG'])" in out


def test_an_official_list_is_fetched_into_the_archives_and_checked(tmp_path, capsys):
    write_imagenet(tmp_path / "data" / "imagenet", {"train": 2, "test": 1})
    suite = imagenet_suite(tmp_path, {"train_list": "simclr_1percent"})
    code, out = run(tmp_path, suite, capsys)
    assert code == 1 and "train_list simclr_1percent:" in out and OFFICIAL_LISTS["simclr_1percent"].url in out
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "1percent.txt").write_text("n01440000_0.JPEG\n")  # not the official file
    code = cli.main(["data", "fetch", "--suite", str(suite), "--data-root", str(tmp_path / "data"), "--mirror",
                     str(mirror)])
    out = capsys.readouterr().out
    assert code == 1 and "1percent.txt is not the official file" in out
    assert not (tmp_path / "data" / "_archives" / "1percent.txt").exists()  # a wrong download is deleted


def test_a_fraction_outside_zero_to_one_is_one_message_before_any_work(tmp_path, capsys):
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "protocols": {"knn": {}},
                                     "datasets": {"digits": {"train_fraction": 0}}}))
    code = cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--results", str(tmp_path / "r.sqlite")])
    assert code == 2 and "error: train_fraction must be a number in (0, 1]" in capsys.readouterr().err
