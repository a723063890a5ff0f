"""Datasets of the Ericsson suite read as the reference reads them, on miniatures of their layouts."""

import numpy as np

import cli
from benchmark.data import DATASETS, load_split
from tests.miniatures import VOC_CLASSES, write_image_folder, write_voc2007


def test_voc2007_labels_come_from_the_class_lists_with_difficult_objects_negative(tmp_path):
    write_voc2007(tmp_path, {
        "train": {"000005": [("chair", False), ("chair", True)],  # one clear chair: positive
                  "000007": [("car", True)],  # only a difficult car: negative (flag 0)
                  "000009": [("horse", False), ("person", True), ("person", False)]},
        "test": {"000001": [("dog", False), ("person", True)]}})
    assert (tmp_path / "VOCdevkit/VOC2007/ImageSets/Main/car_train.txt").read_text().splitlines()[1] == "000007  0"
    spec = DATASETS.get("voc2007")
    train, test = load_split(spec, "train", tmp_path), load_split(spec, "test", tmp_path)
    positives = lambda labels: [sorted(VOC_CLASSES[c] for c in np.flatnonzero(row)) for row in labels]
    assert positives(train.labels) == [["chair"], [], ["horse", "person"]]
    assert positives(test.labels) == [["dog"]]  # the difficult person does not count
    assert str(train.images[1]).endswith("VOCdevkit/VOC2007/JPEGImages/000007.jpg") and spec.version == 2


def test_a_single_split_pool_runs_the_fewshot_protocol(tmp_path, capsys):
    """A few-shot pool declared `splits: [train]` (as CropDiseases, ISIC and ChestX are) runs as one pool."""
    root = write_image_folder(tmp_path / "pool", {"train": {"a": 6, "b": 6, "c": 6, "d": 6}})
    suite = tmp_path / "s.yaml"
    suite.write_text(f"name: pool\nprotocols: {{fewshot: {{ways: 4, shots: 2, queries: 3, episodes: 20}}, knn: {{}}}}\n"
                     f"datasets: {{mine: {{source: image_folder, root: {root}, num_classes: 4, splits: [train]}}}}\n")
    code = cli.main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--results", str(tmp_path / "r.sqlite"),
                     "--cache-dir", str(tmp_path / "cache")])
    out, err = capsys.readouterr()
    assert "### fewshot" in out and "| mine " in out and "KeyError" not in err
    assert "FAILED" in err and "single pool; evaluate it with the fewshot protocol" in err  # k-NN says why
    assert code == 1


def test_the_reference_holds_every_published_value_and_lines_up_fewshot_by_shots():
    import pandas as pd

    from benchmark.results.reference import compare, labelled, load_reference
    from benchmark.results.table import results_table

    reference = load_reference("ericsson2021")
    assert len(reference) == 658 and reference["encoder"].nunique() == 14
    assert results_table(labelled(reference)).shape == (14, 47)  # Tables 1, 2, 3 and 8, every column
    ours = pd.DataFrame({"encoder": ["mine", "mine", "mine"], "protocol": ["fewshot", "fewshot", "linear"],
                         "dataset": ["isic", "isic", "aircraft"], "value": [40.0, 50.0, 30.0],
                         "chosen": [{"ways": 5, "shots": 5}, {"ways": 5, "shots": 50}, {"C": 1.0}]})
    matched = compare(ours, reference, {"mine": "SimCLR-v1"}).set_index(["protocol", "setting", "dataset"])
    published = lambda **cell: reference.query(" and ".join(f"{k} == {v!r}" for k, v in cell.items()))["value"].item()
    assert matched.loc[("fewshot", "5-way 50-shot", "isic"), "published"] == published(
        encoder="SimCLR-v1", protocol="fewshot", dataset="isic", shots=50)
    assert matched.loc[("fewshot", "5-way 5-shot", "isic"), "ours"] == 40.0
    assert matched.loc[("linear", "", "aircraft"), "published"] == published(
        encoder="SimCLR-v1", protocol="linear", dataset="aircraft")
