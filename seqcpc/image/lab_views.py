"""CMC's views of a colour image (seqcpc/objectives/cmc.py): its L and its ab channels of Lab colour
(seqcpc/image/lab.py), each through its own patch encoder (1 and 2 input channels; the model section's widths,
blocks and dim), pooled to P x P cells.

Shapes: B batch, Gh x Gw patch grid, p patch side, D latent dim, P pool cells a side.
Both views come from the same augmented patches: the patch augment (model.augment: jitter and flips) is drawn
once on the RGB patch grid, which is then split into L and ab, as the paper crops and flips an image before it
splits it.
"""
from torch import nn

from seqcpc.image.lab import split_lab
from seqcpc.image.patches import patchify, pool_grid


class LabViews(nn.Module):
    """x (B, 3, H, W) sRGB -> [L features (B, D P^2), ab features (B, D P^2)]."""

    def __init__(self, encoders: list, augment: nn.Module, patch: int, stride: int, pool: int):
        super().__init__()
        self.encoders = nn.ModuleList(encoders)  # L (1 channel), ab (2 channels)
        self.augment, self.patch, self.stride, self.pool = augment, patch, stride, pool
        self.dims = [e.dim * pool * pool for e in encoders]

    def forward(self, x):
        grid = self.augment.patch_grid(x, self.patch, self.stride)  # (B, Gh, Gw, 3, p, p), augmented in training
        return [pool_grid(enc(view), self.pool) for enc, view in zip(self.encoders, split_lab(grid))]

    def latents(self, x):
        """[(z, z)] of each view, z (B, Gh, Gw, D): the un-augmented latent grids (there is no context network)."""
        grid = patchify(x, self.patch, self.stride)
        return [(z, z) for z in (enc(view) for enc, view in zip(self.encoders, split_lab(grid)))]
