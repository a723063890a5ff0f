"""Bad inputs and faults a careful adversarial user tries, each fed through the CLI.

To add one: write a line in CASES: (what, the command with {placeholders}, the exit code, a piece of the
one-line message). A placeholder names a method of `World` that builds the file or folder it needs.
Every case also asserts that no traceback was printed and that the results store did not change when
the command failed.
"""

from __future__ import annotations

import os
import pickle
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from cli import main
from benchmark.results import ResultsStore
from tests.conftest import write_suite
from tests.miniatures import write_image_folder, write_imagenet_shifts

MARKER = "/tmp/transferbench-red-team-ran-code"


class Evil:
    """A pickle that runs a shell command when loaded."""

    def __reduce__(self):
        return os.system, (f"touch {MARKER}",)


class World:
    """Files that bad inputs need, built on demand in a temporary folder."""

    def __init__(self, root):
        self.root = root

    def suite_file(self, name, datasets, protocols, preprocessing=None, **top):
        path = self.root / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"name": name, "preprocessing": preprocessing or {"input_size": 8},
                                        "protocols": protocols, "datasets": datasets, **top}))
        return path

    def folder_suite(self, name, splits, num_classes=2, protocols=None, **options):
        root = write_image_folder(self.root / f"{name}_data", splits, size=8)
        return self.suite_file(name, {"mine": {"source": "image_folder", "root": str(root), "num_classes": num_classes,
                                               **options}}, protocols or {"knn": {}})

    def tiny(self):
        return self.suite_file("tiny", {"textures": {}}, {"knn": {}})

    def evil_ground_truth(self):
        root = self.root / "roxford5k"
        (root / "jpg").mkdir(parents=True)
        (root / "gnd_roxford5k.pkl").write_bytes(pickle.dumps({"imlist": [Evil()], "qimlist": [], "gnd": []}))
        return self.suite_file("evil_gnd", {"roxford5k": {"root": str(root)}}, {"instance_retrieval": {}})

    def evil_cifar(self):
        folder = self.root / "cifar10" / "cifar-10-batches-py"
        folder.mkdir(parents=True)
        for name in ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch",
                     "batches.meta"):
            (folder / name).write_bytes(pickle.dumps({"data": Evil()}, protocol=2))
        return self.suite_file("evil_cifar", {"cifar10": {"root": str(self.root / "cifar10")}}, {"knn": {}})

    def five_declared(self):
        return self.folder_suite("five", {"train": {"a": 4, "b": 4}, "test": {"a": 2, "b": 2}}, num_classes=5)

    def one_class(self):
        return self.folder_suite("one", {"train": {"a": 4}, "test": {"a": 2}}, num_classes=1)

    def single_folder(self):
        return self.folder_suite("single", {"train": {"a": 4}, "test": {"a": 2}}, num_classes=2)

    def nested_class(self):
        path = self.folder_suite("nested", {"train": {"a": 4, "b": 4}, "test": {"a": 2, "b": 2}})
        data = self.root / "nested_data" / "train" / "b"
        (data / "deeper").mkdir()
        for image in list(data.glob("*.png")) + list(data.glob("*.jpg")):
            image.rename(data / "deeper" / image.name)
        return path

    def num_classes_abc(self):
        return self.folder_suite("abc", {"train": {"a": 4, "b": 4}, "test": {"a": 2, "b": 2}}, num_classes="abc")

    def empty(self):
        path = self.root / "empty.yaml"
        path.write_text("")
        return path

    def no_protocols(self):
        return self.suite_file("noprot", {"textures": {}}, {})

    def knnn_column(self):
        return self.suite_file("knnn", {"textures": {"protocols": ["knnn"]}}, {"knn": {}})

    def halving_rate_one(self):
        return self.suite_file("rate", {"textures": {}}, {"finetune": {"search": "halving", "halving_rate": 1}})

    def stepless_checkpoint(self):
        path = self.root / "run" / "final.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"not a checkpoint")
        return path

    def hyperband(self):
        return self.suite_file("hyperband", {"textures": {}}, {"finetune": {"search": "hyperband"}})

    def unknown_override(self):
        return self.suite_file("override", {"textures": {}}, {"knn": {}},
                               overrides=[{"dataset": "texturez", "protocol": "knn", "params": {"k": [5]}}])

    def preprocessing(self, **values):
        return self.suite_file("pre", {"textures": {}}, {"knn": {}}, preprocessing=values)

    def sixteen(self):
        return self.preprocessing(input_size="sixteen")

    def zero_size(self):
        return self.preprocessing(input_size=0)

    def negative_size(self):
        return self.preprocessing(input_size=-3)

    def huge_size(self):
        return self.preprocessing(input_size=100000)

    def zero_std(self):
        return self.preprocessing(input_size=8, std=[0, 0, 0])

    def a_file(self):
        path = self.root / "a_file"
        path.write_text("not a directory")
        return path

    def a_dir(self):
        path = self.root / "a_dir"
        path.mkdir(exist_ok=True)
        return path

    def evil_weights(self):
        import torch

        path = self.root / "evil.pth"
        torch.save({"weight": Evil()}, path)
        return path

    def raising_plugin(self):
        path = self.root / "raising_plugin.py"
        path.write_text("raise RuntimeError('plugin broke')\n")
        return path

    def broken_plugin(self):
        path = self.root / "broken_plugin.py"
        path.write_text("def oops(:\n")
        return path

    def other_app_db(self):
        path = self.root / "other.db"
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE results (id INTEGER PRIMARY KEY, body TEXT)")
        return path

    def newer_store(self):
        path = self.root / "newer.sqlite"
        with sqlite3.connect(path) as db:
            db.execute("PRAGMA user_version = 99")
        return path

    def too_many_shots(self):
        return self.suite_file("shots", {"lfw_faces": {}}, {"lowshot": {"shots": [1, 500], "draws": 1}})

    def lowshot_headline(self):
        return self.suite_file("headline", {"textures": {}}, {"lowshot": {"shots": [1, 2], "headline": 4}})

    def sgd_no_lrs(self):
        return self.suite_file("sgd_no_lrs", {"textures": {}}, {"linear_sgd": {"lrs": []}})

    def sgd_momentum_one(self):
        return self.suite_file("sgd_momentum", {"textures": {}}, {"linear_sgd": {"momentum": 1.0}})

    def sgd_augment_word(self):
        return self.suite_file("sgd_augment", {"textures": {}}, {"linear_sgd": {"augment": "yes"}})

    def sgd_epoch_length_zero(self):
        return self.suite_file("sgd_epoch_length", {"textures": {}}, {"linear_sgd": {"epoch_length": 0}})

    def override_to_unknown_protocol(self):
        override = {"dataset": "textures", "protocol": "linear", "params": {"protocol": "linear_sdg"}}
        return self.suite_file("override_unknown", {"textures": {}}, {"linear": {}}, overrides=[override])

    def zero_fraction(self):
        return self.suite_file("zero_fraction", {"textures": {"train_fraction": 0}}, {"knn": {}})

    def missing_label_list(self):
        return self.suite_file("missing_list", {"textures": {"train_list": str(self.root / "no_list.txt")}}, {"knn": {}})

    def retrieval_unknown_database(self):
        return self.suite_file("retrieval_database", {"textures": {}}, {"retrieval": {"database": "gallery"}})

    def negative_stability(self):
        return self.suite_file("negative_stability", {"textures": {}}, {"knn": {"stability": -1}})

    def word_stability(self):
        return self.suite_file("word_stability", {"textures": {}}, {"knn": {"stability": "three"}})

    def shift_without_imagenet(self):
        folder = self.root / "imagenet_v2" / "imagenetv2-matched-frequency-format-val" / "0"
        folder.mkdir(parents=True)
        return self.suite_file("shift", {"imagenet_v2": {"root": str(self.root / "imagenet_v2")}}, {"knn": {}})

    def shift_with_folder(self, name, bad_folder):
        data = self.root / "data"
        write_imagenet_shifts(data, classes=7, train=2, test=1, shifted=1)
        (data / name / bad_folder).mkdir(parents=True)
        return self.suite_file(f"bad_{name}", {"imagenet": {"root": str(data / "imagenet"), "protocols": []},
                                               name: {"root": str(data / name)}}, {"knn": {}})

    def imagenet_a_with_tench(self):
        return self.shift_with_folder("imagenet_a", "imagenet-a/n01440764")

    def imagenet_v2_with_a_wnid_folder(self):
        return self.shift_with_folder("imagenet_v2", "imagenetv2-matched-frequency-format-val/n01440764")

    def results(self):
        return self.root / "runs.sqlite"

    def cache(self):
        return self.root / "cache"


RUN = "--results {results} --cache-dir {cache}"
CASES = [
    # code execution
    ("data fetch --only an unknown dataset", "data fetch --only cifar11 --data-root {a_dir}", 2, "not in this suite"),
    ("data fetch from a mirror folder without the file", "data fetch --only cifar10 --data-root {a_dir} --mirror "
     "{a_dir}", 1, "cifar-10-python.tar.gz is not in the mirror folder"),
    ("suite distill from an unknown reference", "suite distill --reference ericson2021 --cells 3 --out {a_dir}/l.yaml",
     2, "Did you mean 'ericsson2021'"),
    ("suite distill keeping every cell", "suite distill --reference ericsson2021 --cells 45 --out {a_dir}/l.yaml", 2,
     "choose between 1 and 44"),
    ("evaluate --series matching nothing", "evaluate --suite {tiny} --series checkpoint:{a_dir}/ckpt_*.pt " + RUN, 2,
     "no checkpoint matches"),
    ("suite distill with nothing to distil", "suite distill --cells 3 --out {a_dir}/l.yaml", 2,
     "name the suite to distil"),
    ("plan --estimate without a model", "plan --suite offline --estimate " + RUN, 2, "plan needs --model SPEC"),
    ("leaderboard --series without a series", "leaderboard --series --results {results} --out {a_dir}/b", 2,
     "no checkpoint series in these results"),
    ("a series checkpoint without a step", "evaluate --suite {tiny} --series checkpoint:{stepless_checkpoint} " + RUN,
     2, "cannot tell the step"),
    ("finetune halving_rate: 1", "evaluate --suite {halving_rate_one} --model pixels:2 " + RUN, 2,
     "halving_rate=1 is invalid"),
    ("finetune search: hyperband", "evaluate --suite {hyperband} --model pixels:2 " + RUN, 2,
     "search='hyperband' is invalid"),
    ("revisitop ground truth with a __reduce__", "evaluate --suite {evil_ground_truth} --model pixels:2 " + RUN, 1,
     "refused to read"),
    ("a CIFAR batch with a __reduce__", "evaluate --suite {evil_cifar} --model pixels:2 " + RUN, 1, "refused to read"),
    ("weights that need code execution", "evaluate --suite {tiny} --model timm:resnet18@{evil_weights} " + RUN, 2,
     "needs code execution to unpickle (it references posix.system)"),
    # silently wrong before
    ("num_classes 5 on a two-class folder", "evaluate --suite {five_declared} --model pixels:2 " + RUN, 1,
     "has 2 class folder(s) (a, b) but the suite declares num_classes: 5"),
    ("num_classes: 1", "evaluate --suite {one_class} --model pixels:2 " + RUN, 2, "num_classes must be an integer of at least 2"),
    ("a single class folder", "evaluate --suite {single_folder} --model pixels:2 " + RUN, 1,
     "has 1 class folder(s) (a) but the suite declares num_classes: 2"),
    ("a class whose images sit in a sub-folder", "evaluate --suite {nested_class} --model pixels:2 " + RUN, 1,
     "holds no images itself but 4 in sub-folders"),
    ("pixels:0", "evaluate --suite {tiny} --model pixels:0 " + RUN, 2, "pixels:SIZE with SIZE >= 1"),
    ("reproduce --budget 0", "reproduce --suite offline --budget 0 " + RUN, 2, "must be a finite number above 0"),
    ("reproduce --budget -1", "reproduce --suite offline --budget -1 " + RUN, 2, "must be a finite number above 0"),
    ("reproduce --budget nan", "reproduce --suite offline --budget nan " + RUN, 2, "must be a finite number above 0"),
    ("reproduce --budget inf", "reproduce --suite offline --budget inf " + RUN, 2, "must be a finite number above 0"),
    ("extract --out a directory", "extract --model pixels:2 --dataset digits --out {a_dir} --cache-dir {cache}", 2,
     "is a directory; name a file"),
    ("extract --out without .npz", "extract --model pixels:2 --dataset digits --out {a_dir}/feats --cache-dir {cache}",
     2, "must end in .npz"),
    ("an empty suite", "evaluate --suite {empty} --model pixels:2 " + RUN, 2, "has no datasets: and protocols:"),
    ("a suite without protocols", "evaluate --suite {no_protocols} --model pixels:2 " + RUN, 2, "has no protocols:"),
    ("protocols: [knnn] on a dataset", "evaluate --suite {knnn_column} --model pixels:2 " + RUN, 2,
     "Unknown protocol column 'knnn'. Did you mean 'knn'?"),
    ("overrides for an unknown dataset", "evaluate --suite {unknown_override} --model pixels:2 " + RUN, 2,
     "Unknown dataset 'texturez'. Did you mean 'textures'?"),
    ("--protocol the suite lacks", "evaluate --suite {tiny} --model pixels:2 --protocol fewshot " + RUN, 2,
     "has no fewshot column; its columns: knn"),
    ("lowshot with more shots than a class has", "evaluate --suite {too_many_shots} --model pixels:2 " + RUN, 1,
     "500 shots per class, but class(es)"),
    ("lowshot headline not among its shots", "evaluate --suite {lowshot_headline} --model pixels:2 " + RUN, 2,
     "headline=4 must be one of shots [1, 2]"),
    ("plan without --model or --why", "plan --suite {tiny} " + RUN, 2, "plan needs --model SPEC"),
    ("plan --why a cell the suite lacks", "plan --suite {tiny} --why pixels:2 digits knn " + RUN, 2,
     "has no cell digits / knn; datasets: textures"),
    ("plan --why a misspelt model source", "plan --suite {tiny} --why pixel:2 textures knn " + RUN, 2,
     "Unknown encoder source 'pixel'"),
    # another application's file
    ("--results another application's SQLite file", "evaluate --suite {tiny} --model pixels:2 --results "
     "{other_app_db} --cache-dir {cache}", 2, "not a transferbench results store"),
    ("--results a store from a newer version", "evaluate --suite {tiny} --model pixels:2 --results {newer_store} "
     "--cache-dir {cache}", 2, "written by a newer transferbench (store version 99)"),
    # tracebacks before
    ("leaderboard --out an existing file", "leaderboard --results {results} --out {a_file}", 2, "is a file"),
    ("--executor slurm off a cluster", "evaluate --suite {tiny} --model pixels:2 --executor slurm " + RUN, 2,
     "--executor slurm"),
    ("extract --out where nothing can be written", "extract --model pixels:2 --dataset digits --out "
     "{a_file}/f.npz --cache-dir {cache}", 2, "cannot write in"),
    ("extract --out on a filesystem that takes no files", "extract --model pixels:2 --dataset digits --out "
     "/proc/features.npz --cache-dir {cache}", 2, "cannot write in /proc"),
    ("a plugin that raises", "evaluate --suite {tiny} --model pixels:2 --plugin {raising_plugin} " + RUN, 2,
     "raised RuntimeError: plugin broke"),
    ("a plugin with a syntax error", "evaluate --suite {tiny} --model pixels:2 --plugin {broken_plugin} " + RUN, 2,
     "has a syntax error at"),
    # poor messages before
    ("input_size: sixteen", "evaluate --suite {sixteen} --model pixels:2 " + RUN, 2, "input_size must be a whole number"),
    ("input_size: 0", "evaluate --suite {zero_size} --model pixels:2 " + RUN, 2, "input_size must be a whole number"),
    ("input_size: -3", "evaluate --suite {negative_size} --model pixels:2 " + RUN, 2, "input_size must be a whole number"),
    ("input_size: 100000", "evaluate --suite {huge_size} --model pixels:2 " + RUN, 2, "in [1, 8192], got 100000"),
    ("std: [0, 0, 0]", "evaluate --suite {zero_std} --model pixels:2 " + RUN, 2, "std must be above 0"),
    ("num_classes: abc", "evaluate --suite {num_classes_abc} --model pixels:2 " + RUN, 2,
     "num_classes must be an integer of at least 2, got 'abc'"),
    ("--cache-dir a file", "evaluate --suite {tiny} --model pixels:2 --results {results} --cache-dir {a_file}", 2,
     "is a file; pass a directory as --cache-dir"),
    # issues 30 and 33 (linear_sgd, stability)
    ("linear_sgd lrs: []", "evaluate --suite {sgd_no_lrs} --model pixels:2 " + RUN, 2,
     "parameter lrs=[] is invalid: it must be a non-empty list"),
    ("linear_sgd momentum: 1.0", "evaluate --suite {sgd_momentum_one} --model pixels:2 " + RUN, 2,
     "parameter momentum=1.0 is invalid: it must be a number in [0, 0.999]"),
    ("linear_sgd augment: yes", "evaluate --suite {sgd_augment_word} --model pixels:2 " + RUN, 2,
     "parameter augment='yes' is invalid"),
    ("linear_sgd epoch_length: 0", "evaluate --suite {sgd_epoch_length_zero} --model pixels:2 " + RUN, 2,
     "parameter epoch_length=0 is invalid"),
    ("an override naming a misspelt protocol", "evaluate --suite {override_to_unknown_protocol} --model pixels:2 "
     + RUN, 2, "linear_sgd"),
    ("train_fraction: 0", "evaluate --suite {zero_fraction} --model pixels:2 " + RUN, 2,
     "train_fraction must be a number in (0, 1]"),
    ("train_list naming no file", "evaluate --suite {missing_label_list} --model pixels:2 " + RUN, 1,
     "no such file, and not an official list"),
    ("retrieval database: gallery", "evaluate --suite {retrieval_unknown_database} --model pixels:2 " + RUN, 2,
     "parameter database='gallery' is invalid: it must be one of 'test', 'train'"),
    ("stability: -1", "evaluate --suite {negative_stability} --model pixels:2 " + RUN, 2,
     "stability must be a number of reruns from 0 to 100, got -1"),
    ("a shift test set without ImageNet", "evaluate --suite {shift_without_imagenet} --model pixels:2 " + RUN, 1,
     "imagenet_v2: its heads are fitted on imagenet's train split, which is missing: Dataset 'imagenet' not found"),
    ("an ImageNet-A folder outside its 200 classes", "evaluate --suite {imagenet_a_with_tench} --model pixels:2 " + RUN,
     1, "not among its 200 ImageNet classes: n01440764; only WordNet ids such as n01498041 belong there"),
    ("an ImageNet-V2 folder that is not a class index",
     "evaluate --suite {imagenet_v2_with_a_wnid_folder} --model pixels:2 " + RUN, 1,
     "has folders n01440764; ImageNet-V2's are class indices 0..999"),
    ("stability: three", "evaluate --suite {word_stability} --model pixels:2 " + RUN, 2,
     "stability must be a number of reruns from 0 to 100, got 'three'"),
]


def run_cli(command: str, world: World, capsys) -> tuple[int, str]:
    argv = [part.format(**{name: getattr(world, name)() for name in names_in(part)}) for part in command.split()]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def names_in(part: str) -> list[str]:
    import string

    return [name for _, name, _, _ in string.Formatter().parse(part) if name]


@pytest.mark.parametrize("what, command, code, message", CASES, ids=[case[0] for case in CASES])
def test_bad_input_is_one_message(tmp_path, capsys, what, command, code, message):
    world = World(tmp_path)
    store = world.results()
    ResultsStore(store)  # an empty store: a failing command must leave it as it was
    before = store.read_bytes()
    got, output = run_cli(command, world, capsys)
    assert (got, message in output) == (code, True), output[-2000:]
    assert "Traceback" not in output and not os.path.exists(MARKER)
    if got == 2:
        assert store.read_bytes() == before


def test_ctrl_c_says_what_was_kept_and_exits_130(tmp_path, capsys, monkeypatch):
    from benchmark.pipeline import runner

    def interrupted(self, *args):
        raise KeyboardInterrupt

    monkeypatch.setattr(runner.Evaluator, "run", interrupted)
    code, output = run_cli("evaluate --suite {tiny} --model pixels:2 " + RUN, World(tmp_path), capsys)
    assert code == 130 and "run the same command again to resume" in output


def test_a_swapped_and_shrunk_local_dataset_is_recomputed(tmp_path, capsys):
    """The feature key follows the data's content, not its root path."""
    world = World(tmp_path)
    suite = world.folder_suite("local", {"train": {"a": 10, "b": 10}, "test": {"a": 4, "b": 4}}, protocols={"knn": {}})
    data = tmp_path / "local_data"
    assert run_cli(f"evaluate --suite {suite} --model pixels:2 " + RUN, world, capsys)[0] == 0
    (data / "test" / "a").rename(data / "test" / "tmp")
    (data / "test" / "b").rename(data / "test" / "a")
    (data / "test" / "tmp").rename(data / "test" / "b")
    for image in sorted((data / "train" / "a").iterdir())[:5]:
        image.unlink()
    code, output = run_cli(f"evaluate --suite {suite} --model pixels:2 --recompute " + RUN, world, capsys)
    assert code == 0 and "(train 15, test 8)" in output and "extracted 2 split(s)" in output


def test_a_16_bit_image_keeps_its_range(tmp_path, capsys):
    from benchmark.data.base import to_uint8_chw

    ramp = (np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "ramp.tif")
    with Image.open(tmp_path / "ramp.tif") as opened:
        assert opened.mode.startswith("I;16")
    pixels = to_uint8_chw(tmp_path / "ramp.tif").numpy()
    assert pixels.min() == 0 and pixels.max() == 255 and len(np.unique(pixels)) > 200  # not all white


@pytest.mark.parametrize("damage", ["list manifest", "manifest without arrays", "entry replaced by a file"])
def test_a_foreign_cache_entry_is_removed_and_rebuilt(tmp_path, capsys, damage):
    world = World(tmp_path)
    command = "evaluate --suite {tiny} --model pixels:2 --recompute " + RUN
    assert run_cli(command, world, capsys)[0] == 0
    for entry in (tmp_path / "cache" / "features").glob("*/*"):
        if damage == "entry replaced by a file":
            shutil.rmtree(entry)
            entry.write_text("x")
        else:
            (entry / "manifest.json").write_text("[]" if damage == "list manifest" else '{"cache_format": 1}')
    code, output = run_cli(command, world, capsys)
    assert code == 0 and "extracted 2 split(s)" in output and "Traceback" not in output
    assert run_cli(command, world, capsys)[1].count("from cache") == 1  # rebuilt, then read


def test_a_damaged_results_row_is_left_out_and_reported(tmp_path, capsys, caplog):
    world = World(tmp_path)
    assert run_cli("evaluate --suite {tiny} --model pixels:2 --model pixels:3 " + RUN, world, capsys)[0] == 0
    with sqlite3.connect(tmp_path / "runs.sqlite") as db:
        db.execute("UPDATE results SET params = '{not json' WHERE id = 1")
    code, output = run_cli("table --results {results}", world, capsys)
    assert code == 0 and "left out 1 damaged results row(s)" in caplog.text and "pixels:3" in output
    code, output = run_cli("evaluate --suite {tiny} --model pixels:2 --model pixels:3 " + RUN, world, capsys)
    assert code == 0 and "1 computed, 1 reused" in output


def test_constant_features_make_a_skipped_cell_not_a_crash(tmp_path, capsys):
    world = World(tmp_path)
    root = tmp_path / "black"
    for split, count in (("train", 6), ("test", 3)):
        for name in ("a", "b"):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (8, 8)).save(root / split / name / f"{i}.png")
    suite = world.suite_file("black", {"black": {"source": "image_folder", "root": str(root), "num_classes": 2}},
                             {"alpha_req": {"protocol": "quality", "measure": "alpha_req"}})
    code, output = run_cli(f"evaluate --suite {suite} --model pixels:2 " + RUN, world, capsys)
    assert code == 0 and "alpha_req: skipped (alpha_req is not defined on these features (nan))" in output


def test_16_bit_tiffs_are_read_by_their_range_not_as_white(tmp_path, capsys):
    """Two classes of 16-bit images, bright (50,000) on the left or on the right of dark (10,000): PIL's own
    conversion made every pixel white, and k-NN scored chance; read by their range they separate."""
    world = World(tmp_path)
    root = tmp_path / "tiff"
    for split, count in (("train", 8), ("test", 4)):
        for name, bright_left in (("left", True), ("right", False)):
            (root / split / name).mkdir(parents=True)
            for i in range(count):
                image = np.full((8, 8), 10000) + np.random.default_rng(i).integers(0, 2000, size=(8, 8))
                image[:, :4] += 40000 if bright_left else 0
                image[:, 4:] += 0 if bright_left else 40000
                Image.fromarray(image.astype(np.uint16)).save(root / split / name / f"{i}.tif")
    suite = world.suite_file("tiff", {"tiff": {"source": "image_folder", "root": str(root), "num_classes": 2}},
                             {"knn": {"k": [3]}})
    code, output = run_cli(f"evaluate --suite {suite} --model pixels:2 " + RUN, world, capsys)
    assert code == 0 and "tiff knn: 100.00" in output


def test_linear_sgd_heads_that_diverge_never_win_and_all_diverged_is_one_message(rng):
    """Features so large that a learning rate overflows the weights: such a head scores NaN (never chosen);
    when every head diverges, one message names the fix instead of a chance-level number."""
    from benchmark.errors import UserError
    from benchmark.protocols import Features, FeatureTask, make_protocol

    x, y = rng.normal(size=(200, 8)).astype(np.float32) * 1e18, np.arange(200) % 4
    task = FeatureTask(Features(x[:120], y[:120]), Features(x[120:160], y[120:160]), Features(x[160:], y[160:]), 4,
                       "top1")
    with pytest.raises(UserError, match=r"every head diverged .* lower `lrs`"):
        make_protocol("linear_sgd", {"lrs": [1000.0], "epochs": 3}).evaluate(task)
    mixed = make_protocol("linear_sgd", {"lrs": [1000.0, 1e-30], "epochs": 3}).evaluate(task)
    assert np.isnan(mixed.details["val_scores"][0]) and mixed.chosen["lr"] == 1e-30


def run_perf_script(script: str, arguments: list[str], monkeypatch, capsys) -> tuple[object, str]:
    """A perf script run as `python SCRIPT ARGUMENTS` would run it, in this process (its imports are already
    loaded here, so a refusal costs no interpreter start): (its exit code, what it wrote to stderr). Any
    exception other than the exit fails the test, as a traceback would."""
    import runpy
    import sys

    monkeypatch.setattr(sys, "argv", [script, *arguments])
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(Path(__file__).resolve().parents[1] / script), run_name="__main__")
    return stopped.value.code, capsys.readouterr().err


def test_perf_scale_refuses_sizes_without_every_class_in_val_and_test(monkeypatch, capsys):
    code, err = run_perf_script("perf/scale.py", ["--rows", "5", "--classes", "10"], monkeypatch, capsys)
    assert code == 2 and "--rows >= 25 x classes" in err


@pytest.mark.parametrize("script,arguments,message", [
    ("perf/finetune_step.py", ["--batch", "0"], "--batch: must be at least 1, got 0"),
    ("perf/finetune_step.py", ["--steps", "-1"], "--steps: must be at least 1, got -1"),
    ("perf/finetune_step.py", ["--model", "nope:x"], "Unknown encoder source 'nope'"),
    ("perf/extraction.py", ["--images", "0"], "--images: must be at least 1, got 0"),
    ("perf/extraction.py", ["--model", "nope:x"], "Unknown encoder source 'nope'"),
])
def test_perf_scripts_refuse_bad_arguments_in_one_message(script, arguments, message, monkeypatch, capsys):
    code, err = run_perf_script(script, ["--quick", *arguments], monkeypatch, capsys)
    assert code == 2 and message in err


def test_perf_machines_names_an_unknown_protocol_column_in_one_message():
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "perf/machines.py", "--quick", "--protocol", "nope"], capture_output=True,
                          text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode != 0 and "Unknown protocol 'nope'" in done.stderr and "Traceback" not in done.stderr
