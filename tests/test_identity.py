"""Identity: every input of a stored number changes exactly the keys it should (benchmark.identity)."""

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest
import torch

from cli import main
from benchmark.config import Suite, Task
from benchmark.devices import Precision
from benchmark.encoders import load_encoder
from benchmark.identity import differences
from benchmark.metrics import SCORING
from benchmark.params import Boolean, Each, Interval, Optional, Options, Text
from benchmark.pipeline.inputs import feature_keys, pair, plan_dataset
from benchmark.pipeline.planner import cell_key
from benchmark.preprocessing import Preprocessing
from benchmark.protocols import PROTOCOLS, make_protocol
from benchmark.protocols._logreg import SOLVERS
from benchmark.registry import package_index
from benchmark.training.loop import PretrainConfig
from benchmark.vocab import FeatureKind
from tests.conftest import write_suite
from tests.miniatures import write_image_folder

PIXELS = load_encoder("pixels:4")


def alternatives(constraint, value):
    """Valid values other than `value` for a parameter (candidates; the protocol still validates them)."""
    if isinstance(constraint, Optional):
        inner = alternatives(constraint.inner, None) if value is None else []
        return inner + ([None] if value is not None else [])
    if isinstance(constraint, Interval):
        base = value if value is not None else (constraint.low if constraint.low is not None else 1)
        step = 1 if constraint.kind is int else max(abs(base), 1.0) / 2
        found = [constraint.kind(base + step), constraint.kind(base - step), constraint.kind(base + 2 * step)]
        return [v for v in found if v != value and constraint._inside(v)]
    if isinstance(constraint, Options):
        return [v for v in constraint.values if v != value]
    if isinstance(constraint, Boolean):
        return [not value]
    if isinstance(constraint, Text):
        return [f"other{constraint.must_contain}.npz"]
    if isinstance(constraint, Each):
        if value is None or len(value) == 0:
            return [tuple(alternatives(constraint.item, None)[:1])]
        return [tuple(value)[:-1]] if len(value) > 1 else [(*value, *alternatives(constraint.item, value[0])[:1])]
    raise AssertionError(f"no alternative rule for {constraint!r}")


def every_parameter_change(protocol_name):
    """(field, protocol) for each parameter of a protocol, changed to a valid other value."""
    params_cls = PROTOCOLS.get(protocol_name).Params
    default = make_protocol(protocol_name).params
    for f in dataclasses.fields(params_cls):
        if f.name == "constraints":
            continue
        changed = None
        for candidate in alternatives(params_cls.constraints[f.name], getattr(default, f.name)):
            try:
                changed = make_protocol(protocol_name, {f.name: candidate})
                break
            except Exception:  # the protocol's own cross-field checks refused it: try the next value
                continue
        assert changed is not None, f"{protocol_name}.{f.name}: no valid other value found"
        yield f.name, changed


@pytest.fixture(scope="module")
def local_root(tmp_path_factory):
    return write_image_folder(tmp_path_factory.mktemp("data") / "pets", {"train": {"a": 6, "b": 6},
                                                                        "test": {"a": 3, "b": 3}})


def pairing_for(root, preprocessing=None, precision=Precision.FP32, encoder=PIXELS):
    suite = Suite("s", datasets={"pets": {"source": "image_folder", "root": str(root), "num_classes": 2}})
    pairing = pair(encoder, "pixels:4", suite, "pets", None, precision, preprocessing or {})
    return pairing


def key_of(pairing, protocol, column=None, seed=None):
    task = Task("pets", column or protocol.name, {}, protocol.name)
    return cell_key(task, protocol, pairing, seed)


@pytest.mark.parametrize("protocol_name", sorted(PROTOCOLS.names()))
def test_every_protocol_parameter_changes_the_cell_key_and_no_feature_key(local_root, protocol_name):
    pairing = pairing_for(local_root)
    default = make_protocol(protocol_name)
    base = key_of(pairing, default)
    for name, changed in every_parameter_change(protocol_name):
        other = key_of(pairing, changed)
        assert other.digest != base.digest, f"{protocol_name}.{name} does not change the cell key"
        if changed.input_kind() == default.input_kind():  # linear_sgd's augment reads images, not features
            assert other.features == base.features, f"{protocol_name}.{name} changed a feature key"


def test_every_preprocessing_field_and_the_precision_change_the_feature_keys(local_root):
    base = feature_keys(pairing_for(local_root))
    changes = {"input_size": 12, "resize_size": 20, "resize_mode": "square", "interpolation": "nearest",
               "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    assert set(changes) == {f.name for f in dataclasses.fields(Preprocessing)}  # a new field needs a line here
    for name, value in changes.items():
        assert feature_keys(pairing_for(local_root, {name: value})).keys() == base.keys()
        changed = feature_keys(pairing_for(local_root, {name: value}))
        assert all(changed[s] != base[s] for s in base), name
    assert all(feature_keys(pairing_for(local_root, precision=Precision.BF16))[s] != base[s] for s in base)


def test_the_encoder_weights_and_feature_choice_change_the_feature_keys(local_root, tmp_path):
    random = load_encoder("timm:resnet18")
    weights = tmp_path / "w.pth"
    state = {k: v + 1 if v.is_floating_point() else v for k, v in random.model.state_dict().items()}
    torch.save(state, weights)
    trained = load_encoder(f"timm:resnet18@{weights}")
    keys = [feature_keys(pairing_for(local_root, encoder=e))["train"] for e in (random, trained, PIXELS)]
    assert len(set(keys)) == 3
    assert trained.identity["weights_sha256"] and random.identity["init_seed"] == 0
    assert load_encoder("timm:resnet18").identity == random.identity  # the same weights share entries


def test_dataset_content_rekeys_its_features_and_a_copy_with_its_times_does_not(tmp_path):
    from benchmark.data import fingerprint

    root = write_image_folder(tmp_path / "pets", {"train": {"a": 6, "b": 6}, "test": {"a": 3, "b": 3}})
    before = feature_keys(pairing_for(root))
    copy = tmp_path / "elsewhere" / "pets"
    shutil.copytree(root, copy)  # copy2: modification times kept
    fingerprint.forget()
    assert feature_keys(pairing_for(copy)) == before  # moved data keep their features
    image = next((root / "train" / "a").iterdir())
    image.write_bytes((root / "train" / "b").iterdir().__next__().read_bytes())  # one image replaced
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 10**9))
    fingerprint.forget()
    assert feature_keys(pairing_for(root)) != before
    (copy / "labels.txt").write_text("a\nb\n")  # a label-like file is hashed, not dated
    fingerprint.forget()
    labelled = feature_keys(pairing_for(copy))
    (copy / "labels.txt").write_text("b\na\n")
    fingerprint.forget()
    assert feature_keys(pairing_for(copy)) != labelled


def test_a_shared_component_rekeys_every_protocol_that_runs_it(local_root, monkeypatch):
    pairing = pairing_for(local_root)
    names = sorted(PROTOCOLS.names())
    before = {n: key_of(pairing, make_protocol(n)).digest for n in names}
    monkeypatch.setattr(SOLVERS, "version", SOLVERS.version + "-changed")
    after = {n: key_of(pairing, make_protocol(n)).digest for n in names}
    assert {n for n in names if before[n] != after[n]} == {"linear", "calibration", "lowshot"}  # the sweep's users
    monkeypatch.setattr(SCORING, "version", SCORING.version + "-changed")
    rescored = {n for n in names if after[n] != key_of(pairing, make_protocol(n)).digest}
    assert rescored == set(names) - {"quality"}  # the label-free diagnostics score nothing


def test_the_seed_is_a_field_of_the_cell_key_and_not_of_the_study_key(local_root):
    pairing = pairing_for(local_root)
    fewshot = [key_of(pairing, make_protocol("fewshot", {"seed": s}), seed=s) for s in (0, 1)]
    assert fewshot[0].digest != fewshot[1].digest and fewshot[0].study == fewshot[1].study
    assert "seed" not in fewshot[0].params and fewshot[0].seed == 0
    fixed = key_of(pairing, make_protocol("fewshot", {"seed": 7}))  # a suite that fixes it: a parameter
    assert fixed.params["seed"] == 7 and fixed.seed is None and fixed.study != fewshot[0].study
    linear = [key_of(pairing, make_protocol("linear"), seed=s) for s in (0, 3)]  # the hold-out's shuffle
    assert linear[0].digest != linear[1].digest and linear[0].study == linear[1].study
    assert "holdout_split" in linear[0].code


def test_every_pretraining_field_and_method_parameter_changes_the_config_identity():
    from benchmark.training import METHODS

    base = PretrainConfig(method="simclr", out="a.pt")
    changes = {"dataset": "mnist5k", "arch": "resnet34", "input_size": 64, "epochs": 2, "steps_per_epoch": 3,
               "batch_size": 8, "lr": 0.1, "weight_decay": 0.1, "warmup_fraction": 0.5, "seed": 1,
               "train_subset": 10, "small_stem": True, "arch_kwargs": {"drop_rate": 0.1}, "method": "byol"}
    assert set(changes) | {"out", "device", "data_root", "method_params"} == {
        f.name for f in dataclasses.fields(PretrainConfig) if f.name != "constraints"}
    for name, value in changes.items():
        assert dataclasses.replace(base, **{name: value}).identity() != base.identity(), name
    for method in METHODS.names():
        params = METHODS.get(method).Params
        config = dataclasses.replace(base, method=method)
        for f in dataclasses.fields(params):
            if f.name != "constraints":
                value = alternatives(params.constraints[f.name], getattr(params(), f.name))[0]
                changed = dataclasses.replace(config, method_params={f.name: value})
                assert changed.identity() != config.identity(), f"{method}.{f.name}"


def test_plan_why_names_the_fields_that_differ(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", {"textures": {}}, {"knn": {}}, {"input_size": 16})
    store = ["--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "cache")]
    assert main(["evaluate", "--suite", str(suite), "--model", "pixels:4", *store]) == 0
    write_suite(suite, {"textures": {}}, {"knn": {"k": [10]}}, {"input_size": 12})
    capsys.readouterr()
    assert main(["plan", "--suite", str(suite), "--why", "pixels:4", "textures", "knn", *store]) == 0
    out = capsys.readouterr().out
    assert "params.k: [10,20,100,200] -> [10]" in out and "code.knn = \"1.0\"" in out
    assert "test features: preprocessing.input_size: 16 -> 12" in out
    assert main(["plan", "--suite", str(suite), "--why", "pixels:4", "textures", "linear", *store]) == 2


def test_differences_reads_nested_fields():
    old = {"params": {"k": [10], "t": 0.07}, "seed": None}
    assert differences(old, {"params": {"k": [20], "t": 0.07}, "seed": 1}) == ["params.k: [10] -> [20]",
                                                                              "seed: null -> 1"]


def test_registries_resolve_one_module_and_know_where_a_name_is_defined():
    code = ("import sys; from benchmark.protocols import PROTOCOLS; PROTOCOLS.get('knn'); "
            "print('benchmark.protocols.finetune' in sys.modules, PROTOCOLS.where('knn'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False ") and "benchmark/protocols/knn.py:" in out and "WeightedKNN" in out


@pytest.mark.parametrize("package, registry", [("benchmark.protocols", "PROTOCOLS"), ("benchmark.training.methods",
                                                                                     "METHODS")])
def test_the_registry_index_finds_every_plugin_the_imports_register(package, registry):
    import importlib

    owner = importlib.import_module(package.rsplit(".", 1)[0] if registry == "METHODS" else package)
    names = set(getattr(owner, registry).names())
    assert names == set(package_index(package)) & names and names <= set(package_index(package))


def test_keys_hold_every_field_whether_set_or_not(local_root):
    """No "only when set" fields: an unset option is a null field, and each kind names the code behind it."""
    from benchmark.pipeline.inputs import pairing_key

    pairing = pairing_for(local_root)
    assert set(pairing.dataset.identity) == {"name", "version", "revision", "train_subset", "test_subset", "source",
                                             "content"}
    assert pairing.dataset.identity["test_subset"] is None and pairing.dataset.identity["content"]
    pooled, dense = (pairing_key(pairing, "train", kind).fields() for kind in (FeatureKind.POOLED, FeatureKind.DENSE))
    assert set(pooled) == set(dense) and pooled["precision"] == "fp32"
    assert differences(pooled, dense) == ['code.dense_maps: "<absent>" -> "2"', 'kind: "pooled" -> "dense"']


V1_RESULTS = ("CREATE TABLE results (id INTEGER PRIMARY KEY AUTOINCREMENT, created_at REAL NOT NULL, suite TEXT NOT NULL, "
              "encoder TEXT NOT NULL, encoder_spec TEXT NOT NULL, encoder_identity TEXT NOT NULL, random_init INTEGER "
              "NOT NULL, dataset TEXT NOT NULL, protocol TEXT NOT NULL, protocol_version TEXT NOT NULL, metric TEXT NOT "
              "NULL, value REAL NOT NULL, params TEXT NOT NULL, chosen TEXT NOT NULL, details TEXT NOT NULL, "
              "preprocessing TEXT NOT NULL, split_sizes TEXT NOT NULL, cache_keys TEXT NOT NULL, seed INTEGER NOT NULL, "
              "package_version TEXT NOT NULL, code_revision TEXT NOT NULL, seconds REAL NOT NULL, cell_key TEXT NOT NULL, "
              "per_example TEXT NOT NULL DEFAULT '{}', precision TEXT NOT NULL DEFAULT 'fp32', device TEXT NOT NULL "
              "DEFAULT 'cpu', protocol_kind TEXT NOT NULL DEFAULT '', encoder_facts TEXT NOT NULL DEFAULT '{}', "
              "environment TEXT NOT NULL DEFAULT '{}')")


def test_a_version_1_store_is_recomputed_never_reused_or_mixed(tmp_path, capsys):
    import sqlite3

    from benchmark.results import ResultsStore

    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as db:
        db.execute(V1_RESULTS)
        for seed, value in ((0, 11.0), (1, 13.0)):  # one v1 study at two seeds
            db.execute("INSERT INTO results (created_at, suite, encoder, encoder_spec, encoder_identity, random_init, "
                       "dataset, protocol, protocol_version, metric, value, params, chosen, details, preprocessing, "
                       "split_sizes, cache_keys, seed, package_version, code_revision, seconds, cell_key) VALUES (0, "
                       "'tiny', 'pixels:4', 'pixels:4', '{}', 0, 'textures', 'knn', '1.0', 'top1', ?, '{}', '{}', "
                       "'{}', '{}', '{}', '{}', ?, '0.1.0', 'old', 1.0, 'v1key')", (value, seed))
    before = ResultsStore(path).latest().set_index("protocol").loc["knn"]
    assert before["value"] == 13.0 and before["seed_values"] == {1: 13.0}  # v1 rows are never combined
    suite = write_suite(tmp_path / "s.yaml", {"textures": {}}, {"knn": {}}, {"input_size": 16})
    assert main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--results", str(path),
                 "--cache-dir", str(tmp_path / "cache")]) == 0
    assert "1 computed, 0 reused" in capsys.readouterr().out
    after = ResultsStore(path).latest().set_index("protocol").loc["knn"]
    assert after["value"] not in (11.0, 13.0) and after["seed"] is None and after["seed_values"] == {}


@pytest.mark.parametrize("schema", ["CREATE TABLE users (name TEXT)",
                                    "CREATE TABLE results (id INTEGER PRIMARY KEY, body TEXT)"])
def test_another_applications_sqlite_file_is_refused_untouched(tmp_path, schema, capsys):
    import sqlite3

    path = tmp_path / "other.db"
    with sqlite3.connect(path) as db:
        db.execute(schema)
    original = path.read_bytes()
    suite = write_suite(tmp_path / "s.yaml", {"textures": {}}, {"knn": {}}, {"input_size": 16})
    assert main(["evaluate", "--suite", str(suite), "--model", "pixels:4", "--results", str(path)]) == 2
    assert path.read_bytes() == original and "not a transferbench results store" in capsys.readouterr().err


def test_a_seed_the_suite_fixes_stays_fixed_on_a_hold_out_dataset(tmp_path):
    """Fine-tuning validates on the seeded hold-out (so it depends on the run seed) and takes a `seed`
    parameter: one the suite fixes is kept, and the run seed still names the hold-out."""
    from benchmark.encoders import load_encoder
    from benchmark.pipeline.planner import plan_cells
    from benchmark.config import load_suite
    from benchmark.results import ResultsStore

    suite = load_suite(str(write_suite(tmp_path / "s.yaml", {"textures": {}}, {"finetune": {"seed": 7, "steps": 1}})))
    cells, _ = plan_cells(suite, load_encoder("timm:resnet18"), "timm:resnet18", ResultsStore(tmp_path / "r.sqlite"),
                          None)
    assert [(c.protocol.params.seed, c.seed, c.identity.params["seed"]) for c in cells] == [(7, 0, 7)]
