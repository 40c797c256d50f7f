"""What the contrastive family (SimCLR, MoCo v2, SDCLR) shares: two views of each sample, pooled features and
a projection head; each method is its own module (simclr.py, moco.py, sdclr.py) with its registry entry.

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
          patch encoder's norms are per sample, and moco refuses an encoder that normalises over the batch (its check)
  SDCLR   SimCLR with view 1 through the dense network and view 2 through its pruned twin
          (seqcpc/objectives/pruning.py), whose mask is recomputed from the dense weights every epoch
"""
from dataclasses import dataclass

import torch
from torch import nn

from seqcpc.core.gather import Gathers
from seqcpc.core.pretrainable import Pretrainable
from seqcpc.errors import ConfigError
from seqcpc.fields import number
from seqcpc.objectives.registry import check_pool


@dataclass
class TwoViewsConfig:
    """The encoder's pooled output goes through a projection head (Linear, ReLU, Linear) before the loss; the
    views are drawn by the modality (its options: objective.views)."""
    hidden: int = number(512, min=1)  # the projection head's hidden layer
    projection: int = number(128, min=1)  # ... and its output: what the loss compares
    temperature: float = number(0.2, above=0)  # cosine similarities are divided by this
    pool: int = number(1, min=1)  # images: the latent grid averaged into pool x pool cells before the head


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


def least_devices(fabric) -> int:
    """The fewest devices the fabric section can run on: devices as a count or a list of ids ("0,1"); `auto`
    and -1 may mean one."""
    devices = str(fabric.devices)
    count = int(devices) if devices.isdigit() else len([d for d in devices.split(",") if d.strip().isdigit()])
    return max(count, 1) * fabric.num_nodes


def check_batch_negatives(cfg, modality, geometry) -> None:
    """SimCLR's and SDCLR's negatives are the other samples of the batch, from every device: refuse a batch of
    one, whose loss would be 0 and accuracy 1 whatever the network learns."""
    check_pool(cfg, modality, geometry)
    batch, devices = cfg.data.batch_size, least_devices(cfg.fabric)
    if batch * devices < 2:
        raise ConfigError(f"objective.name={cfg.objective.name} with data.batch_size={batch} on {devices} device(s) "
                          f"has no negatives (they are the other samples of the batch), so it would score a loss of "
                          f"0 and an accuracy of 1; set data.batch_size >= 2 (or fabric.devices >= 2)")


def two_views_model(cls):
    """The builder of a two-view objective `cls`: the modality's pooled features (patches taken as they are: the
    views do the augmenting) and its views, configured by the section."""
    def build(parts, cfg):
        return cls(parts.pooled(cfg.pool, augment=False), parts.views(cfg.views), cfg)
    return build
