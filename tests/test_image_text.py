"""Image-text retrieval: recall@k against a transcription of CLIP_benchmark's computation, the Karpathy
loaders on miniatures of the official layout, and a run with a real open_clip text tower."""

import numpy as np
import pytest
import torch

from benchmark.data import dataset_spec, load_split
from benchmark.errors import UserError
from benchmark.metrics import image_text_recalls
from benchmark.protocols import FeatureTask, Features, make_protocol
from tests.miniatures import write_karpathy


def clip_benchmark_recalls(image_emb, text_emb, text_to_image, k):
    """CLIP_benchmark's zeroshot_retrieval: scores (texts x images); a text's positive is its image;
    recall_at_k counts the positives among torch.topk's k; a query is found when that count is > 0."""
    scores = torch.as_tensor(text_emb) @ torch.as_tensor(image_emb).T
    positive = torch.zeros_like(scores, dtype=torch.bool)
    positive[torch.arange(len(scores)), torch.as_tensor(text_to_image)] = True

    def recall_at_k(s, p, k):
        top = torch.topk(s, k, dim=1)[1]
        onehot = torch.nn.functional.one_hot(top, num_classes=s.shape[1])
        return (onehot * p.view(s.shape[0], 1, s.shape[1])).sum(dim=(1, 2)) / p.sum(dim=1)

    text_to_image_recall = (recall_at_k(scores, positive, k) > 0).float().mean().item()
    image_to_text_recall = (recall_at_k(scores.T, positive.T, k) > 0).float().mean().item()
    return 100 * image_to_text_recall, 100 * text_to_image_recall


def test_recalls_equal_clip_benchmarks_computation(rng):
    counts = [5, 6, 5, 7, 5, 5, 5, 6]
    image_of_text = np.repeat(np.arange(len(counts)), counts)
    rows = np.full((len(counts), max(counts)), -1)
    for image in range(len(counts)):
        found = np.flatnonzero(image_of_text == image)
        rows[image, :len(found)] = found
    images = rng.normal(size=(len(counts), 16)).astype(np.float32)
    texts = (images[image_of_text] + 1.5 * rng.normal(size=(len(image_of_text), 16))).astype(np.float32)
    ours = image_text_recalls(rows, images @ texts.T, ks=(1, 2, 5))
    for k in (1, 2, 5):
        i2t, t2i = clip_benchmark_recalls(images, texts, image_of_text, k)
        assert ours[f"image_to_text_recall@{k}"] == pytest.approx(i2t)
        assert ours[f"text_to_image_recall@{k}"] == pytest.approx(t2i)
    assert 0 < ours["text_to_image_recall@1"] < ours["text_to_image_recall@2"] < 100  # a case that discriminates


def test_recalls_on_a_hand_made_case():
    rows = np.array([[0, 1], [2, -1]])  # image 0 has captions 0 and 1; image 1 has caption 2
    similarity = np.array([[0.1, 0.9, 0.5],    # image 0: caption 1 first -> found at 1
                           [0.8, 0.3, 0.2]])   # image 1: its caption 2 is last of 3 -> found at 3 only
    recalls = image_text_recalls(rows, similarity, ks=(1, 2))
    assert recalls["image_to_text_recall@1"] == 50 and recalls["image_to_text_recall@2"] == 50
    # captions as queries: caption 0 ranks image 1 first (0.8 > 0.1); caption 1 image 0; caption 2 image 0 first
    assert recalls["text_to_image_recall@1"] == pytest.approx(100 / 3)
    assert recalls["text_to_image_recall@2"] == 100


@pytest.mark.parametrize("layout, name", [("flickr30k", "flickr30k"), ("coco", "mscoco_captions")])
def test_karpathy_loaders_read_the_test_split_of_the_official_layout(tmp_path, layout, name):
    root = write_karpathy(tmp_path / name, layout)
    spec = dataset_spec(name)
    split = load_split(spec, "test", root)
    assert spec.splits == ("test",) and len(split) == 4  # train, restval and val images are not loaded
    folder = "flickr30k-images" if layout == "flickr30k" else "val2014"
    assert [p.parent.name for p in split.images.paths] == [folder] * 4
    captions = spec.texts(root)
    assert len(captions) == 5 + 6 + 5 + 5
    assert split.labels.tolist() == [[0, 1, 2, 3, 4, -1], [5, 6, 7, 8, 9, 10], [11, 12, 13, 14, 15, -1],
                                     [16, 17, 18, 19, 20, -1]]
    assert captions[5] == "A green picture number 2 take 0." and captions[16] == "A green picture number 5 take 0."
    assert split.image_tensor(1).shape == (3, 32, 40)


def test_a_missing_or_malformed_caption_file_names_the_download(tmp_path):
    with pytest.raises(UserError, match="caption_datasets.zip"):
        load_split(dataset_spec("flickr30k"), "test", tmp_path)
    (tmp_path / "dataset_coco.json").write_text('{"images": [{"split": "test", "filename": "a.jpg", '
                                                '"sentences": [{"raw": "a cat"}]}]}')  # COCO needs `filepath`
    with pytest.raises(UserError, match="lacks filepath"):
        load_split(dataset_spec("mscoco_captions"), "test", tmp_path)
    (tmp_path / "dataset_flickr30k.json").write_text('{"images": [{"split": "test", "filename": "a.jpg", '
                                                     '"sentences": [{"tokens": ["cat"]}]}]}')
    with pytest.raises(UserError, match="lacks a sentence's raw"):
        dataset_spec("flickr30k").texts(tmp_path)


def test_image_text_retrieval_with_a_real_open_clip_text_tower(tmp_path):
    """The runner hands the protocol cached image features and the dataset's captions; the value equals
    recall computed here from the model's own image and text embeddings."""
    import open_clip

    from benchmark.config import load_suite
    from benchmark.pipeline.runner import Evaluator, RunOptions
    from cli import main
    from tests.conftest import write_suite

    torch.manual_seed(0)
    clip = open_clip.create_model("ViT-S-32-alt", pretrained=None).eval()
    torch.save(clip.state_dict(), tmp_path / "clip.pt")
    root = write_karpathy(tmp_path / "flickr30k")
    suite = write_suite(tmp_path / "s.yaml", {"flickr30k": {"root": str(root)}},
                        {"image_text": {"ks": [1, 2]}, "knn": {}})
    model = f"open_clip:ViT-S-32-alt@{tmp_path / 'clip.pt'}"
    args = ["--suite", str(suite), "--cache-dir", str(tmp_path / "cache"), "--results", str(tmp_path / "r.sqlite")]
    assert main(["evaluate", *args, "--model", model]) == 0
    from benchmark.results import ResultsStore

    rows = ResultsStore(tmp_path / "r.sqlite").frame()
    assert rows["protocol"].tolist() == ["image_text"]  # k-NN does not score caption sets
    row = rows.iloc[0]
    evaluator = Evaluator(load_suite(str(suite)), RunOptions(cache_dir=tmp_path / "cache",
                                                             results_path=tmp_path / "other.sqlite"), echo=str)
    splits, _ = evaluator.features(evaluator.planned(model)[0].pairing)
    images = torch.nn.functional.normalize(torch.tensor(splits["test"].x), dim=-1)
    captions = dataset_spec("flickr30k").texts(root)
    with torch.no_grad():
        text = torch.nn.functional.normalize(clip.encode_text(open_clip.get_tokenizer("ViT-S-32-alt")(list(captions))),
                                             dim=-1)
    expected = image_text_recalls(splits["test"].y, (images @ text.T).numpy(), ks=(1, 2))
    assert row["details"]["image_to_text_recall@2"] == pytest.approx(expected["image_to_text_recall@2"])
    assert row["value"] == pytest.approx(np.mean(list(expected.values())), abs=1e-6)
    assert row["details"]["captions"] == 21 and row["details"]["images"] == 4 and row["metric"] == "mean_recall"


def test_image_text_needs_captions_and_a_text_tower(rng):
    features = Features(rng.normal(size=(3, 4)).astype(np.float32), np.array([[0], [1], [2]]))
    empty = Features(features.x[:0], features.y[:0])
    with pytest.raises(UserError, match="text tower"):
        make_protocol("image_text").evaluate(FeatureTask(features, empty, empty, 1, "mean_recall"))
