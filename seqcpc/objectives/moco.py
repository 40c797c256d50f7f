"""MoCo v2 (Chen et al. 2020): the query is view 1 through the network, the key view 2 through a momentum copy of
it (an exponential moving average updated after every step, no gradient); InfoNCE of the query against its key
and a queue of earlier keys (seqcpc/objectives/queue.py), after which the batch's keys (from every rank) are
pushed. Batch statistics must not tell the key encoder which key belongs to which query, so an encoder that
normalises over the batch is refused."""
import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.errors import ConfigError
from seqcpc.fields import number
from seqcpc.objectives.infonce import hit_rate
from seqcpc.objectives.queue import KeyQueue
from seqcpc.objectives.registry import Objective, check_pool
from seqcpc.objectives.two_views import TwoViews, TwoViewsConfig, two_views_model


@dataclass
class MoCoConfig(TwoViewsConfig):
    """MoCo v2: a momentum key encoder and a queue of keys (seqcpc/objectives/moco.py)."""
    # the key encoder's moving average keeps this much a step
    momentum: float = number(0.99, min=0, below=1, why="at 1 the key encoder never moves from its first weights")
    queue: int = number(4096, min=1)  # keys of earlier batches kept as negatives


class MoCo(TwoViews):
    def __init__(self, features: nn.Module, views: nn.Module, cfg):
        super().__init__(features, views, cfg)
        self.momentum = cfg.momentum
        self.key_features, self.key_head = copy.deepcopy(self.features), copy.deepcopy(self.head)
        for p in [*self.key_features.parameters(), *self.key_head.parameters()]:
            p.requires_grad_(False)
        self.queue = KeyQueue(cfg.queue, cfg.projection, random=True)

    def key_pairs(self):
        """(key parameter or buffer, query's) pairs, in the same order."""
        return zip([*self.key_features.parameters(), *self.key_head.parameters()],
                   [*self.features.parameters(), *self.head.parameters()])

    @torch.no_grad()
    def on_step_end(self, step: int) -> None:
        """The key network moves towards the query network: k = m k + (1 - m) q."""
        for k, q in self.key_pairs():
            k.mul_(self.momentum).add_(q.detach(), alpha=1 - self.momentum)
        for k, q in zip(self.key_features.buffers(), self.features.buffers()):
            k.copy_(q)  # e.g. running statistics: the query network's

    def forward(self, x, groups=None):
        """Returns (InfoNCE of each query against its key and the queue, {"acc"}); `groups` is unused."""
        q = F.normalize(self.project(self.views(x)).float(), dim=-1)  # (B, P)
        with torch.no_grad():
            k = F.normalize(self.key_head(self.key_features(self.views(x))).float(), dim=-1)  # (B, P)
        negatives = self.queue.current()  # (Q', P), Q' < Q until the queue has filled
        logits = torch.cat([(q * k).sum(-1, keepdim=True), q @ negatives.T], dim=1) / self.temperature
        target = torch.zeros(len(q), dtype=torch.long, device=q.device)
        loss = F.cross_entropy(logits, target)
        if self.training:
            self.queue.push(self.gather(k))
        return loss, {"acc": hit_rate(logits.detach(), target).mean()}

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return math.log(1 + len(self.queue.keys))  # once the queue is full


def check(cfg, modality, geometry) -> None:
    check_pool(cfg, modality, geometry)
    mixing = modality.batch_statistics(cfg.model)
    if mixing:
        raise ConfigError(f"objective.name=moco with {mixing}: batch statistics would tell the key encoder which "
                          f"key belongs to which query; use a per-sample norm (e.g. model.encoder.norm=instance "
                          f"or layer)")


MOCO = Objective(
    name="moco", config=MoCoConfig, build=two_views_model(MoCo), parts=("pooled", "views"), check=check,
    summary="MoCo v2: InfoNCE of a view against a momentum encoder's key of the other and a queue of keys",
)
