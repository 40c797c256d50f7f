import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqcpc.errors import DataError
from seqcpc.eval import probes
from seqcpc.eval.probes import Standardizer, linear_probe, prototypical_episodes, train_linear_probe


def blobs(n_per_class=100, num_classes=10, dim=20, spread=5.0, seed=0):
    """Gaussian blobs with unit noise around well-separated class means; returns shuffled (x, y)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, spread, (num_classes, dim))
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = means[y] + rng.normal(0, 1, (len(y), dim))
    perm = rng.permutation(len(y))
    return x[perm].astype(np.float32), y[perm]


def split(x, y, frac=0.5):
    n = int(len(y) * frac)
    return x[:n], y[:n], x[n:], y[n:]


def test_linear_probe_separable_blobs():
    res = linear_probe(*split(*blobs()))
    assert res["acc"] >= 0.99
    assert res["train_acc"] == 1.0
    assert isinstance(res["acc"], float) and isinstance(res["train_acc"], float)
    assert isinstance(res["pred"], np.ndarray) and res["pred"].shape == (500,)


def test_linear_probe_random_labels_is_chance_on_test():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 20)).astype(np.float32)
    y = rng.integers(0, 10, 4000)
    res = linear_probe(*split(x, y), num_classes=10)
    assert abs(res["acc"] - 0.1) < 0.04  # chance; the std of a 2000-sample accuracy is ~0.007
    assert res["train_acc"] > res["acc"] + 0.02  # it does fit (memorise) some of the noise


def test_probe_converges():
    x, y = blobs(num_classes=10)
    x = Standardizer.fit(x)(x)
    y_t = torch.as_tensor(y)

    def loss(probe):
        with torch.no_grad():
            return F.cross_entropy(probe(x), y_t).item()

    short, full = train_linear_probe(x, y, 10, max_iter=2), train_linear_probe(x, y, 10)
    # zero-initialised weights start at the uniform prior, log C
    assert loss(short) < math.log(10)
    assert loss(full) < 0.5 * loss(short) and loss(full) < 0.05
    assert (full(x).argmax(1) == y_t).all()


def test_probe_is_deterministic_and_accepts_tensors():
    x_tr, y_tr, x_te, y_te = split(*blobs(num_classes=4, spread=1.0))  # overlapping, so predictions vary
    a = linear_probe(x_tr, y_tr, x_te, y_te)
    b = linear_probe(*(torch.as_tensor(v) for v in (x_tr, y_tr, x_te, y_te)))
    assert a["acc"] == b["acc"] and np.array_equal(a["pred"], b["pred"])
    assert 0.5 < a["acc"] < 1.0


def test_adam_fallback_for_large_inputs(monkeypatch):
    x, y = blobs(spread=0.7)  # overlapping classes: the optimum is a finite loss that Adam has to reach
    x = Standardizer.fit(x)(x)
    y_t = torch.as_tensor(y)

    def loss(probe):
        with torch.no_grad():
            return probes._probe_loss(probe, x, y_t, 1e-4).item()

    reference = loss(train_linear_probe(x, y, 10))  # full-batch L-BFGS
    monkeypatch.setattr(probes, "FULL_BATCH_MAX_ELEMENTS", 0)
    monkeypatch.setattr(probes, "ADAM_BATCH", 100)  # 10 shuffled mini-batches per epoch
    monkeypatch.setattr(torch.optim, "LBFGS", None)  # the full-batch path must not run
    p1, p2 = train_linear_probe(x, y, 10), train_linear_probe(x, y, 10)
    assert torch.equal(p1.weight, p2.weight)
    assert reference <= loss(p1) < 1.05 * reference


def test_standardizer_uses_train_statistics():
    rng = np.random.default_rng(2)
    train = rng.normal(3.0, 2.0, (5000, 4)).astype(np.float32)
    train[:, 3] = 7.0  # a constant dimension must not divide by zero
    scale = Standardizer.fit(train)
    z = scale(train)
    assert z.dtype == torch.float32 and torch.isfinite(z).all()
    assert torch.allclose(z[:, :3].mean(0), torch.zeros(3), atol=1e-4)
    assert torch.allclose(z[:, :3].std(0), torch.ones(3), atol=1e-3)
    # a shifted split is scaled by the train statistics, not re-centred by its own: its mean is 4 / train std
    shifted = scale(train + 4.0)
    expected = torch.as_tensor(4.0 / train[:, :3].std(0))
    assert torch.allclose(shifted[:, :3].mean(0), expected, atol=1e-3) and (expected > 1.9).all()


def test_linear_probe_standardises_test_with_train_statistics():
    # two classes at -2 / +2 along dim 0; the test split holds only class 1, so its own mean is +2.  Scaled with
    # train statistics it stays on the class-1 side; re-centred with its own statistics half of it would flip.
    rng = np.random.default_rng(3)
    y_train = rng.integers(0, 2, 2000)
    x_train = rng.normal(size=(2000, 5)).astype(np.float32)
    x_train[:, 0] += 4.0 * y_train - 2.0
    x_test = rng.normal(size=(1000, 5)).astype(np.float32)
    x_test[:, 0] += 2.0
    res = linear_probe(x_train, y_train, x_test, np.ones(1000, dtype=int), num_classes=2)
    assert res["acc"] > 0.95


def test_prototypical_separated_clusters():
    x, y = blobs(n_per_class=20, num_classes=10, spread=10.0)
    res = prototypical_episodes(x, y, n_way=5, k_shot=1, n_query=5, episodes=100)
    assert res["mean"] >= 0.99 and res["episodes"] == 100


def test_prototypical_noise_is_chance():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(2000, 16)), rng.integers(0, 20, 2000)
    res = prototypical_episodes(x, y, n_way=5, k_shot=5, n_query=5, episodes=300)
    assert 0 < res["ci95"] < 0.03
    assert abs(res["mean"] - 1 / 5) < 2 * res["ci95"]


def test_prototypical_support_and_query_do_not_overlap():
    # two samples per class: a query drawn from the support set would match its own prototype every time
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(40, 8)), np.repeat(np.arange(20), 2)
    res = prototypical_episodes(x, y, n_way=5, k_shot=1, n_query=1, episodes=300)
    assert res["mean"] < 0.4


def test_prototypical_is_deterministic():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(500, 8)), rng.integers(0, 10, 500)
    a = prototypical_episodes(x, y, seed=1)
    assert a == prototypical_episodes(torch.as_tensor(x), torch.as_tensor(y), seed=1)
    assert a != prototypical_episodes(x, y, seed=2)


def test_prototypical_too_few_classes():
    x = np.zeros((46, 3))
    y = np.array([0] * 10 + [1] * 10 + [2] * 10 + [3] * 10 + [4] * 5 + [5])  # classes 4, 5 have < 6 samples
    with pytest.raises(ValueError, match="need 5 classes with >= 6 samples.*only 4 of 6"):
        prototypical_episodes(x, y, n_way=5, k_shot=1, n_query=5)
    assert prototypical_episodes(x, y, n_way=4, episodes=3)["episodes"] == 3


def test_a_probe_with_a_single_class_is_refused():
    x, y = blobs(n_per_class=20, num_classes=3)
    one = y == y[0]
    with pytest.raises(DataError, match="at least two classes"):
        linear_probe(x[one], y[one], x, y)
