"""Frozen-feature evaluation: linear and k-NN probes, prototypical few-shot episodes, and the baselines every
table has.

Shapes: N samples, D feature dim, C classes.  Features are float arrays (N, D), labels int arrays (N,);
either numpy arrays or torch tensors are accepted.  Results are plain Python floats and numpy arrays, so
they go straight into JSON reports.

The probes are generic: the speech recipe uses them for speaker and frame-level phone identity, the image
recipe for linear evaluation, label efficiency and few-shot accuracy.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.assembly import build_model, complete_config
from seqcpc.errors import DataError

# Above this many feature elements (N * D) the full-batch L-BFGS probe would hold too much in memory at once
# (the features, their logits and L-BFGS's history on the device), so training falls back to mini-batch Adam.
FULL_BATCH_MAX_ELEMENTS = 50_000_000
# Adam runs at least ADAM_EPOCHS epochs and at least ADAM_MIN_STEPS steps: with wide features (large D) the
# fallback starts at small N, where 20 epochs alone would be too few steps to converge.
ADAM_BATCH, ADAM_EPOCHS, ADAM_MIN_STEPS, ADAM_LR = 4096, 20, 3000, 1e-2
PREDICT_CHUNK = 65_536
DEFAULT_L2 = 1e-4  # the probe's weight penalty, unless chosen from a grid (select_l2)


def _features(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x.detach().cpu(), dtype=torch.float32)


def _labels(y) -> torch.Tensor:
    return torch.as_tensor(np.asarray(y) if not torch.is_tensor(y) else y.detach().cpu()).long()


class Standardizer:
    """Per-dimension z-scoring with statistics from the training split only, so no test information leaks."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor):
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, x) -> "Standardizer":
        std, mean = torch.std_mean(_features(x), dim=0, correction=0)
        # a constant dimension (e.g. a dead unit) would otherwise divide by zero
        return cls(mean, std.clamp_min(1e-6))

    def __call__(self, x) -> torch.Tensor:
        return (_features(x) - self.mean) / self.std


def _probe_loss(probe: nn.Linear, x, y, l2: float) -> torch.Tensor:
    # the bias is not penalised: it only has to match the class prior
    return F.cross_entropy(probe(x), y) + l2 * probe.weight.pow(2).sum()


def train_linear_probe(x, y, num_classes: int, *, l2: float = DEFAULT_L2, max_iter: int = 200,
                       device="cpu") -> nn.Linear:
    """Multinomial logistic regression (D -> C) on features that are already standardised (see linear_probe).

    Full-batch L-BFGS with a strong-Wolfe line search solves this convex problem to convergence, where a few
    epochs of SGD tend to stop near the class prior.  When N * D exceeds FULL_BATCH_MAX_ELEMENTS it falls back
    to mini-batch Adam with a cosine schedule.  The weights start at zero and the batch order comes from a
    fixed seed, so the result is deterministic.
    """
    x, y = _features(x), _labels(y)
    probe = nn.Linear(x.shape[1], num_classes).to(device)
    nn.init.zeros_(probe.weight)  # the optimum is unique (l2 > 0), so a random start buys nothing
    nn.init.zeros_(probe.bias)
    if x.numel() <= FULL_BATCH_MAX_ELEMENTS:
        x, y = x.to(device), y.to(device)
        opt = torch.optim.LBFGS(probe.parameters(), lr=1, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = _probe_loss(probe, x, y, l2)
            loss.backward()
            return loss

        opt.step(closure)
        return probe
    opt = torch.optim.Adam(probe.parameters(), lr=ADAM_LR)
    steps_per_epoch = -(-len(x) // ADAM_BATCH)
    epochs = max(ADAM_EPOCHS, -(-ADAM_MIN_STEPS // steps_per_epoch))
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=gen).split(ADAM_BATCH):
            opt.zero_grad()
            _probe_loss(probe, x[idx].to(device), y[idx].to(device), l2).backward()
            opt.step()
            sched.step()
    return probe


@torch.no_grad()
def _predict(probe: nn.Linear, x: torch.Tensor) -> np.ndarray:
    # in chunks so a large test split never needs all its (N, C) logits on the device at once
    device = probe.weight.device
    return torch.cat([probe(chunk.to(device)).argmax(1).cpu() for chunk in x.split(PREDICT_CHUNK)]).numpy()


def random_subset(n: int, count: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of `count` of range(n) drawn at random (all of them when count >= n)."""
    return np.sort(np.random.default_rng(seed).permutation(n)[:count])


def per_class_choice(y, count, seed: int = 0) -> np.ndarray:
    """Sorted indices of a class-stratified random sample: `count(class size)` members of each class."""
    y = _labels(y).numpy()
    rng, picked = np.random.default_rng(seed), []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        picked.append(rng.choice(members, count(len(members)), replace=False))
    return np.sort(np.concatenate(picked))


def balanced_subset(y, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced random subset: round(fraction * class size) per class, at least one."""
    return per_class_choice(y, lambda n: max(1, round(fraction * n)), seed)


def stratified_holdout(y, fraction: float, seed: int = 0) -> np.ndarray:
    """A boolean mask holding out `fraction` of each class (none of a class with a single sample)."""
    held = np.zeros(len(y), dtype=bool)
    held[per_class_choice(y, lambda n: min(round(fraction * n), n - 1), seed)] = True
    return held


def select_l2(x, y, num_classes: int, grid, fraction: float = 0.2, seed: int = 0, **kw) -> float:
    """The l2 of `grid` whose probe, fitted on the rest of the (standardised) training features, scores best on
    a stratified held-out `fraction` of them. The test split is never looked at."""
    held = torch.as_tensor(stratified_holdout(y, fraction, seed))
    x, y = _features(x), _labels(y)
    scores = []
    for l2 in grid:
        probe = train_linear_probe(x[~held], y[~held], num_classes, l2=l2, **kw)
        scores.append((_predict(probe, x[held]) == y[held].numpy()).mean())
    return float(grid[int(np.argmax(scores))])


def linear_probe(x_train, y_train, x_test, y_test, num_classes: int | None = None, l2_grid=None, seed: int = 0,
                 **kw) -> dict:
    """Standardise with the train statistics, fit the probe on train, score both splits.

    With an `l2_grid` the penalty is chosen on held-out training features (select_l2), then the probe is refit
    on all of them (`seed` draws the held-out part). Returns {"acc": test accuracy, "train_acc": train
    accuracy, "pred": (N_test,) predicted classes, "l2": the penalty used}. kw goes to train_linear_probe (l2,
    max_iter, device).
    """
    y_train, y_test = _labels(y_train), _labels(y_test)
    present = torch.unique(y_train)
    if len(present) < 2:  # every feature set would score 100%: a number that says nothing
        raise DataError(f"a linear probe needs at least two classes, but its training labels hold only "
                        f"{present.tolist()}")
    if num_classes is None:
        num_classes = int(max(y_train.max(), y_test.max())) + 1
    scale = Standardizer.fit(x_train)
    x_train, x_test = scale(x_train), scale(x_test)
    if l2_grid:
        kw["l2"] = select_l2(x_train, y_train, num_classes, list(l2_grid), seed=seed,
                             **{k: v for k, v in kw.items() if k != "l2"})
    probe = train_linear_probe(x_train, y_train, num_classes, **kw)
    pred = _predict(probe, x_test)
    return {"acc": float((pred == y_test.numpy()).mean()),
            "train_acc": float((_predict(probe, x_train) == y_train.numpy()).mean()),
            "pred": pred, "l2": kw.get("l2", DEFAULT_L2)}


KNN_ELEMENTS = 1 << 24  # similarities held at once: test points are scored in chunks of this many / N_train


@torch.no_grad()
def knn_probe(x_train, y_train, x_test, y_test, k: int = 20, *, weighted: bool = False,
              temperature: float = 0.07, device="cpu") -> dict:
    """k-nearest-neighbour classification by cosine similarity of features standardised with the train statistics.

    Each test sample's k most similar training samples vote for their labels: one vote each, or exp(similarity /
    temperature) each when `weighted` (the k-NN monitor of Wu et al. 2018 and DINO). The class with the most
    votes wins; a tie goes to the tied class whose neighbours have the larger summed similarity, then to the
    smaller class index, so the result is deterministic. Test samples are scored in chunks, one matrix product
    each. Returns {"acc": test accuracy, "pred": (N_test,) predicted classes, "k": the k used (at most N_train)}.
    """
    y_train, y_test = _labels(y_train), _labels(y_test)
    if len(torch.unique(y_train)) < 2:  # every feature set would score 100%: a number that says nothing
        raise DataError(f"a k-NN probe needs at least two classes, but its training labels hold only "
                        f"{torch.unique(y_train).tolist()}")
    scale = Standardizer.fit(x_train)
    train = F.normalize(scale(x_train), dim=1).to(device)  # (N, D), unit rows: a product is a cosine
    test = F.normalize(scale(x_test), dim=1)
    y_train, k = y_train.to(device), min(k, len(y_train))
    classes = int(max(y_train.max(), y_test.max())) + 1
    preds = []
    for chunk in test.split(max(1, KNN_ELEMENTS // len(train))):
        sim, idx = (chunk.to(device) @ train.T).topk(k, dim=1)  # (B, k) similarities and train indices
        labels = y_train[idx]  # (B, k)
        weight = (sim / temperature).exp() if weighted else torch.ones_like(sim)
        votes = torch.zeros(len(chunk), classes, device=device).scatter_add_(1, labels, weight)  # (B, C)
        closeness = torch.zeros_like(votes).scatter_add_(1, labels, sim)  # (B, C)
        tied = votes == votes.amax(1, keepdim=True)
        preds.append(closeness.masked_fill(~tied, -math.inf).argmax(1).cpu())  # argmax: the first of equals
    pred = torch.cat(preds).numpy()
    return {"acc": float((pred == y_test.numpy()).mean()), "pred": pred, "k": k}


def prototypical_episodes(x, y, *, n_way: int = 5, k_shot: int = 1, n_query: int = 5, episodes: int = 300,
                          seed: int = 0) -> dict:
    """Few-shot accuracy of nearest-prototype classification over random N-way K-shot episodes.

    Each episode draws n_way classes among those with at least k_shot + n_query samples, then k_shot support
    and n_query query samples per class without overlap.  A class prototype is the mean of its support
    embeddings; each query takes the class of the nearest prototype (Euclidean).  Returns {"mean": mean
    episode accuracy, "ci95": 1.96 * std / sqrt(episodes), "episodes": episodes}.
    """
    x, y = _features(x).numpy(), _labels(y).numpy()
    per_class = k_shot + n_query
    order = np.argsort(y, kind="stable")
    classes, starts, counts = np.unique(y[order], return_index=True, return_counts=True)
    eligible = np.flatnonzero(counts >= per_class)
    if len(eligible) < n_way:
        raise ValueError(f"{n_way}-way {k_shot}-shot episodes with {n_query} queries need {n_way} classes with "
                         f">= {per_class} samples each; only {len(eligible)} of {len(classes)} classes have that")
    rng = np.random.default_rng(seed)
    accs = np.empty(episodes)
    for e in range(episodes):
        chosen = rng.choice(eligible, n_way, replace=False)
        # (n_way, k_shot + n_query) sample indices; the first k_shot of each row are the support set
        idx = np.stack([order[starts[c] + rng.choice(counts[c], per_class, replace=False)] for c in chosen])
        emb = x[idx]  # (n_way, k_shot + n_query, D)
        protos = emb[:, :k_shot].mean(1)  # (n_way, D)
        queries = emb[:, k_shot:].reshape(-1, x.shape[1])  # (n_way * n_query, D), class-major
        dist = ((queries[:, None] - protos[None]) ** 2).sum(-1)  # (n_way * n_query, n_way)
        accs[e] = (dist.argmin(1) == np.repeat(np.arange(n_way), n_query)).mean()
    return episode_summary(accs)


def episode_summary(accs) -> dict:
    """(E,) episode accuracies -> {"mean", "ci95": 1.96 std / sqrt(E), "episodes": E}."""
    accs = np.asarray(accs, dtype=float)
    return {"mean": float(accs.mean()), "ci95": float(1.96 * accs.std() / np.sqrt(len(accs))), "episodes": len(accs)}


def feasible_shots(counts, cfg, what: str, log=print) -> list[int]:
    """The shot counts of `cfg.shots` for which at least cfg.n_way classes have shots + cfg.n_query samples
    (`counts`: samples per class); the others are reported as skipped, naming `what` the samples are."""
    counts = np.asarray(counts)
    shots = [k for k in cfg.shots if (counts >= k + cfg.n_query).sum() >= cfg.n_way]
    for k in sorted(set(cfg.shots) - set(shots)):
        log(f"few-shot {k}-shot skipped: fewer than probe.n_way={cfg.n_way} classes have {k} + "
            f"probe.n_query={cfg.n_query} {what}")
    return shots


def random_init(cfg, seed: int):
    """The random-weights baseline: the network of the run config `cfg` (completed from its data, as the run's
    own was), freshly built from a fixed seed."""
    cfg = complete_config(cfg)
    torch.manual_seed(seed)
    return build_model(cfg).eval()
