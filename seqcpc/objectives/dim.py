"""Deep InfoMax (Hjelm et al. 2019, "Learning deep representations by mutual information estimation and
maximization"): a sample's global vector against its own local features (positives) and other samples' (negatives).

Shapes: B batch, B' = W B samples of every rank, N local positions per sample (Gh Gw patches, or T latent steps),
D local dim, F global dim, c = objective.cells, P = objective.projection (the common space), H = objective.hidden.
The modality's `local_global` part gives the local features z (B, ..., D) and the global vector y (B, F):
  images  z: the patch encoder's latent grid (patches augmented as in CPC); y: its mean over the grid
  audio   z: the frame latents; y: the context averaged over the window
Small score networks (Linear, ReLU, Linear: the paper's encode-and-dot-product form, its 1x1 convolutions being
the same map at every position) take both into a common space, and a score is a dot product (scores (B, 1, B', N)
for seqcpc/objectives/infomax.py, y the one query vector of its sample):
  DIM(L)  y against each of the N local features: the paper's local objective, its mean over positions (weight
          objective.beta, the default objective)
  DIM(G)  y against the whole local map, averaged into c x c cells and flattened (the modality's map_cells: on
          sequences one cell, the mean over time) (weight objective.alpha)
under the Jensen-Shannon estimator or InfoNCE (objective.estimator), the loss being alpha DIM(G) + beta DIM(L) (the
paper's eq. 8 without its prior-matching term). The negatives are the other samples of the batch on every rank.
`embed` gives the modality's frozen (z, c), so every probe reads DIM features as it reads CPC's.
"""
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from seqcpc.core.gather import Gathers
from seqcpc.core.pretrainable import Pretrainable
from seqcpc.errors import ConfigError
from seqcpc.fields import choice, number, refuse_idle
from seqcpc.objectives.infomax import BOUNDS, chance, pair_scores
from seqcpc.objectives.registry import Objective
from seqcpc.objectives.two_views import least_devices, projection_head


@dataclass
class DIMConfig:
    """Deep InfoMax: a global vector scored against local features (seqcpc/objectives/dim.py)."""
    estimator: str = choice("jsd", ["jsd", "infonce"])  # the paper's Jensen-Shannon estimator, or InfoNCE
    beta: float = number(1.0, min=0)  # weight of the local objective DIM(L)
    alpha: float = number(0.0, min=0)  # weight of the global objective DIM(G)
    cells: int = number(2, min=1)  # DIM(G): the local map averaged into cells x cells cells (sequences: 1)
    hidden: int = number(512, min=1)  # the score networks' hidden layer
    projection: int = number(128, min=1)  # the common space the scores are dot products in


class DIM(Pretrainable, Gathers):
    def __init__(self, features: nn.Module, cfg: DIMConfig):
        super().__init__()
        self.features, self.bound, self.estimator = features, BOUNDS[cfg.estimator], cfg.estimator
        self.alpha, self.beta, self.cells = cfg.alpha, cfg.beta, cfg.cells
        if cfg.beta:  # DIM(L): the global vector and each local feature
            self.global_to_local = projection_head(features.dim, cfg.hidden, cfg.projection)
            self.to_local = projection_head(features.local_dim, cfg.hidden, cfg.projection)
        if cfg.alpha:  # DIM(G): the global vector and the pooled map
            self.global_to_map = projection_head(features.dim, cfg.hidden, cfg.projection)
            self.to_map = projection_head(features.cells_dim(cfg.cells), cfg.hidden, cfg.projection)

    def own(self, batch: int, device):
        """(B,) this rank's samples among the B' gathered."""
        return self.gather.rank * batch + torch.arange(batch, device=device)

    def forward(self, x, groups=None):
        """Returns (alpha DIM(G) + beta DIM(L), {"acc", "acc/local", "acc/global"}); `groups` is unused."""
        z, y = self.features(x)  # (B, ..., D), (B, F)
        own, terms = self.own(len(y), y.device), {}
        if self.beta:
            local = self.to_local(rearrange(z, "b ... d -> b (...) d"))  # (B, N, P)
            scores = pair_scores(self.global_to_local(y)[:, None], self.gather(local, grads=True))  # (B, 1, B', N)
            terms["local"] = (self.beta, *self.bound(scores, own))
        if self.alpha:
            whole = self.to_map(self.features.map_cells(z, self.cells))[:, None]  # (B, 1, P)
            scores = pair_scores(self.global_to_map(y)[:, None], self.gather(whole, grads=True))  # (B, 1, B', 1)
            terms["global"] = (self.alpha, *self.bound(scores, own))
        loss = sum(weight * term for weight, term, _ in terms.values())
        accs = {f"acc/{name}": acc for name, (_, _, acc) in terms.items()}
        return loss, {"acc": torch.stack(list(accs.values())).mean(), **accs}

    @torch.no_grad()
    def embed(self, x):
        """Frozen features of the un-augmented input, as a CPC model gives them: (z, c)."""
        return self.features.latents(x)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        samples = batch_size * self.gather.world
        return (self.beta * chance(self.estimator, samples, positions)
                + self.alpha * chance(self.estimator, samples, 1))


def check(cfg, modality, geometry) -> None:
    """Refuse a loss of no term, a map of more cells than the latents have, and a batch with no negatives."""
    section = cfg.objective
    if not section.alpha and not section.beta:
        raise ConfigError("objective.name=dim with objective.alpha=0 and objective.beta=0 has no loss: weigh the "
                          "local objective (beta, the paper's DIM(L)) or the global one (alpha, DIM(G)) above 0")
    refuse_idle(section, "objective", {"cells": (bool(section.alpha), "objective.alpha > 0 (DIM(G))")})
    if section.alpha:
        geometry.check_pool("objective.cells", section.cells)
    batch, devices = cfg.data.batch_size, least_devices(cfg.fabric)
    if batch * devices < 2:
        raise ConfigError(f"objective.name=dim with data.batch_size={batch} on {devices} device(s) has no "
                          f"negatives (the other samples of the batch); set data.batch_size >= 2")


DIM_OBJECTIVE = Objective(
    name="dim", config=DIMConfig, build=lambda parts, cfg: DIM(parts.local_global(), cfg), parts=("local_global",),
    check=check, defaults={"audio": {"cells": 1}},
    summary="Deep InfoMax: a global vector scored against its own and other samples' local features",
)
