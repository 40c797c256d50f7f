"""Augmented Multiscale Deep InfoMax (Bachman et al. 2019, "Learning representations by maximizing mutual
information across views"), on image CPC's patch encoder.

Shapes: B batch, B' = W B images of every rank, Gh x Gw patch grid, D latent dim, s a scale (cells a side),
H = objective.hidden, P = objective.projection, c = objective.clip, lambda = objective.penalty.
Two views of each image (the modality's views, objective.views, as SimCLR draws them) are cut into the patch grid
and encoded (no patch augment: the views do the augmenting). The paper's encoder gives features at several scales
(1x1 global, 5x5 and 7x7 local maps of a 128 px image); this one gives a latent grid, so a scale s is that grid
averaged into s x s cells (adaptive average pooling): 1 is the global vector, min(Gh, Gw) the grid itself
(Fashion-MNIST's 28 px images with 8 px patches every 4 px: a 6x6 grid, scales 1 to 6). Each scale has its own
embedding (Linear, ReLU, Linear into P dims), shared by both views and both roles.
A pair [a, b] of objective.pairs (the paper's 1-5, 1-7 and 5-5) makes each of the a x a cells of one view predict
each of the b x b cells of the other view, in both directions (view 1 -> view 2 and view 2 -> view 1): NCE with
every cell at scale b of the other images of the batch (every rank's) as negatives (seqcpc/objectives/infomax.py,
infonce). The authors draw one antecedent cell per image; here every cell is one (the grids are small).
Scores are dot products divided by sqrt(P), as the authors' released code does, then regularised as in the paper:
soft-clipped, s -> c tanh(s / c) (c = 20 in the paper), with lambda times the mean of the squared (unclipped)
scores added to the loss (the authors' code: lambda = 4e-2). The loss is the mean over pairs and directions.
`embed` gives the latent grid of the whole un-augmented image as both z and c, as the pretext tasks do.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.core.gather import Gathers
from seqcpc.core.model import mean_scores
from seqcpc.core.pretrainable import Pretrainable
from seqcpc.errors import ConfigError
from seqcpc.fields import number
from seqcpc.image.parts import image_size
from seqcpc.image.patches import grid_shape, patchify
from seqcpc.objectives.infomax import infonce_bound, pair_scores
from seqcpc.objectives.registry import Objective
from seqcpc.objectives.two_views import least_devices, projection_head


@dataclass
class AMDIMConfig:
    """AMDIM: features of one view at several scales predict the other view's (seqcpc/image/amdim.py)."""
    # [antecedent scale, consequent scale] pairs; a scale s is the latent grid averaged into s x s cells (1: global)
    pairs: list[list[int]] = number([[1, 3], [1, 6], [3, 3]], min=1)
    hidden: int = number(512, min=1)  # each scale's embedding: hidden layer
    projection: int = number(128, min=1)  # ... and output: the space the scores are dot products in
    clip: float = number(20.0, above=0)  # scores are soft-clipped to (-clip, clip) by clip * tanh(s / clip)
    penalty: float = number(4e-2, min=0)  # weight of the mean squared score added to the loss


def cells(z, scale: int):
    """z (B, Gh, Gw, D) -> (B, s^2, D): the grid averaged into s x s cells, row by row."""
    pooled = F.adaptive_avg_pool2d(rearrange(z, "b gh gw d -> b d gh gw"), scale)  # (B, D, s, s)
    return rearrange(pooled, "b d sh sw -> b (sh sw) d")


def regularised_nce(scores, own, clip: float, penalty: float):
    """scores (B, M, B', N) -> (NCE of the soft-clipped scores + penalty * mean squared score, acc)."""
    loss, acc = infonce_bound(clip * torch.tanh(scores / clip), own)
    return loss + penalty * scores.pow(2).mean(), acc


class AMDIM(Pretrainable, Gathers):
    def __init__(self, encoder: nn.Module, patch: int, stride: int, views: nn.Module, cfg: AMDIMConfig):
        super().__init__()
        self.encoder, self.patch, self.stride, self.views = encoder, patch, stride, views
        self.pairs = [tuple(pair) for pair in cfg.pairs]
        self.scales = sorted({scale for pair in self.pairs for scale in pair})
        self.to_embedding = nn.ModuleDict({str(s): projection_head(encoder.dim, cfg.hidden, cfg.projection)
                                           for s in self.scales})
        self.clip, self.penalty, self.projection = cfg.clip, cfg.penalty, cfg.projection

    def train(self, mode: bool = True):
        super().train(mode)
        self.views.train(True)  # views are drawn in validation too, so it measures the training task
        return self

    def embeddings(self, x) -> dict:
        """One random view of x (B, C, H, W) -> {scale: (B, s^2, P)}."""
        z = self.encoder(patchify(self.views(x), self.patch, self.stride))  # (B, Gh, Gw, D)
        return {s: self.to_embedding[str(s)](cells(z, s)) for s in self.scales}

    def predict(self, antecedents, consequents, own):
        """antecedents (B, M, P) of one view, consequents (B, N, P) of the other -> (regularised NCE, acc)."""
        scores = pair_scores(antecedents, self.gather(consequents, grads=True))  # (B, M, B', N)
        return regularised_nce(scores / math.sqrt(self.projection), own, self.clip, self.penalty)

    def forward(self, x, groups=None):
        """Returns (the mean regularised NCE over pairs and directions, {"acc", "acc/a-b" per pair}); `groups` is
        unused."""
        one, two = self.embeddings(x), self.embeddings(x)
        own = self.gather.rank * len(x) + torch.arange(len(x), device=x.device)  # (B,) ours among the B'
        per_pair = {}
        for a, b in self.pairs:
            both = [self.predict(src[a], trg[b], own) for src, trg in ((one, two), (two, one))]
            per_pair[f"{a}-{b}"] = mean_scores([(loss, {"acc": acc}) for loss, acc in both])
        loss, metrics = mean_scores(list(per_pair.values()))
        return loss, {**metrics, **{f"acc/{name}": m["acc"] for name, (_, m) in per_pair.items()}}

    @torch.no_grad()
    def embed(self, x):
        """Frozen features of the whole un-augmented image: (z, z), z (B, Gh, Gw, D); no context network."""
        z = self.encoder(patchify(x, self.patch, self.stride))
        return z, z

    def chance_loss(self, batch_size: int, positions: int) -> float:
        samples = batch_size * self.gather.world
        return sum(math.log((samples - 1) * b * b + 1) for _, b in self.pairs) / len(self.pairs)


def check(cfg, modality, geometry) -> None:
    """Refuse a scale the patch grid does not give, a pair that is not two scales, and a batch with no negatives."""
    pairs = cfg.objective.pairs
    (height, width), grid = image_size(cfg), cfg.model.patches
    rows, cols = grid_shape(height, width, grid.size, grid.stride)
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise ConfigError(f"objective.pairs={pairs}: give a list of [antecedent scale, consequent scale] pairs, "
                          f"such as the paper's [[1, 5], [1, 7], [5, 5]]")
    wrong = sorted({s for pair in pairs for s in pair if not 1 <= s <= geometry.pool})
    if wrong:
        raise ConfigError(f"objective.pairs={pairs}: scale(s) {wrong} are not produced: the {height}x{width} images "
                          f"give a {rows}x{cols} patch grid (model.patches.size={grid.size}, stride={grid.stride}), "
                          f"whose scales are 1 (the global vector) to {geometry.pool} (cells a side)")
    batch, devices = cfg.data.batch_size, least_devices(cfg.fabric)
    if batch * devices < 2:
        raise ConfigError(f"objective.name=amdim with data.batch_size={batch} on {devices} device(s) has no "
                          f"negatives (the other images of the batch); set data.batch_size >= 2")


def build(parts, cfg: AMDIMConfig) -> AMDIM:
    encoder, _, patch, stride = parts.patches()  # no patch augment: the views do the augmenting
    return AMDIM(encoder, patch, stride, parts.views(cfg.views), cfg)


AMDIM_OBJECTIVE = Objective(
    name="amdim", config=AMDIMConfig, build=build, parts=("patches", "views"), check=check,
    summary="AMDIM: features of one view at several scales predict the other view's, under regularised NCE",
)
