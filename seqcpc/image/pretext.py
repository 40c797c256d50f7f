"""Pretext-task baselines on image CPC's patch encoder: rotation prediction (Gidaris et al. 2018) and jigsaw
puzzles (Noroozi & Favaro 2016), trained by the same loop as CPC (objective.name rotation or jigsaw), each with its registry entry.

Shapes: B batch, C channels, H x W pixels, S = min(H, W) the centre square's side, Gh x Gw patch grid, p patch
side, m the augment's jitter (w = p + 2m), D latent dim, Q = objective.pool, G = objective.cells, T = G^2 tiles,
P = objective.permutations.
Both tasks see the centre square of each image and classify what was done to it:
  rotation  each image is turned by r quarter turns, r drawn uniformly from {0, 1, 2, 3} (one per image, so a step
            encodes as many patches as a CPC step on the same batch); its patch grid is augmented as in CPC, encoded,
            pooled to Q x Q cells and classified into r.
  jigsaw    the square is cut into G x G cells of side S // G and one p x p tile is taken from each: at a random
            offset inside its cell in training (which leaves gaps between tiles, so that matching edges does not
            solve the puzzle), at the cell's centre in evaluation. The tiles are shuffled by one of P fixed
            permutations per image, augmented by the patch augment (its jitter, flips and colour dropping or grey as
            configured: a jitter may move a tile up to m pixels past its cell), encoded one by one, and their T
            latents, concatenated in shuffled order, are classified into the permutation's index.
Neither has a context network: `embed` gives the encoder's latent grid of the whole, un-augmented image as both z
and c, so a pretext model's features read like a CPC model's (the image probes take `z, _ = model.embed(x)`).
"""
import itertools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.core.pretrainable import Pretrainable
from seqcpc.errors import ConfigError
from seqcpc.fields import number
from seqcpc.image.parts import image_size
from seqcpc.image.patches import patchify, pool_grid
from seqcpc.objectives.registry import Objective, check_pool
from seqcpc.objectives.two_views import projection_head

TURNS = 4  # rotation's classes: 0, 90, 180 and 270 degrees


def centre_square(x):
    """(B, C, H, W) -> (B, C, S, S): the middle square of each image."""
    H, W = x.shape[-2:]
    S = min(H, W)
    top, left = (H - S) // 2, (W - S) // 2
    return x[..., top: top + S, left: left + S]


def rotate(x, turns):
    """x (B, C, S, S), turns (B,) -> x[i] turned by turns[i] quarter turns, counter-clockwise as displayed."""
    every = torch.stack([torch.rot90(x, k, dims=(2, 3)) for k in range(TURNS)], 1)  # (B, 4, C, S, S)
    return every[torch.arange(len(x), device=x.device), turns]


def quarter_turns(x):
    """(B, C, S, S) -> (rotated images (B, C, S, S), their quarter turns (B,)), one uniform draw per image."""
    turns = torch.randint(0, TURNS, (len(x),), device=x.device)
    return rotate(x, turns), turns


def cut_tiles(x, cells: int, patch: int, margin: int, random: bool):
    """(B, C, S, S) -> (B, T, C, p + 2m, p + 2m): one p x p tile per cell, row by row, with m spare pixels on
    every side for the augment's jitter; at a random offset inside its cell, or at its centre."""
    B, S = len(x), x.shape[-1]
    side = S // cells
    start = (S - cells * side) // 2  # the cells are centred when they do not cover the square exactly
    if random:
        offsets = torch.randint(0, side - patch + 1, (2, B, cells * cells), device=x.device)
    else:
        offsets = torch.full((2, B, cells * cells), (side - patch) // 2, device=x.device)
    corners = torch.arange(cells, device=x.device) * side + start
    rows = corners.repeat_interleave(cells) + offsets[0]  # (B, T): each tile's top row in the padded image
    cols = corners.repeat(cells) + offsets[1]  # (B, T)
    width = patch + 2 * margin
    views = F.pad(x, (margin,) * 4).unfold(2, width, 1).unfold(3, width, 1)  # (B, C, S', S', w, w), no copy
    return views[torch.arange(B, device=x.device)[:, None], :, rows, cols]  # (B, T, C, w, w)


def hamming(columns, i: int):
    """(N,) Hamming distances from candidate i to every candidate, the candidates given position-major
    (size, N): one pass per position over contiguous memory, far faster than comparing rows."""
    distance = np.zeros(columns.shape[1], dtype=np.int16)
    for position in columns:
        distance += position != position[i]
    return distance


def permutation_set(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, size) distinct permutations of range(size), each chosen greedily as the one farthest (in Hamming
    distance) from its nearest predecessor; the first, and the ties, follow a shuffle drawn from the seed.
    Candidates are every permutation for size <= 9 (362880), a random sample of them beyond."""
    total = math.factorial(size)
    if not 1 <= n <= total:
        raise ValueError(f"{n} distinct permutations of {size} items do not exist (there are {total})")
    rng = np.random.default_rng(seed)
    if size <= 9:
        candidates = np.array(list(itertools.permutations(range(size))), dtype=np.int16)  # (size!, size)
    else:
        sample = rng.permuted(np.tile(np.arange(size, dtype=np.int16), (max(100 * n, 10_000), 1)), axis=1)
        candidates = np.unique(sample, axis=0)  # (N, size)
    candidates = rng.permutation(candidates)
    columns = np.ascontiguousarray(candidates.T)  # (size, N)
    chosen = [0]
    nearest = hamming(columns, 0)  # (N,): distance to the closest permutation chosen so far
    for _ in range(n - 1):
        chosen.append(int(nearest.argmax()))
        nearest = np.minimum(nearest, hamming(columns, chosen[-1]))
    return torch.as_tensor(candidates[chosen], dtype=torch.long)


class PretextTask(Pretrainable):
    """What both tasks share: the patch encoder (parameter names encoder.*, as in PatchCPC, so checkpoints and
    train.init_from work alike), its augment, and a classifier head (Linear, ReLU, Linear) over `classes`."""

    def __init__(self, encoder: nn.Module, augment: nn.Module, patch: int, stride: int, features: int,
                 hidden: int, classes: int):
        super().__init__()
        self.encoder, self.augment, self.patch, self.stride = encoder, augment, patch, stride
        self.to_logits = projection_head(features, hidden, classes)  # Linear, ReLU, Linear
        self.classes = classes

    def patches(self, x):
        """(B, C, H, W) -> (B, Gh, Gw, C, p, p), augmented in training mode only (as PatchCPC.patches, which the
        supervised baseline of seqcpc/image/eval.py also calls)."""
        return self.augment.patch_grid(x, self.patch, self.stride)

    def score(self, features, labels):
        """features (B, F), labels (B,) -> (cross-entropy, {"acc": accuracy})."""
        logits = self.to_logits(features).float()  # (B, classes); the softmax in fp32 under autocast
        return F.cross_entropy(logits, labels), {"acc": (logits.argmax(1) == labels).float().mean()}

    @torch.no_grad()
    def embed(self, x):
        """Frozen features of the whole un-augmented image: (z, z), z (B, Gh, Gw, D). There is no context
        network, so z also stands where a CPC model gives its context c."""
        z = self.encoder(patchify(x, self.patch, self.stride))
        return z, z

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return math.log(self.classes)


class RotationPretext(PretextTask):
    def __init__(self, encoder: nn.Module, augment: nn.Module, patch: int, stride: int, pool: int, hidden: int):
        super().__init__(encoder, augment, patch, stride, encoder.dim * pool * pool, hidden, TURNS)
        self.pool = pool

    def forward(self, x, groups=None):
        """Returns (loss, {"acc"}) of classifying each image's rotation; `groups` is unused."""
        x, turns = quarter_turns(centre_square(x))  # (B, C, S, S), (B,)
        z = self.encoder(self.patches(x))  # (B, Gh, Gw, D)
        return self.score(pool_grid(z, self.pool), turns)  # pooled: (B, D Q^2)


class JigsawPretext(PretextTask):
    def __init__(self, encoder: nn.Module, augment: nn.Module, patch: int, stride: int, cells: int,
                 permutations: int, hidden: int, seed: int = 0):
        super().__init__(encoder, augment, patch, stride, encoder.dim * cells * cells, hidden, permutations)
        self.cells = cells
        self.register_buffer("permutations", permutation_set(permutations, cells * cells, seed))  # (P, T)

    def forward(self, x, groups=None):
        """Returns (loss, {"acc"}) of classifying each image's shuffle; `groups` is unused."""
        x = centre_square(x)  # (B, C, S, S)
        B = len(x)
        tiles = cut_tiles(x, self.cells, self.patch, self.augment.jitter, self.training)  # (B, T, C, w, w)
        labels = torch.randint(0, len(self.permutations), (B,), device=x.device)
        order = self.permutations[labels]  # (B, T): slot j of the puzzle holds tile order[j]
        puzzle = tiles[torch.arange(B, device=x.device)[:, None], order]  # (B, T, C, w, w)
        puzzle = rearrange(puzzle, "b (gh gw) c h w -> b gh gw c h w", gh=self.cells)  # the shuffled grid
        puzzle = self.augment(puzzle)  # (B, G, G, C, p, p)
        z = self.encoder(puzzle)  # (B, G, G, D)
        return self.score(rearrange(z, "b gh gw d -> b (gh gw d)"), labels)


@dataclass
class RotationConfig:
    """Rotation prediction on the patch encoder (seqcpc/image/pretext.py)."""
    pool: int = number(3, min=1)  # the (centre square's) latent grid is pooled to pool x pool cells for the head
    hidden: int = number(512, min=1)  # the classifier head's hidden layer


@dataclass
class JigsawConfig:
    """Jigsaw puzzles on the patch encoder (seqcpc/image/pretext.py)."""
    hidden: int = number(512, min=1)  # the classifier head's hidden layer
    cells: int = number(3, min=2)  # the image is cut into cells x cells tiles
    permutations: int = number(100, min=2)  # the size of the fixed permutation set (the classes)


def check_jigsaw(cfg, modality, geometry) -> None:
    """Refuse a puzzle the images cannot be cut into."""
    (height, width), section, patch = image_size(cfg), cfg.objective, cfg.model.patches.size
    side = min(height, width)
    cell = side // section.cells
    if cell < patch:
        raise ConfigError(f"objective.name=jigsaw: objective.cells={section.cells} cuts the {side}x{side} centre "
                          f"square of the {height}x{width} images into {cell} px cells, too small for a tile of "
                          f"model.patches.size={patch} px; lower objective.cells or model.patches.size")
    orders = math.factorial(section.cells ** 2)
    if section.permutations > orders:
        raise ConfigError(f"objective.permutations={section.permutations} is more than the {orders} orders of "
                          f"{section.cells ** 2} tiles (objective.cells={section.cells})")


def build_rotation(parts, cfg: RotationConfig) -> RotationPretext:
    return RotationPretext(*parts.patches(), cfg.pool, cfg.hidden)


def build_jigsaw(parts, cfg: JigsawConfig) -> JigsawPretext:
    return JigsawPretext(*parts.patches(), cfg.cells, cfg.permutations, cfg.hidden)


ROTATION = Objective(name="rotation", config=RotationConfig, build=build_rotation, parts=("patches",),
                     check=check_pool, summary="rotation prediction: which of four quarter turns an image shows")
JIGSAW = Objective(name="jigsaw", config=JigsawConfig, build=build_jigsaw, parts=("patches",), check=check_jigsaw,
                   summary="jigsaw puzzles: which of a fixed set of permutations shuffled an image's tiles")
