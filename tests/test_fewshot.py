import numpy as np
import pytest

from benchmark.errors import UserError
from benchmark.protocols import Features, FeatureTask, make_protocol
from benchmark.protocols.fewshot import Episodes, prototype_accuracies, sample_episodes


def pool_data(digits_features):
    (x, y), (xt, yt) = digits_features["train"], digits_features["test"]
    empty = Features(x[:0], y[:0])
    return FeatureTask(Features(x, y), empty, Features(xt, yt), 10, "top1")


def loop_prototype_accuracies(features, episodes):
    """A direct per-episode transcription of the prototypical classifier."""
    accuracies = []
    for support, query in zip(episodes.support, episodes.query):
        prototypes = np.stack([features[rows].mean(0) for rows in support])
        correct = 0
        for true_class, rows in enumerate(query):
            for row in rows:
                distances = ((prototypes - features[row]) ** 2).sum(1)
                correct += int(np.argmin(distances) == true_class)
        accuracies.append(correct / query.size)
    return np.array(accuracies)


def test_vectorised_prototypes_equal_a_per_episode_loop(digits_features):
    x, y = digits_features["train"]
    episodes = sample_episodes(y, ways=5, shots=5, queries=15, episodes=40, seed=3)
    np.testing.assert_allclose(prototype_accuracies(x, episodes), loop_prototype_accuracies(x, episodes), atol=1e-12)


def test_episodes_are_valid_seeded_and_distinct(digits_features):
    _, y = digits_features["train"]
    a = sample_episodes(y, 5, 20, 15, 50, seed=0)
    b = sample_episodes(y, 5, 20, 15, 50, seed=0)
    c = sample_episodes(y, 5, 20, 15, 50, seed=1)
    assert a.digest == b.digest != c.digest
    assert a.support.shape == (50, 5, 20) and a.query.shape == (50, 5, 15)
    for support, query in zip(a.support, a.query):
        rows = np.concatenate([support, query], axis=1)
        assert len(set(y[rows[:, 0]])) == 5  # five different classes
        assert all(len(set(r)) == 35 and len(set(y[r])) == 1 for r in rows)  # distinct images of one class


def test_fewshot_reports_mean_and_ci_and_reuses_saved_episodes(digits_features, tmp_path):
    data = pool_data(digits_features)
    path = tmp_path / "episodes.npz"
    first = make_protocol("fewshot", {"episodes": 100, "episodes_file": str(path)}).evaluate(data)
    assert path.exists()
    again = make_protocol("fewshot", {"episodes": 100, "episodes_file": str(path), "seed": 9}).evaluate(data)
    assert again.per_example.episodes_digest == first.per_example.episodes_digest  # loaded, not resampled
    assert again.value == first.value and 90.0 < first.value <= 100.0
    pool = np.concatenate([data.train.x, data.val.x, data.test.x])
    saved = np.load(path)
    accuracies = 100 * loop_prototype_accuracies(pool, Episodes(saved["support"], saved["query"]))
    assert first.value == pytest.approx(accuracies.mean())
    assert first.details["ci95"] == pytest.approx(1.96 * np.std(accuracies) / np.sqrt(100))


def test_logreg_option_runs(digits_features):
    result = make_protocol("fewshot", {"episodes": 10, "shots": 5, "classifier": "logreg"}).evaluate(
        pool_data(digits_features))
    assert 80.0 < result.value <= 100.0


def test_too_few_images_in_a_class_names_it(digits_features):
    x, y = digits_features["train"]
    keep = np.flatnonzero((y != 7) | (np.cumsum(y == 7) <= 12))
    data = FeatureTask(Features(x[keep], y[keep]), Features(x[:0], y[:0]), Features(x[:0], y[:0]), 10, "top1")
    with pytest.raises(UserError, match=r"needs 35 images per class, but class 7 has 12"):
        make_protocol("fewshot").evaluate(data)
