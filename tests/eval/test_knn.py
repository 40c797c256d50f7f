"""The k-NN probe: cosine similarity on standardised features, votes, deterministic ties, chunked scoring."""
import numpy as np
import pytest
import torch

from seqcpc.errors import DataError
from seqcpc.eval import probes
from seqcpc.eval.probes import knn_probe


def test_knn_matches_a_hand_computed_example():
    # after standardising (mean 0, std 1 per dim) the train points sit at the four diagonals
    x_train = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=np.float32)
    y_train = np.array([0, 0, 1, 2])
    x_test = np.array([[2, 0.5],  # nearest: (1, 1) then (1, -1), both class 0
                       [-1, -0.9],  # nearest: (-1, -1) class 2, then (-1, 1) class 1: one vote each, 2 is closer
                       [0, -1]], dtype=np.float32)  # nearest: (1, -1) and (-1, -1) equally close: classes 0, 2
    res = knn_probe(x_train, y_train, x_test, np.array([0, 2, 2]), k=2)
    assert res["pred"].tolist() == [0, 2, 0]  # the exact tie goes to the smaller class index
    assert res["acc"] == pytest.approx(2 / 3) and res["k"] == 2
    assert knn_probe(x_train, y_train, x_test, np.array([0, 2, 2]), k=1)["pred"].tolist()[:2] == [0, 2]


def test_similarity_weighting_can_outvote_the_majority():
    x_train = np.array([[1, 0], [0.2, 1], [0.3, 1], [-1, -1]], dtype=np.float32)
    y_train = np.array([0, 1, 1, 2])
    x_test = np.array([[1, -0.05]], dtype=np.float32)  # very close to the single class-0 point
    assert knn_probe(x_train, y_train, x_test, [0], k=3)["pred"].tolist() == [1]  # two votes beat one
    assert knn_probe(x_train, y_train, x_test, [0], k=3, weighted=True, temperature=0.05)["pred"].tolist() == [0]


def test_knn_beats_chance_on_blobs_and_chunking_changes_nothing(monkeypatch):
    rng = np.random.default_rng(0)
    means = rng.normal(0, 3, (10, 16))
    y = np.repeat(np.arange(10), 40)
    x = (means[y] + rng.normal(0, 1, (len(y), 16))).astype(np.float32)
    perm = rng.permutation(len(y))
    x, y = x[perm], y[perm]
    res = knn_probe(x[:300], y[:300], x[300:], y[300:], k=5)
    assert res["acc"] >= 0.9  # chance is 0.1
    monkeypatch.setattr(probes, "KNN_ELEMENTS", 300 * 7)  # 7 test points a chunk
    assert (knn_probe(x[:300], y[:300], torch.from_numpy(x[300:]), y[300:], k=5)["pred"] == res["pred"]).all()


def test_random_labels_stay_near_chance_and_one_class_is_refused():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2000, 8)).astype(np.float32), rng.integers(0, 4, 2000)
    assert abs(knn_probe(x[:1000], y[:1000], x[1000:], y[1000:], k=10)["acc"] - 0.25) < 0.06
    with pytest.raises(DataError, match="two classes"):
        knn_probe(x[:10], np.zeros(10), x[10:20], np.zeros(10))


def test_k_larger_than_the_training_set_uses_every_point():
    x = np.array([[0, 1], [1, 0], [0, 2]], dtype=np.float32)
    res = knn_probe(x, [0, 1, 0], x[:1], [0], k=50)
    assert res["k"] == 3 and res["pred"].tolist() == [0]
