"""The contrastive family on the engine: SimCLR, MoCo v2 and SDCLR, for any modality.

Shapes: B batch, F pooled feature dim, H head hidden dim, P projection dim, Q queue size.
A model takes from its modality
  features  x (B, ...) -> (B, F): the modality's encoder (and context) pooled to one vector; its `latents(x)`
            gives the frozen features (z, c) as a CPC model's `embed` does, so every probe reads them alike
  views     x -> one random view of each sample (seqcpc/image/views.py, seqcpc/audio/views.py); views are drawn
            in validation too, so the validation loss measures the training task
and adds a projection head (Linear, ReLU, Linear) whose output the loss compares:
  SimCLR  NT-Xent between the projections of two views; the negatives are every other view of the batch,
          gathered from every rank (seqcpc/objectives/ntxent.py)
  MoCo v2 the query is view 1 through the network, the key view 2 through a momentum copy of it (an exponential
          moving average updated after every step, no gradient); InfoNCE of the query against its key and a
          queue of earlier keys (seqcpc/objectives/queue.py), after which the batch's keys (from every rank)
          are pushed. Batch statistics must not tell the key encoder which key belongs to which query: the
          patch encoder's norms are per sample, and on audio moco refuses batch norm (seqcpc/audio/build.py)
  SDCLR   SimCLR with view 1 through the dense network and view 2 through its pruned twin
          (seqcpc/objectives/pruning.py), whose mask is recomputed from the dense weights every epoch
"""
import copy
import math

import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.core.model import Pretrainable
from seqcpc.objectives.gather import Gathers
from seqcpc.objectives.infonce import hit_rate
from seqcpc.objectives.ntxent import nt_xent, nt_xent_chance
from seqcpc.objectives.pruning import SelfDamage
from seqcpc.objectives.queue import KeyQueue


def projection_head(dim: int, hidden: int, out: int) -> nn.Module:
    """Linear, ReLU, Linear: (B, dim) -> (B, out) (also the pretext tasks' classifier head)."""
    return nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


class TwoViews(Pretrainable, Gathers):
    """What the three share: features, views, the head and the frozen features."""

    def __init__(self, features: nn.Module, views: nn.Module, cfg):
        super().__init__()
        self.features, self.views, self.temperature = features, views, cfg.temperature
        self.head = projection_head(features.dim, cfg.hidden, cfg.projection)

    def train(self, mode: bool = True):
        super().train(mode)
        self.views.train(True)  # views are drawn in validation too
        return self

    def project(self, x):
        """x (B, ...) -> (B, P)."""
        return self.head(self.features(x))

    @torch.no_grad()
    def embed(self, x):
        """Frozen features of the un-augmented input, as a CPC model gives them: (z, c)."""
        return self.features.latents(x)


class SimCLR(TwoViews):
    def forward(self, x, groups=None):
        """Returns (NT-Xent, {"acc"}); `groups` is unused."""
        return nt_xent(self.project(self.views(x)), self.project(self.views(x)), self.temperature, self.gather)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return nt_xent_chance(batch_size * self.gather.world)


class SDCLR(SimCLR):
    """SimCLR between the dense network (view 1) and its pruned twin (view 2)."""

    def __init__(self, features: nn.Module, views: nn.Module, cfg):
        super().__init__(features, views, cfg)
        damage = SelfDamage(self, cfg.prune_ratio)  # built before it is attached: it does not prune itself
        self.damage = damage

    def forward(self, x, groups=None):
        dense = self.project(self.views(x))
        pruned = self.damage.call(self, self.views(x), method="project")
        return nt_xent(dense, pruned, self.temperature, self.gather)

    def on_epoch_start(self, epoch: int) -> None:
        self.damage.refresh(self, epoch)


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


MODELS = {"simclr": SimCLR, "moco": MoCo, "sdclr": SDCLR}


def build_contrastive(objective: str, features: nn.Module, views: nn.Module, cfg) -> TwoViews:
    """The model.objective's model on the modality's features and views, configured by model.contrastive."""
    if objective not in MODELS:
        raise ValueError(f"model.objective={objective!r} is not a contrastive objective ({', '.join(MODELS)})")
    return MODELS[objective](features, views, cfg)
