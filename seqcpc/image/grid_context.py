"""The context network of image CPC: a masked (causal) convolution stack over the patch grid.

Shapes: B batch, Gh x Gw patch grid, D latent dim, E context dim.
c at row r sees the latents of rows <= r only (any column within its receptive field), in the manner of
PixelCNN: every convolution pads the top of the grid and none of the bottom, so no output row ever reads a row
below it. Predictions then target rows r + k, k >= 1, which the context has not seen.
"""
import torch.nn.functional as F
from einops import rearrange
from torch import nn


class RowCausalConv(nn.Conv2d):
    """A kh x kw convolution whose output at row r reads input rows r - kh + 1 .. r."""

    def forward(self, x):  # (B, E, Gh, Gw)
        kh, kw = self.kernel_size
        return super().forward(F.pad(x, (kw // 2, kw - 1 - kw // 2, kh - 1, 0)))


class MaskedConvContext(nn.Module):
    """A 1x1 projection to E, then residual blocks of (row-causal kxk conv, 1x1 conv), then layer norm."""

    def __init__(self, in_dim: int, dim: int = 256, layers: int = 2, kernel: int = 3):
        super().__init__()
        self.dim = dim
        self.to_context = nn.Conv2d(in_dim, dim, 1)
        self.blocks = nn.ModuleList(nn.Sequential(nn.ReLU(), RowCausalConv(dim, dim, kernel), nn.ReLU(),
                                                  nn.Conv2d(dim, dim, 1)) for _ in range(layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, z):  # (B, Gh, Gw, D)
        h = self.to_context(rearrange(z, "b gh gw d -> b d gh gw"))  # (B, E, Gh, Gw)
        for block in self.blocks:
            h = h + block(h)
        return self.norm(rearrange(h, "b e gh gw -> b gh gw e"))  # (B, Gh, Gw, E)
