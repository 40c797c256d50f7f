"""Matching networks (Vinyals et al. 2016) and their registry entry.

Shapes: N ways, K shots, S = N K support items, R query items, F feature dim.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.fewshot.learners import EpisodeConfig, EpisodicLearner, check_class_major, learner_entry
from seqcpc.fields import number, refuse_idle
from seqcpc.objectives.registry import check_pool


@dataclass
class MatchingConfig(EpisodeConfig):
    """Matching networks on episodes (seqcpc/fewshot/matching.py)."""
    fce: bool = False  # full-context embeddings (support through a BiLSTM, queries through attention)
    fce_steps: int = number(3, min=1)  # read-out steps of the query's attention LSTM
    temperature: float = number(10.0, above=0)  # cosine similarities are multiplied by this


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

    def __init__(self, features: nn.Module, cfg: MatchingConfig, dim: int):
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


def check_matching(cfg, modality, geometry) -> None:
    check_pool(cfg, modality, geometry)
    refuse_idle(cfg.objective, "objective", {"fce_steps": (cfg.objective.fce, "objective.fce=true")})


MATCHING = learner_entry("matching", MatchingConfig, lambda features, cfg: MatchingNet(features, cfg, features.dim),
                         "matching networks: attention over the support set's cosine similarities", check_matching)
