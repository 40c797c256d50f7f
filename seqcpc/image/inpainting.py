"""Inpainting with a context encoder (Pathak et al., CVPR 2016, "Context Encoders: Feature Learning by
Inpainting"), on image CPC's patch encoder: objective.name inpainting, trained by the same loop as CPC.

Shapes: B batch, C channels, H x W pixels, Gh x Gw patch grid, p patch side, s stride, D latent dim, E decoder
width (objective.hidden), K blocks a mask.
A block of each image is hidden and reconstructed from the rest:
  mask      central: one h x w block in the middle of every image (the paper's central region); random: K blocks
            of h x w at uniform positions drawn per image, possibly overlapping (the paper's random blocks). The
            side is objective.size: a fraction of each side of the image when < 1, else pixels
  encoder   the patch encoder reads the masked image, its hidden pixels filled with the mean of the image's
            visible pixels (per channel); no patch augment, so pixels stay where the decoder puts them back
  decoder   the latent grid (B, D, Gh, Gw) through three 3x3 convolutions dilated 1, 2 and 4 (a reach of 7 cells
            every way, so cells inside a hole hear of the visible ones around it: the role of the paper's
            channel-wise fully connected layer, which would fix the image size), then a 1x1 convolution giving
            each cell its p x p patch of pixels, the patches averaged where they overlap (unpatchify): a
            correction added to the filled image. The patch encoder's per-patch layer norm (no bias before it)
            makes it blind to a patch's scale (x and 2x give the same latent), so a decoder from z alone cannot
            tell a dark image from a bright one; the fill gives it the level, the latents the structure
  loss      masked L2: the mean squared error over the hidden pixels only; with objective.overlap > 0, the
            visible pixels within that many pixels of a hole are predicted too and weigh objective.overlap_weight
            each (the paper's overlap, 10x). The paper's adversarial term is left out
`embed` gives the encoder's latent grid of the whole, unmasked image as both z and c (there is no context
network), as the pretext tasks do, so every image probe reads it unchanged.
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.core.pretrainable import Pretrainable
from seqcpc.errors import ConfigError
from seqcpc.fields import choice, number, refuse_idle
from seqcpc.image.parts import image_size
from seqcpc.image.patches import patchify, unpatchify
from seqcpc.objectives.registry import Objective

DILATIONS = (1, 2, 4)  # the decoder's 3x3 convolutions


def block_side(size: float, side: int) -> int:
    """A block's side in pixels along an image side of `side` pixels: objective.size as a fraction (< 1) or in
    pixels (>= 1)."""
    return max(1, round(size * side)) if size < 1 else int(size)


def central_mask(batch: int, height: int, width: int, h: int, w: int, device=None):
    """(B, 1, H, W) bool: True on the h x w block in the middle of each image."""
    mask = torch.zeros(batch, 1, height, width, dtype=torch.bool, device=device)
    top, left = (height - h) // 2, (width - w) // 2
    mask[..., top: top + h, left: left + w] = True
    return mask


def random_mask(batch: int, height: int, width: int, h: int, w: int, blocks: int, device=None):
    """(B, 1, H, W) bool: True on the union of `blocks` h x w blocks per image, each at a uniform position."""
    tops = torch.randint(0, height - h + 1, (batch, blocks, 1), device=device)
    lefts = torch.randint(0, width - w + 1, (batch, blocks, 1), device=device)
    rows, cols = torch.arange(height, device=device), torch.arange(width, device=device)
    in_rows = (rows >= tops) & (rows < tops + h)  # (B, K, H)
    in_cols = (cols >= lefts) & (cols < lefts + w)  # (B, K, W)
    return (in_rows[..., :, None] & in_cols[..., None, :]).any(1, keepdim=True)  # (B, 1, H, W)


def loss_weights(mask, overlap: int, overlap_weight: float):
    """(B, 1, H, W) float: 1 on hidden pixels, overlap_weight on the visible ones within `overlap` pixels of a
    hole (a square neighbourhood), 0 elsewhere."""
    weights = mask.float()
    if overlap > 0:
        near = F.max_pool2d(weights, 2 * overlap + 1, stride=1, padding=overlap) > 0
        weights = weights + overlap_weight * (near & ~mask).float()
    return weights


def masked_l2(pred, target, weights):
    """pred, target (B, C, H, W), weights (B, 1, H, W) -> the weighted mean squared error over the pixels of
    non-zero weight: sum w (pred - target)^2 / (C sum w). Pixels of weight 0 do not enter it."""
    squared = (pred.float() - target.float()).pow(2) * weights  # (B, C, H, W)
    return squared.sum() / (target.shape[1] * weights.sum()).clamp_min(1e-12)


def fill_holes(x, mask):
    """x (B, C, H, W) with its masked pixels set to the mean of the image's visible pixels, channel by channel."""
    visible = (~mask).float()  # (B, 1, H, W)
    mean = (x * visible).sum((2, 3), keepdim=True) / visible.sum((2, 3), keepdim=True).clamp_min(1)  # (B, C, 1, 1)
    return torch.where(mask, mean, x)


class PatchDecoder(nn.Module):
    """z (B, Gh, Gw, D) -> pixels (B, C, H, W): dilated convolutions over the grid, a patch of pixels a cell, the
    patches averaged where they overlap."""

    def __init__(self, dim: int, hidden: int, channels: int, patch: int, stride: int):
        super().__init__()
        layers, width = [], dim
        for d in DILATIONS:
            layers += [nn.Conv2d(width, hidden, 3, padding=d, dilation=d), nn.ReLU(inplace=True)]
            width = hidden
        self.spread = nn.Sequential(*layers)
        self.to_pixels = nn.Conv2d(hidden, channels * patch * patch, 1)
        nn.init.zeros_(self.to_pixels.weight)  # the prediction starts as the fill: the loss starts at its plateau
        nn.init.zeros_(self.to_pixels.bias)
        self.patch, self.stride = patch, stride

    def forward(self, z, height: int, width: int):
        h = self.spread(rearrange(z, "b gh gw d -> b d gh gw"))  # (B, E, Gh, Gw)
        patches = rearrange(self.to_pixels(h), "b (c ph pw) gh gw -> b gh gw c ph pw", ph=self.patch, pw=self.patch)
        return unpatchify(patches, height, width, self.stride)  # (B, C, H, W)


class Inpainting(Pretrainable):
    """The patch encoder (parameter names encoder.*, as in PatchCPC, so checkpoints and train.init_from work alike)
    and the decoder; forward hides blocks and scores their reconstruction."""

    def __init__(self, encoder: nn.Module, patch: int, stride: int, channels: int, cfg):
        super().__init__()
        self.encoder, self.patch, self.stride, self.cfg = encoder, patch, stride, cfg
        self.decoder = PatchDecoder(encoder.dim, cfg.hidden, channels, patch, stride)
        # the loss of the fill alone (a decoder that adds nothing): a running mean over training batches, the
        # plateau of chance_loss; NaN until the first
        self.register_buffer("plateau", torch.tensor(float("nan")))

    def mask(self, x):
        """(B, C, H, W) -> (B, 1, H, W) bool, the pixels to hide."""
        B, _, H, W = x.shape
        h, w = block_side(self.cfg.size, H), block_side(self.cfg.size, W)
        if self.cfg.mask == "central":
            return central_mask(B, H, W, h, w, x.device)
        return random_mask(B, H, W, h, w, self.cfg.blocks, x.device)

    def forward(self, x, groups=None):
        """Returns (masked L2, {"hole_mse"}); `groups` is unused."""
        mask = self.mask(x)  # (B, 1, H, W)
        filled = fill_holes(x, mask)  # what the encoder sees
        z = self.encoder(patchify(filled, self.patch, self.stride))  # (B, Gh, Gw, D)
        pred = filled + self.decoder(z, *x.shape[-2:])  # (B, C, H, W): a correction of the fill
        weights = loss_weights(mask, self.cfg.overlap, self.cfg.overlap_weight)
        if self.training:
            self.track_plateau(masked_l2(filled, x, weights))
        return masked_l2(pred, x, weights), {"hole_mse": masked_l2(pred.detach(), x, mask.float())}

    @torch.no_grad()
    def track_plateau(self, fill_loss) -> None:
        self.plateau.copy_(fill_loss if self.plateau.isnan() else 0.99 * self.plateau + 0.01 * fill_loss)

    @torch.no_grad()
    def embed(self, x):
        """Frozen features of the whole unmasked image: (z, z), z (B, Gh, Gw, D). There is no context network,
        so z also stands where a CPC model gives its context c."""
        z = self.encoder(patchify(x, self.patch, self.stride))
        return z, z

    def chance_loss(self, batch_size: int, positions: int) -> float:
        """The loss of a decoder that adds nothing to the fill (where training starts: its last layer is zero),
        as measured on the training batches: NaN before any."""
        return float(self.plateau)


@dataclass
class InpaintingConfig:
    """Inpainting with a context encoder on the patch encoder (seqcpc/image/inpainting.py)."""
    mask: str = choice("central", ["central", "random"])  # one block in the middle, or `blocks` at random places
    size: float = number(0.5, above=0)  # a block's side: a fraction of each image side (< 1), or pixels (>= 1)
    blocks: int = number(1, min=1)  # random: blocks a mask (they may overlap)
    overlap: int = number(0, min=0)  # visible pixels around a hole that are predicted too, in pixels
    overlap_weight: float = number(10.0, min=0)  # ... and the weight of each (a hidden pixel weighs 1)
    hidden: int = number(256, min=1)  # the decoder's width


def check(cfg, modality, geometry) -> None:
    """Refuse a block larger than the images, or one that hides all of an image."""
    section = cfg.objective
    refuse_idle(section, "objective", {"blocks": (section.mask == "random", "objective.mask=random"),
                                       "overlap_weight": (section.overlap > 0, "objective.overlap > 0")})
    if section.size >= 1 and section.size != int(section.size):
        raise ConfigError(f"objective.size={section.size:g}: a side of 1 or more is in pixels, so a whole number; "
                          f"give a fraction below 1 or whole pixels")
    height, width = image_size(cfg)
    h, w = block_side(section.size, height), block_side(section.size, width)
    if h > height or w > width:
        raise ConfigError(f"objective.size={section.size:g} gives a {h}x{w} px block, larger than the {height}x{width} "
                          f"images; lower objective.size")
    if h == height and w == width:
        raise ConfigError(f"objective.size={section.size:g} hides the whole {height}x{width} image, leaving no context "
                          f"to inpaint from; lower objective.size")


def build(parts, cfg: InpaintingConfig) -> Inpainting:
    encoder, _, patch, stride = parts.patches()  # the patch augment is not used: pixels must stay in place
    return Inpainting(encoder, patch, stride, parts.cfg.encoder.in_channels, cfg)


INPAINTING = Objective(name="inpainting", config=InpaintingConfig, build=build, parts=("patches",), check=check,
                       summary="inpainting (context encoders): reconstruct hidden blocks of an image from the rest")
