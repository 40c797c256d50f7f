"""What the meta-learners trained on episodes share (prototypical networks, matching networks and MAML are
each a module: protonet.py, matching.py, maml.py, with their registry entries).

Shapes: N ways, K shots, Q queries per class, S = N K support items, R = N Q query items, F feature dim.
Every learner wraps a feature network `features` (x (B, ...) -> (B, F)) given by the modality (a pooled patch
encoder for images, a pooled conv encoder + recurrent context for audio). A training batch is one episode laid
out class-major (seqcpc/fewshot/episodes.py), so `forward` needs no labels: it splits the batch, scores the
queries against the support set and returns the cross-entropy and accuracy.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.core.pretrainable import Pretrainable
from seqcpc.fewshot.episodes import episode_sampler, split_episode
from seqcpc.fields import number
from seqcpc.objectives.registry import Objective, check_pool


@dataclass
class EpisodeConfig:
    """Meta-learning on episodes: a training batch is one episode of n_way classes of the training split, k_shot
    support and n_query query items each."""
    n_way: int = number(5, min=2)
    k_shot: int = number(1, min=1)
    n_query: int = number(15, min=1)
    episodes_per_epoch: int = number(100, min=1)  # per device; validation draws val_batches (or these) episodes
    pool: int = number(1, min=1)  # images: the latent grid averaged into pool x pool cells (sequences: 1, over time)


class EpisodicLearner(Pretrainable):
    """The contract of a few-shot learner: episode_logits(support, support labels, query, n_way) -> (R, N).
    Learners whose classifier works on frozen features (feature_level) also have classify(...) on features, so
    an evaluation can embed every item once and reuse the features across episodes."""

    feature_level = True

    def __init__(self, features: nn.Module, cfg: "EpisodeConfig"):
        super().__init__()
        self.features, self.n_way, self.k_shot = features, cfg.n_way, cfg.k_shot

    def forward(self, x, groups=None):
        """One class-major episode (N (K + Q), ...) -> (loss, {"acc"}); `groups` is unused."""
        support, y_support, query, y_query = split_episode(x, self.n_way, self.k_shot)
        logits = self.episode_logits(support, y_support, query, self.n_way)  # (R, N)
        loss = F.cross_entropy(logits.float(), y_query)
        return loss, {"acc": (logits.argmax(1) == y_query).float().mean()}

    def episode_logits(self, support, y_support, query, n_way: int):
        f = self.features(torch.cat([support, query]))  # (S + R, F): one pass, one set of batch statistics
        return self.classify(f[: len(support)], y_support, f[len(support):], n_way)

    def classify(self, f_support, y_support, f_query, n_way: int):
        raise NotImplementedError

    @torch.no_grad()
    def embed(self, x):
        """Frozen features (B, F)."""
        return self.features(x)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return math.log(self.n_way)


def class_major(f, n_way: int):
    """Support features (N K, F) in class-major order -> (N, K, F). Episodes from EpisodeSampler or
    draw_episodes are class-major; the labels are checked to be."""
    return rearrange(f, "(n k) f -> n k f", n=n_way)


def check_class_major(y_support, n_way: int) -> None:
    expected = torch.arange(n_way, device=y_support.device).repeat_interleave(len(y_support) // n_way)
    if not torch.equal(y_support, expected):
        raise ValueError("support labels must be class-major: 0 * K, 1 * K, ..., (N - 1) * K")


def episode_batches(dataset, cfg, world_size: int, rank: int, seed: int, train: bool, modality):
    """The loop's batch sampler of every learner: episodes of the dataset's classes (the modality's item labels)."""
    return episode_sampler(modality.item_labels(dataset), cfg, rank, seed, train, modality.items)


def learner_entry(name: str, config: type, build, summary: str, check=check_pool) -> Objective:
    """The registry entry of a learner: built on the modality's pooled features (`build(features, section)`),
    trained on episodes, scored on its own episodes."""
    return Objective(name=name, config=config, build=lambda parts, cfg: build(parts.pooled(cfg.pool), cfg),
                     parts=("pooled",), check=check, batch_sampler=episode_batches, episodic=True, summary=summary)
