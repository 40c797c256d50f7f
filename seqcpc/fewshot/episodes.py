"""Episodes: N classes, K labelled support items and Q query items each, drawn from a labelled dataset.

Shapes: N ways, K shots, Q queries per class, E episodes.
An episode is laid out class-major, (N, K + Q) dataset indices whose first K columns are the support set, so
that a batch of one episode carries its labels in its order: the learner needs no label tensor, and the same
layout serves meta-training (EpisodeSampler, a batch sampler for the training loop) and evaluation
(draw_episodes). A class with fewer than K + Q items never enters an episode; it is reported once.
"""
import numpy as np
import torch
from einops import rearrange

from seqcpc.errors import DataError


class ClassIndex:
    """The dataset indices of each class with at least `per_class` items (labels < 0 mean "no class")."""

    def __init__(self, labels, per_class: int, n_way: int, what: str = "items", log=print):
        labels = np.asarray(labels)
        classes, counts = np.unique(labels[labels >= 0], return_counts=True)
        small = classes[counts < per_class]
        if len(small):
            log(f"episodes: {len(small)} of {len(classes)} classes have fewer than {per_class} {what} (the shots "
                f"plus the queries) and are left out, e.g. class {small[0]} with {counts[counts < per_class][0]}")
        self.members = [np.flatnonzero(labels == c) for c in classes[counts >= per_class]]
        if len(self.members) < n_way:
            raise DataError(f"{n_way}-way episodes with {per_class} {what} per class need {n_way} classes with at "
                            f"least {per_class} {what}; only {len(self.members)} of the {len(classes)} classes have "
                            f"that")
        self.per_class = per_class

    def draw(self, rng: np.random.Generator, n_way: int) -> np.ndarray:
        """(N, K + Q) dataset indices: n_way distinct classes, distinct items within each."""
        chosen = rng.choice(len(self.members), n_way, replace=False)
        return np.stack([rng.choice(self.members[c], self.per_class, replace=False) for c in chosen])


def draw_episodes(labels, n_way: int, k_shot: int, n_query: int, episodes: int, seed: int = 0,
                  what: str = "items", log=print) -> np.ndarray:
    """(E, N, K + Q) dataset indices of `episodes` episodes, the same for the same seed."""
    index = ClassIndex(labels, k_shot + n_query, n_way, what, log)
    rng = np.random.default_rng(seed)
    return np.stack([index.draw(rng, n_way) for _ in range(episodes)])


class EpisodeSampler:
    """A batch sampler yielding one episode per batch, flattened class-major (N (K + Q) indices). Each device
    draws its own episodes from (seed, epoch, rank); set_position skips the episodes a resumed run has done."""

    def __init__(self, labels, n_way: int, k_shot: int, n_query: int, episodes: int, rank: int = 0, seed: int = 0,
                 train: bool = True, what: str = "items", log=print):
        self.index = ClassIndex(labels, k_shot + n_query, n_way, what, log)
        self.n_way, self.episodes, self.rank, self.seed, self.train = n_way, episodes, rank, seed, train
        self.epoch, self.start = 0, 0

    def set_position(self, epoch: int, batches_done: int = 0) -> None:
        self.epoch, self.start = epoch, batches_done

    def __iter__(self):
        # validation (train=False) draws the same episodes every time
        rng = np.random.default_rng([self.seed, self.rank, int(self.train), self.epoch if self.train else 0])
        for e in range(self.episodes):
            episode = self.index.draw(rng, self.n_way)
            if e >= self.start:
                yield episode.reshape(-1).tolist()

    def __len__(self):
        return self.episodes - self.start


def split_episode(x: torch.Tensor, n_way: int, k_shot: int):
    """A class-major episode batch (N (K + Q), ...) -> (support (N K, ...), support labels (N K,), query
    (N Q, ...), query labels (N Q,)); labels are 0 .. N - 1 in the episode's class order."""
    episode = rearrange(x, "(n m) ... -> n m ...", n=n_way)  # (N, K + Q, ...)
    n_query = episode.shape[1] - k_shot
    labels = torch.arange(n_way, device=x.device)
    return (episode[:, :k_shot].flatten(0, 1), labels.repeat_interleave(k_shot),
            episode[:, k_shot:].flatten(0, 1), labels.repeat_interleave(n_query))


def episode_sampler(labels, cfg, rank: int, seed: int, train: bool, what: str = "items") -> EpisodeSampler:
    """The loop's batch sampler for a few-shot learner (Config `cfg`): the objective section's episodes; validation runs
    train.val_batches of them (or an epoch's worth), the same ones every time."""
    meta = cfg.objective
    episodes = meta.episodes_per_epoch if train else (cfg.train.val_batches or meta.episodes_per_epoch)
    split = "training" if train else "validation"
    try:
        return EpisodeSampler(labels, meta.n_way, meta.k_shot, meta.n_query, episodes, rank, seed, train, what,
                              log=lambda m: print(f"{split} {m}", flush=True) if rank == 0 else None)
    except DataError as err:
        raise DataError(f"the {split} split: {err}; lower objective.n_way, k_shot or n_query") from err
