"""Published reference tables, leaderboards, plots, the HTML page, statistics and check-data."""

from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from benchmark.results.reference import compare, labelled, load_reference
from benchmark.results.table import render, results_table
from tests.conftest import write_suite
from tests.test_data import write_idx

PUBLISHED = {  # typed from the paper's tables as ../shared/spec/reference lists them
    ("SimCLR-v1", "fewshot 5-way 20-shot", "cropdiseases"): 94.03, ("BYOL", "fewshot 5-way 20-shot", "eurosat"): 89.62,
    ("Supervised", "fewshot 5-way 20-shot", "chestx"): 29.26, ("PCL-v1", "fewshot 5-way 20-shot", "isic"): 38.01,
    ("BYOL", "linear", "cars"): 56.40, ("Supervised", "linear", "imagenet"): 77.20,
    ("DeepCluster-v2", "finetune", "cifar100"): 85.15, ("InsDis", "linear", "pets"): 68.78,
}


def test_compare_renders_the_published_table_exactly():
    reference = labelled(load_reference("ericsson2021"))
    table = results_table(reference)
    assert table.shape == (14, 47)  # 14 encoders; Tables 1 (linear, fine-tune), 2, 3 and 8
    assert list(table.index[:3]) == ["InsDis", "MoCo-v1", "PCL-v1"] and table.index[-1] == "Supervised"
    assert list(dict.fromkeys(table.columns.get_level_values(0))) == [
        "linear", "finetune", "fewshot 5-way 20-shot", "fewshot 5-way 5-shot", "fewshot 5-way 50-shot"]
    for row in reference.itertuples():  # every published number sits in its cell, unchanged
        assert table.loc[row.encoder, (row.protocol, row.dataset)] == row.value
    for (encoder, protocol, dataset), value in PUBLISHED.items():
        assert table.loc[encoder, (protocol, dataset)] == value
    text = render(table, digits=2)
    assert "| SimCLR-v1 " in text and "94.03" in text and "fewshot 5-way 20-shot · cropdiseases" in text
    assert reference.loc[reference["protocol"] == "fewshot", "ci95"].notna().all()


def test_cli_table_compare_puts_our_cells_next_to_the_published_ones(tmp_path, capsys):
    import cli
    from benchmark.results import ResultsStore

    store_path = tmp_path / "runs.sqlite"
    ours = pd.DataFrame([{"encoder": "torchvision:resnet50@byol.pth", "dataset": "eurosat", "protocol": "fewshot",
                          "value": 88.62, "chosen": {"ways": 5, "shots": 20}},
                         {"encoder": "mine", "dataset": "eurosat", "protocol": "fewshot", "value": 1.0,
                          "chosen": {"ways": 5, "shots": 20}}])
    from benchmark.models import reference_names

    matched = compare(ours, load_reference("ericsson2021"), reference_names("ericsson2021", ours["encoder"]))
    assert matched.to_dict("records") == [{"encoder": "BYOL", "protocol": "fewshot", "setting": "5-way 20-shot",
                                           "dataset": "eurosat", "published": 89.62, "ours": 88.62,
                                           "difference": pytest.approx(-1.0)}]
    ResultsStore(store_path)  # an empty store: the published table alone
    assert cli.main(["table", "--compare", "ericsson2021", "--results", str(store_path)]) == 0
    out = capsys.readouterr().out
    assert "Published (Ericsson, Gouk & Hospedales" in out and "| DeepCluster-v2 " in out and "96.63" in out


class TableRows(HTMLParser):
    """Each table row as a list of (text, attributes) cells; header cells are th; embedded images."""

    def __init__(self):
        super().__init__()
        self.rows, self.scripts, self.images, self._cell = [], 0, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag in ("td", "th"):
            self._cell = [tag, "", dict(attrs)]
            self.rows[-1].append(self._cell)
        self.scripts += tag == "script"
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._cell[1] = " ".join(self._cell[1].split())
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell[1] += " " + data

    @property
    def headers(self) -> list[str]:
        return [text for tag, text, _ in self.rows[0] if tag == "th"]


def test_leaderboard_of_our_runs_writes_csvs_markdown_html_and_plots(tmp_path):
    from benchmark.config import load_suite
    from benchmark.results import ResultsStore
    from benchmark.results.leaderboard import write_leaderboard
    from benchmark.pipeline.runner import RunOptions, evaluate

    suite = load_suite(str(write_suite(tmp_path / "s.yaml", {"digits": {}, "lfw_faces": {}},
                                       {"linear": {"solver": "fast"}, "knn": {"k": [5]}})))
    options = RunOptions(cache_dir=tmp_path / "cache", results_path=tmp_path / "runs.sqlite")
    evaluate(["pixels:8", "pixels:4", "pixels:2"], suite, options, echo=lambda _: None)
    rows = ResultsStore(tmp_path / "runs.sqlite").latest("tiny")
    paths = write_leaderboard(rows, tmp_path / "board", "tiny", reference="linear·digits", suite_version=1)
    assert {p.name for p in paths} >= {"leaderboard_long.csv", "leaderboard_wide.csv", "leaderboard.md",
                                       "leaderboard.html", "heatmap.png", "ranks.png", "scatter.png"}
    wide = pd.read_csv(tmp_path / "board" / "leaderboard_wide.csv", index_col=0)
    assert len(wide) == 3 and wide["average_rank"].is_monotonic_increasing
    assert wide["code_revision"].notna().all() and wide["suite_version"].eq(1).all()
    assert wide["rank_ci_examples"].str.match(r"^\d\.\d\d-\d\.\d\d$").all() and "rank_ci_datasets" in wide
    pairwise = pd.read_csv(tmp_path / "board" / "pairwise_significance.csv", index_col=0)
    assert pairwise.shape == (3, 3) and pairwise.loc["pixels:8", "pixels:4"].endswith("/4")
    best = rows.loc[rows["dataset"].eq("digits") & rows["protocol"].eq("linear"), "value"].max()
    assert wide["linear·digits"].max() == pytest.approx(best, abs=0.01)
    assert len(pd.read_csv(tmp_path / "board" / "leaderboard_long.csv")) == len(rows) == 12
    page = TableRows()
    page.feed((tmp_path / "board" / "leaderboard.html").read_text())
    assert page.headers[:6] == ["encoder", "average rank ▼", "params M", "GFLOPs", "img per s", "mean linear ▲"]
    assert "linear digits ▲" in page.headers
    assert len(page.rows) == 4 and page.scripts == 1  # header row + one row per encoder; the sort script
    body = page.rows[1:]
    assert [r[0][1].split()[0] for r in body] == list(wide.index)  # best average rank first
    assert all("code_revision" in r[0][1] and "cache_keys" in r[0][1] for r in body)  # provenance, one click away
    column = page.headers.index("linear digits ▲")
    best_rows = [r for r in body if "best" in r[column][2].get("class", "")]
    assert [float(r[column][2]["data-value"]) for r in best_rows] == [pytest.approx(best)]
    assert all("±" in r[column][1] for r in body)  # value ± CI95
    assert len(page.images) == 3 and all(src.startswith("data:image/png;base64,") for src in page.images)
    for name in ("heatmap.png", "ranks.png", "scatter.png"):
        with Image.open(tmp_path / "board" / name) as image:
            assert image.format == "PNG" and image.width > 300 and image.height > 200
            assert np.asarray(image.convert("L")).std() > 10  # something was drawn


def test_correlations_on_the_published_table_match_pandas():
    from benchmark.results.leaderboard import correlations

    wide = results_table(load_reference("ericsson2021"))
    table = correlations(wide, "linear·imagenet").set_index("column")
    flat = wide.copy()
    flat.columns = [f"{p}·{d}" for p, d in wide.columns]
    for column in ("linear·cars", "fewshot·chestx"):
        assert table.loc[column, "spearman"] == pytest.approx(flat["linear·imagenet"].corr(flat[column], "spearman"))
        assert table.loc[column, "pearson"] == pytest.approx(flat["linear·imagenet"].corr(flat[column]))
    assert table.loc["linear·cars", "spearman"] > 0.5  # the paper's finding: ImageNet accuracy tracks natural images


def test_paired_tests_find_real_differences_and_not_ties():
    from benchmark.results.stats import episode_paired_test, mean_ci95, paired_bootstrap

    rng = np.random.default_rng(0)
    a = rng.random(2000) < 0.80
    b = a.copy()
    flip = rng.choice(2000, 120, replace=False)
    b[flip] = ~b[flip] & (rng.random(120) < 0.2)  # b loses about 100 correct answers
    difference, p = paired_bootstrap(a, b, resamples=2000)
    assert difference > 3 and p < 0.01
    assert paired_bootstrap(a, a, resamples=500) == (0.0, 1.0)
    episodes = rng.normal(80, 5, 600)
    assert episode_paired_test(episodes + 1.0 + rng.normal(0, 1, 600), episodes)[1] < 1e-6
    mean, half = mean_ci95(episodes)
    assert half == pytest.approx(1.96 * episodes.std() / np.sqrt(600))


def test_compare_command_reports_p_values_from_stored_rows(tmp_path, capsys):
    import cli

    suite = write_suite(tmp_path / "s.yaml", {"digits": {}}, {"linear": {"solver": "fast"}, "knn": {"k": [5]},
                                                              "fewshot": {"episodes": 50}})
    args = ["--suite", str(suite), "--results", str(tmp_path / "r.sqlite"), "--cache-dir", str(tmp_path / "c")]
    assert cli.main(["evaluate", "--model", "pixels:8", "--model", "pixels:2", *args]) == 0
    capsys.readouterr()
    assert cli.main(["compare", "pixels:8", "pixels:2", "--results", str(tmp_path / "r.sqlite")]) == 0
    out = capsys.readouterr().out
    assert out.count("paired bootstrap over test examples") == 2 and "paired t-test over episodes" in out


def test_check_data_names_the_short_split_and_its_official_count(tmp_path, rng, capsys):
    import cli

    raw = tmp_path / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, count in (("train", 60000), ("t10k", 20)):  # a truncated test split
        write_idx(raw / f"{prefix}-images-idx3-ubyte", np.zeros((count, 28, 28)))
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(count) % 10)
    suite = write_suite(tmp_path / "s.yaml", {"mnist": {}, "cifar10": {}}, {"knn": {}})
    assert cli.main(["check-data", "--suite", str(suite), "--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "split 'test' has 20 images, the official split has 10000" in out and "train 60000" in out
    assert "cifar10" in out and "not found" in out


def test_the_board_shows_dinos_cost_columns_beside_the_average_rank(tmp_path):
    from benchmark.config import load_suite
    from benchmark.pipeline.runner import RunOptions, evaluate
    from benchmark.results import ResultsStore
    from benchmark.results.leaderboard import leaderboard, write_leaderboard
    from tests.conftest import write_suite

    suite = write_suite(tmp_path / "s.yaml", {"digits": {}}, {"knn": {}}, {"input_size": 32})
    evaluate(["timm:resnet18", "pixels:8"], load_suite(str(suite)),
             RunOptions(cache_dir=tmp_path / "c", results_path=tmp_path / "r.sqlite"), echo=lambda _: None)
    rows = ResultsStore(tmp_path / "r.sqlite").latest("tiny")
    board = leaderboard(rows)
    assert list(board.columns[:4]) == ["average_rank", "params_M", "GFLOPs", "img_per_s"]
    resnet = board.loc["timm:resnet18 [random init]"]
    # ResNet-18 without its classifier: 11.18M parameters; 1.82 GMACs at 224 px, so 2 x 1.82 x (32/224)^2
    assert resnet["params_M"] == 11.18 and resnet["GFLOPs"] == pytest.approx(2 * 1.82 * (32 / 224) ** 2, rel=0.01)
    assert board.loc["pixels:8", "params_M"] == 0.0 and (board["img_per_s"] > 0).all()
    page = (write_leaderboard(rows, tmp_path / "board", "tiny") and (tmp_path / "board" / "leaderboard.html")).read_text()
    assert ">GFLOPs </th>" in page and ">params M </th>" in page
