"""evaluate_model: a model in memory through the same planner, cache, store and protocols."""

import pytest
import timm
import torch

from benchmark.api import evaluate_model
from benchmark.config import load_suite
from benchmark.encoders.checkpoint import save_checkpoint
from benchmark.pipeline.runner import RunOptions, evaluate
from tests.conftest import write_suite


@pytest.fixture
def suite(tmp_path):
    return write_suite(tmp_path / "s.yaml", {"textures": {}}, {"knn": {}, "linear": {"solver": "fast"}},
                       {"input_size": 32})


def test_an_in_memory_model_gives_the_rows_of_its_saved_checkpoint(tmp_path, suite):
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=3).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    store = {"cache_dir": tmp_path / "cache", "results_path": tmp_path / "r.sqlite"}
    rows = evaluate_model(model, str(suite), name="run", step=3, echo=lambda _: None, **store)
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # untouched
    assert set(rows["protocol"]) == {"knn", "linear"} and set(rows["encoder"]) == {"run@step3"}
    headless = timm.create_model("resnet18", num_classes=0)
    headless.load_state_dict({k: v for k, v in before.items() if not k.startswith("fc.")})
    path = save_checkpoint(tmp_path / "run.pt", arch="resnet18", state_dict=headless.state_dict(),
                           preprocessing=load_in_memory_preprocessing(model))
    report = evaluate([f"checkpoint:{path}"], load_suite(str(suite)),
                      RunOptions(cache_dir=tmp_path / "cache2", results_path=tmp_path / "r2.sqlite"), echo=lambda _: None)
    saved = {row.protocol: row.value for row in report.rows}
    assert dict(zip(rows["protocol"], rows["value"])) == pytest.approx(saved, abs=1e-9)


def load_in_memory_preprocessing(model):
    from benchmark.backbones import timm_preprocessing

    return timm_preprocessing(model)


def test_the_same_weights_are_reused_under_another_name_and_new_weights_are_not(tmp_path, suite, capsys):
    torch.manual_seed(0)
    model = timm.create_model("resnet18", num_classes=0)
    store = {"cache_dir": tmp_path / "cache", "results_path": tmp_path / "r.sqlite", "protocols": ["knn"]}
    evaluate_model(model, str(suite), name="a", **store)
    capsys.readouterr()
    evaluate_model(model, str(suite), name="b", **store)  # the same weights: rows found by their key
    assert "every cell already done" in capsys.readouterr().out
    with torch.no_grad():
        next(model.parameters()).add_(0.01)
    evaluate_model(model, str(suite), name="c", **store)
    assert "features extracted 2 split(s)" in capsys.readouterr().out


def test_a_module_without_preprocessing_is_one_message(tmp_path, suite):
    from benchmark.errors import UserError

    with pytest.raises(UserError, match="give preprocessing="):
        evaluate_model(torch.nn.Flatten(), str(suite), name="x", results_path=tmp_path / "r.sqlite")


def test_a_three_epoch_loop_evaluates_every_epoch(tmp_path, suite):
    """A plain training loop on a tiny network: each epoch's weights are their own rows, and the model
    trains on unaffected (its mode and weights stay the loop's)."""
    from benchmark.api import EvaluateEvery
    from benchmark.data import DATASETS, load_split
    from benchmark.preprocessing import Preprocessing

    torch.manual_seed(0)
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                                  torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
    head = torch.nn.Linear(32, 3)
    preprocessing = Preprocessing(input_size=32, resize_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    hook = EvaluateEvery(str(suite), name="tiny", options={
        "preprocessing": preprocessing, "protocols": ["knn"], "cache_dir": tmp_path / "cache",
        "results_path": tmp_path / "r.sqlite", "echo": lambda _: None})
    train = load_split(DATASETS.get("textures"), "train", None)
    transform = preprocessing.transform()
    images = torch.stack([transform(train.image_tensor(i)) for i in range(64)])
    labels = torch.as_tensor(train.labels[:64])
    optimizer = torch.optim.SGD([*network.parameters(), *head.parameters()], lr=0.5)
    for epoch in (1, 2, 3):
        network.train()
        for _ in range(5):
            loss = torch.nn.functional.cross_entropy(head(network(images)), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        hook(network, epoch)
        assert network.training
    assert [set(rows["encoder"]) for rows in hook.history] == [{"tiny@step1"}, {"tiny@step2"}, {"tiny@step3"}]
    identities = {rows["encoder_identity"][0]["state_sha256"] for rows in hook.history}
    assert len(identities) == 3  # each epoch's weights are their own cache entries and rows


def test_an_evaluation_period_below_one_is_one_message():
    from benchmark.api import EvaluateEvery
    from benchmark.errors import UserError

    with pytest.raises(UserError, match="every must be a whole number of epochs >= 1"):
        EvaluateEvery("offline", name="x", every=0)


def test_the_lightning_callback_evaluates_a_three_epoch_run_and_logs_each_cell(tmp_path, suite):
    """A Lightning Trainer on a tiny network, evaluated every epoch: rows per epoch's weights, the cells
    logged through the LightningModule, and the network left training on its own weights."""
    lightning = pytest.importorskip("lightning")
    from benchmark.callbacks import TransferbenchCallback
    from benchmark.data import DATASETS, load_split
    from benchmark.preprocessing import Preprocessing

    preprocessing = Preprocessing(input_size=32, resize_size=32, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    train = load_split(DATASETS.get("textures"), "train", None)
    images = torch.stack([preprocessing.transform()(train.image_tensor(i)) for i in range(64)])
    batches = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.as_tensor(train.labels[:64])),
                                          batch_size=16)

    class Tiny(lightning.LightningModule):
        def __init__(self):
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, stride=2), torch.nn.ReLU(),
                                                torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten())
            self.head = torch.nn.Linear(32, 3)

        def training_step(self, batch, _):
            x, y = batch
            return torch.nn.functional.cross_entropy(self.head(self.backbone(x)), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    torch.manual_seed(0)
    model = Tiny()
    callback = TransferbenchCallback(str(suite), name="tiny-pl", module="backbone", echo=lambda _: None, options={
        "preprocessing": preprocessing, "protocols": ["knn"], "cache_dir": tmp_path / "cache",
        "results_path": tmp_path / "r.sqlite"})
    trainer = lightning.Trainer(max_epochs=3, callbacks=[callback], accelerator="cpu", logger=False,
                                enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                default_root_dir=tmp_path)
    trainer.fit(model, batches)
    assert [set(rows["encoder"]) for rows in callback.history] == [{f"tiny-pl@step{e}"} for e in (1, 2, 3)]
    assert len({rows["encoder_identity"][0]["state_sha256"] for rows in callback.history}) == 3
    last = callback.history[-1]["value"].iloc[0]
    assert float(trainer.callback_metrics["transferbench/knn/textures"]) == pytest.approx(last)
    assert model.backbone.training and 0 < last <= 100


def test_the_lightning_callback_names_a_missing_encoder_attribute(suite):
    pytest.importorskip("lightning")
    from benchmark.callbacks import TransferbenchCallback
    from benchmark.errors import UserError

    with pytest.raises(UserError, match="has no module `encoder`"):
        TransferbenchCallback(str(suite), name="x", module="encoder").encoder(torch.nn.Linear(2, 2))
