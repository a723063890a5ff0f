"""Faithfulness: each protocol's number on small real features (digits through raw pixels) against an
independent transcription of the reference computation, run on the same arrays, to a stated tolerance.

Here: ssl-transfer's few-shot ProtoNet and DINO's `knn_classifier`, written in the references' own
structure (torch, their tensor shapes and calls). Elsewhere, one test per remaining protocol:
- linear: scikit-learn 1.3.2's Cython loss and gradient transcribed scalar by scalar, equal to the last
  bit, and a capped L-BFGS-B fit on it equal to ours (`test_protocols::test_reference_loss_is_scikit...`);
  the 2-class softmax; the installed scikit-learn's optimum where fits converge. scikit-learn 1.3.2 itself
  runs ssl-transfer's LinearTester in `scripts/faithfulness/` (a side environment: tests install nothing);
- mean per-class accuracy: ssl-transfer's confusion-matrix rule (`test_protocols::test_mean_per_class...`);
- calibration: netcal 1.1.3's temperature scaling (`test_more_protocols::test_scaled_ece_is_netcal...`)
  and the reference's folds;
- VOC mAP: ssl-transfer's `voc_eval_cls` (`test_protocols::test_voc_ap_edge_cases_are_the_reference_s`);
- zero-shot: open_clip's own towers as CLIP_benchmark uses them (`test_more_protocols::test_zero_shot...`);
- retrieval, instance retrieval, image-text recall: `test_quality_retrieval`, `test_instance_retrieval`
  (revisitop's compute_map), `test_image_text` (CLIP_benchmark's recall_at_k).
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from benchmark.protocols import Features, FeatureTask, make_protocol
from benchmark.vocab import Metric


def ssl_transfer_protonet(features: np.ndarray, support: np.ndarray, query: np.ndarray) -> tuple[float, float]:
    """ssl-transfer few_shot.py: per episode, ProtoNet.loss on (n_class, n_support) and (n_class, n_query)
    feature blocks: prototypes = support mean, euclidean_dist by expand, log_softmax(-dists), arg-max
    accuracy; the test reports mean(acc) and 1.96 * np.std(acc) / sqrt(episodes)."""
    z_all = torch.as_tensor(features, dtype=torch.float32)
    accuracies = []
    for xs_index, xq_index in zip(support, query):
        n_class, n_support = xs_index.shape
        n_query = xq_index.shape[1]
        target_inds = torch.arange(0, n_class).view(n_class, 1, 1).expand(n_class, n_query, 1).long()
        z = torch.cat([z_all[torch.as_tensor(xs_index.reshape(-1))], z_all[torch.as_tensor(xq_index.reshape(-1))]], 0)
        z_proto = z[:n_class * n_support].view(n_class, n_support, z.size(-1)).mean(1)
        zq = z[n_class * n_support:]
        n, m, d = zq.size(0), z_proto.size(0), zq.size(1)
        dists = torch.pow(zq.unsqueeze(1).expand(n, m, d) - z_proto.unsqueeze(0).expand(n, m, d), 2).sum(2)
        log_p_y = F.log_softmax(-dists, dim=1).view(n_class, n_query, -1)
        _, y_hat = log_p_y.max(2)
        accuracies.append(torch.eq(y_hat, target_inds.squeeze()).float().mean().item() * 100.0)
    return float(np.mean(accuracies)), 1.96 * float(np.std(accuracies)) / np.sqrt(len(accuracies))


def dino_knn_classifier(train_features, train_labels, test_features, test_labels, k, T, num_classes):
    """DINO eval_knn.py's knn_classifier on L2-normalised features: top-k cosine neighbours, one-hot
    labels weighted by exp(sim / T), classes sorted by summed weight; top-1 and top-5 in percent."""
    train_features = F.normalize(torch.as_tensor(train_features, dtype=torch.float32), dim=1).t()
    test_features = F.normalize(torch.as_tensor(test_features, dtype=torch.float32), dim=1)
    train_labels, test_labels = torch.as_tensor(train_labels), torch.as_tensor(test_labels)
    top1, top5, total = 0.0, 0.0, 0
    retrieval_one_hot = torch.zeros(k, num_classes)
    for idx in range(0, test_features.shape[0], 100):  # DINO's chunks of test images
        features, targets = test_features[idx:idx + 100], test_labels[idx:idx + 100]
        batch_size = targets.shape[0]
        similarity = torch.mm(features, train_features)
        distances, indices = similarity.topk(k, largest=True, sorted=True)
        candidates = train_labels.view(1, -1).expand(batch_size, -1)
        retrieved_neighbors = torch.gather(candidates, 1, indices)
        retrieval_one_hot.resize_(batch_size * k, num_classes).zero_()
        retrieval_one_hot.scatter_(1, retrieved_neighbors.view(-1, 1), 1)
        distances_transform = distances.clone().div_(T).exp_()
        probs = torch.sum(torch.mul(retrieval_one_hot.view(batch_size, -1, num_classes),
                                    distances_transform.view(batch_size, -1, 1)), 1)
        _, predictions = probs.sort(1, True)
        correct = predictions.eq(targets.data.view(-1, 1))
        top1 += correct.narrow(1, 0, 1).sum().item()
        top5 += correct.narrow(1, 0, min(5, k)).sum().item()
        total += targets.size(0)
    return top1 * 100.0 / total, top5 * 100.0 / total


@pytest.fixture
def digits(digits_features):
    (x, y), (xt, yt) = digits_features["train"], digits_features["test"]
    return FeatureTask(Features(x[:1150], y[:1150]), Features(x[1150:], y[1150:]), Features(xt, yt), 10, Metric.TOP1)


def test_fewshot_equals_ssl_transfers_protonet_on_the_same_episodes(digits, tmp_path):
    """Tolerance: exact up to float32 arithmetic (the same episodes, saved by the protocol and read back)."""
    path = tmp_path / "episodes.npz"
    result = make_protocol("fewshot", {"ways": 5, "shots": 5, "queries": 15, "episodes": 60,
                                       "episodes_file": str(path)}).evaluate(digits)
    saved = np.load(path)
    pool = np.concatenate([digits.train.x, digits.val.x, digits.test.x])  # the protocol's pool: every split
    mean, ci95 = ssl_transfer_protonet(pool, saved["support"], saved["query"])
    assert result.value == pytest.approx(mean, abs=1e-6)
    assert result.details["ci95"] == pytest.approx(ci95, abs=1e-6)
    assert 60 < mean < 100  # pixels separate digits well, not perfectly: a case that can fail


@pytest.mark.parametrize("k", [10, 20])
def test_knn_equals_dinos_knn_classifier(digits, k):
    """Tolerance: one test image (a near-tie of cosine similarities may order differently in float32)."""
    result = make_protocol("knn", {"k": [k], "headline_k": k}).evaluate(digits)
    top1, top5 = dino_knn_classifier(digits.trainval.x, digits.trainval.y, digits.test.x, digits.test.y, k, 0.07, 10)
    one_image = 100.0 / len(digits.test.y)
    assert result.value == pytest.approx(top1, abs=one_image + 1e-9)
    assert result.details["top5_by_k"][str(k)] == pytest.approx(top5, abs=one_image + 1e-9)
    assert top5 > top1 > 80
