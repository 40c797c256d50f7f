"""Meta-learners trained on episodes: prototypical networks and matching networks (MAML is in maml.py).

Shapes: N ways, K shots, Q queries per class, S = N K support items, R = N Q query items, F feature dim.
Every learner wraps a feature network `features` (x (B, ...) -> (B, F)) given by the modality (a pooled patch
encoder for images, a pooled conv encoder + recurrent context for audio). A training batch is one episode laid
out class-major (seqcpc/fewshot/episodes.py), so `forward` needs no labels: it splits the batch, scores the
queries against the support set and returns the cross-entropy and accuracy.
"""
import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.config import MetaConfig
from seqcpc.core.model import Pretrainable
from seqcpc.fewshot.episodes import split_episode


class EpisodicLearner(Pretrainable):
    """The contract of a few-shot learner: episode_logits(support, support labels, query, n_way) -> (R, N).
    Learners whose classifier works on frozen features (feature_level) also have classify(...) on features, so
    an evaluation can embed every item once and reuse the features across episodes."""

    feature_level = True

    def __init__(self, features: nn.Module, cfg: MetaConfig):
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


class ProtoNet(EpisodicLearner):
    """Snell et al. 2017: a class's prototype is the mean of its support features; logits are minus the squared
    Euclidean distances to the prototypes."""

    def classify(self, f_support, y_support, f_query, n_way: int):
        check_class_major(y_support, n_way)
        prototypes = class_major(f_support, n_way).mean(1)  # (N, F)
        return -torch.cdist(f_query, prototypes).pow(2)  # (R, N)


class FullContext(nn.Module):
    """Matching networks' full-context embeddings (Vinyals et al. 2016, appendix): the support set read by a
    bidirectional LSTM, g = f + h_forward + h_backward; each query refined by `steps` of an LSTM that attends
    over g, f' = h + f."""

    def __init__(self, dim: int, steps: int):
        super().__init__()
        self.support_lstm = nn.LSTM(dim, dim, batch_first=True, bidirectional=True)
        self.query_cell = nn.LSTMCell(dim, dim)
        self.steps = steps

    def forward(self, f_support, f_query):
        both, _ = self.support_lstm(f_support[None])  # (1, S, 2F)
        forward, backward = both[0].chunk(2, dim=-1)
        g = f_support + forward + backward  # (S, F)
        h, c = torch.zeros_like(f_query), torch.zeros_like(f_query)  # (R, F)
        for _ in range(self.steps):
            read = torch.softmax(h @ g.T, dim=-1) @ g  # (R, F): attention read-out of the support set
            h, c = self.query_cell(f_query, (h + read, c))
            h = h + f_query
        return g, h


class MatchingNet(EpisodicLearner):
    """Vinyals et al. 2016: attention over the support set, a = softmax(temperature * cos(f(query), g(support)));
    P(class c) = sum of the attention on c's support items; logits are log P."""

    def __init__(self, features: nn.Module, cfg: MetaConfig, dim: int):
        super().__init__(features, cfg)
        self.temperature = cfg.temperature
        self.context = FullContext(dim, cfg.fce_steps) if cfg.fce else None

    def classify(self, f_support, y_support, f_query, n_way: int):
        check_class_major(y_support, n_way)
        if self.context is not None:
            f_support, f_query = self.context(f_support, f_query)
        scores = self.temperature * F.normalize(f_query, dim=-1) @ F.normalize(f_support, dim=-1).T  # (R, S)
        per_class = rearrange(scores, "r (n k) -> r n k", n=n_way).logsumexp(-1)  # (R, N)
        return per_class - scores.logsumexp(-1, keepdim=True)  # log of the attention summed per class
