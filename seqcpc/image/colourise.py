"""Colourisation (Zhang, Isola & Efros, ECCV 2016, "Colorful Image Colorization") on the patch encoder: predict
the ab channels of Lab colour from the L channel, as a classification over quantised ab bins with class
rebalancing (objective.name colourise).

Shapes: B batch, Gh x Gw patch grid, p patch side, r = objective.cells, s = p / r, D latent dim, Q ab bins,
N = B Gh Gw r^2 scored cells, k = objective.neighbours.
The bins (the paper's Sec. 2.1): the ab plane cut into squares of side objective.grid (the paper: 10) centred on
its multiples, keeping those that sRGB colours reach (the paper keeps the Q = 313 in gamut; the sRGB gamut, from a
64-level RGB cube through seqcpc/image/lab.py, reaches Q = 261 at grid 10, whatever the data).
The adaptation to a patch encoder, which gives one latent per patch: each patch's L is encoded alone, and a head
(Linear, ReLU, Linear) maps its latent to bin logits for each of r x r cells of the patch; a cell's target is its
s x s pixels' mean ab (the paper too predicts at a lower resolution than the image's), as its nearest bin (hard)
or as Gaussian weights (sigma) on its k nearest bins (objective.soft, the paper's soft encoding: k = 5,
sigma = 5). Patches are augmented as in CPC (jitter, flips) before the split, so L and its targets move together.
The class rebalancing (Sec. 2.2, eq. 3-4): each cell's cross-entropy is weighted by w of its nearest bin, where
  w  proportional to  ((1 - lambda) p~ + lambda / Q)^-1,  normalised so that sum_q p~_q w_q = 1,
p~ the empirical bin distribution smoothed by a Gaussian of sigma in ab units (each bin's mass spread over the
bins by exp(-|c - c'|^2 / 2 sigma^2), normalised), lambda = objective.mix (the paper: 1/2, sigma = 5). The paper
counts p over ImageNet's training set before training; here the counts are those of every training cell seen so
far (a buffer that checkpoints keep), which is the training split's distribution after one epoch.
Frozen features (`embed`): the L encoder's latent grid of the un-augmented image, as z and as c.
"""
import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.core.pretrainable import Pretrainable
from seqcpc.errors import ConfigError
from seqcpc.fields import number, refuse_idle
from seqcpc.image.lab import AB_SCALE, rgb_to_lab, split_lab
from seqcpc.image.patches import patchify
from seqcpc.objectives.registry import Objective
from seqcpc.objectives.two_views import projection_head

GAMUT_LEVELS = 64  # the RGB cube sampled for the gamut: 64^3 colours


def gamut_bins(grid: float, levels: int = GAMUT_LEVELS) -> torch.Tensor:
    """(Q, 2) centres (multiples of `grid`) of the ab bins that the colours of a levels^3 sRGB cube reach, sorted
    by a, then b (a new tensor each call: the check and the model both ask, and a model's buffer is written to)."""
    return reached_bins(grid, levels).clone()


@functools.lru_cache(maxsize=4)
def reached_bins(grid: float, levels: int) -> torch.Tensor:
    axis = torch.linspace(0, 1, levels, dtype=torch.float64)
    cube = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij")).reshape(3, -1, 1)  # (3, levels^3, 1)
    ab = rgb_to_lab(cube)[1:, :, 0].T  # (levels^3, 2)
    return (torch.round(ab / grid).unique(dim=0) * grid + 0.0).float()  # sorted rows; + 0.0: no -0


def nearest_bins(ab, centres):
    """ab (N, 2), centres (Q, 2) -> (N,) the index of each point's nearest bin centre."""
    return torch.cdist(ab.float(), centres).argmin(-1)


def soft_targets(ab, centres, neighbours: int, sigma: float):
    """ab (N, 2) -> (N, Q): Gaussian weights (sigma) on each point's k nearest bins, normalised to sum to 1."""
    distance, nearest = torch.cdist(ab.float(), centres).topk(neighbours, largest=False)  # (N, k) each
    weights = torch.softmax(-distance ** 2 / (2 * sigma ** 2), dim=-1)
    return torch.zeros(len(ab), len(centres), device=ab.device).scatter_(1, nearest, weights)


def rebalancing_weights(counts, centres, sigma: float, mix: float):
    """counts (Q,) of each bin -> (Q,) weights w ~ ((1 - mix) p~ + mix / Q)^-1 with sum_q p~_q w_q = 1, p~ the
    distribution of the counts smoothed by a Gaussian of sigma over the bin centres; all 1 before any count."""
    Q = len(centres)
    if counts.sum() == 0:
        return torch.ones(Q, device=centres.device)
    p = counts.double() / counts.sum()
    spread = torch.exp(-torch.cdist(centres, centres).double() ** 2 / (2 * sigma ** 2))  # (Q, Q), [from, to]
    smooth = p @ (spread / spread.sum(1, keepdim=True))  # (Q,): each bin's mass spread over its neighbours
    w = 1 / ((1 - mix) * smooth + mix / Q)
    return (w / (smooth * w).sum()).float()


class Colourise(Pretrainable):
    """The L channel's patch encoder (parameter names encoder.*) and the head to each patch's cells' bin logits."""

    def __init__(self, encoder: nn.Module, augment: nn.Module, patch: int, stride: int, cfg):
        super().__init__()
        self.encoder, self.augment, self.patch, self.stride = encoder, augment, patch, stride
        self.cells, self.sigma, self.mix = cfg.cells, cfg.sigma, cfg.mix
        self.neighbours = cfg.neighbours if cfg.soft else 0
        self.register_buffer("centres", gamut_bins(cfg.grid))  # (Q, 2), ab units
        self.register_buffer("counts", torch.zeros(len(self.centres), dtype=torch.long))  # training cells a bin
        self.to_logits = projection_head(encoder.dim, cfg.hidden, len(self.centres) * cfg.cells ** 2)

    def cell_ab(self, ab):
        """ab patches (B, Gh, Gw, 2, p, p), network scale -> (N, 2): each cell's mean ab, in ab units."""
        cells = rearrange(ab, "b gh gw c (r1 s1) (r2 s2) -> (b gh gw r1 r2) c (s1 s2)", r1=self.cells, r2=self.cells)
        return cells.float().mean(-1) * AB_SCALE

    def forward(self, x, groups=None):
        """Returns (the rebalanced cross-entropy over every cell, {"acc": share of cells whose nearest bin scores
        highest, "ce": the cross-entropy without the weights}); `groups` is unused."""
        light, ab = split_lab(self.augment.patch_grid(x, self.patch, self.stride))  # (B, Gh, Gw, 1 | 2, p, p)
        logits = rearrange(self.to_logits(self.encoder(light)), "b gh gw (r1 r2 q) -> (b gh gw r1 r2) q",
                           r1=self.cells, r2=self.cells).float()  # (N, Q)
        target_ab = self.cell_ab(ab)  # (N, 2)
        bins = nearest_bins(target_ab, self.centres)  # (N,)
        if self.training:
            self.counts += torch.bincount(bins, minlength=len(self.centres))
        log_probs = F.log_softmax(logits, dim=-1)
        if self.neighbours:
            ce = -(soft_targets(target_ab, self.centres, self.neighbours, self.sigma) * log_probs).sum(-1)  # (N,)
        else:
            ce = F.nll_loss(log_probs, bins, reduction="none")  # (N,)
        weights = rebalancing_weights(self.counts, self.centres, self.sigma, self.mix)[bins]  # (N,)
        acc = (logits.detach().argmax(-1) == bins).float().mean()
        return (weights * ce).mean(), {"acc": acc, "ce": ce.detach().mean()}

    @torch.no_grad()
    def embed(self, x):
        """Frozen features of the whole un-augmented image: (z, z), z (B, Gh, Gw, D) of its L channel."""
        light, _ = split_lab(patchify(x, self.patch, self.stride))
        z = self.encoder(light)
        return z, z

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return math.log(len(self.centres))  # uniform logits; the weights average 1 over the (smoothed) bins


@dataclass
class ColouriseConfig:
    """Colourisation: ab bins predicted from L, with class rebalancing (seqcpc/image/colourise.py)."""
    grid: float = number(10.0, above=0)  # side of an ab bin, in Lab units (the paper's 10)
    cells: int = number(2, min=1)  # each patch predicts cells x cells blocks of ab (a divisor of the patch side)
    hidden: int = number(512, min=1)  # the head's hidden layer
    mix: float = number(0.5, min=0, max=1)  # lambda: the share of the uniform in the rebalancing weights' mix
    sigma: float = number(5.0, above=0)  # Gaussian of the prior's smoothing (and of the soft targets), ab units
    soft: bool = False  # soft-encoded targets over the nearest bins (else the nearest bin alone)
    neighbours: int = number(5, min=1)  # soft only: bins of each soft target


def check(cfg, modality, geometry) -> None:
    """Grey images and colour-changing augments are refused by the image check (check_lab); here the cells."""
    section, patch = cfg.objective, cfg.model.patches.size
    refuse_idle(section, "objective", {"neighbours": (section.soft, "objective.soft=true")})
    if patch % section.cells:
        raise ConfigError(f"objective.cells={section.cells} must divide model.patches.size={patch}: each patch "
                          f"predicts cells x cells blocks of its pixels")
    bins = len(gamut_bins(section.grid))
    if section.soft and section.neighbours > bins:
        raise ConfigError(f"objective.neighbours={section.neighbours} is more than the {bins} ab bins of "
                          f"objective.grid={section.grid:g}")


def build(parts, cfg: ColouriseConfig) -> Colourise:
    _, augment, patch, stride = parts.patches()
    return Colourise(parts.lab_encoder(1), augment, patch, stride, cfg)


COLOURISE = Objective(
    name="colourise", config=ColouriseConfig, build=build, parts=("patches", "lab_encoder"), check=check,
    summary="colourisation: the ab colour of each patch's cells from its L channel, over rebalanced ab bins",
)
