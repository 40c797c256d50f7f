"""The per-patch encoder of image CPC (CPC v2): a small ResNet with layer norm, pooled to one vector.

Shapes: B batch, Gh x Gw patch grid, C channels, p patch side, D latent dim.
Each patch is encoded on its own, so z at one grid position depends on that patch's pixels only. The norm is
a per-patch layer norm (GroupNorm with one group: statistics over channels and pixels of one patch), not batch
norm: batch statistics would mix patches, and the network could use them to tell positives from negatives.
"""
import torch
from einops import rearrange
from torch import nn

from seqcpc.image.patches import patchify, pool_grid


def conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)  # the norm after it has the bias


def patch_norm(channels: int) -> nn.Module:
    return nn.GroupNorm(1, channels)


class StridedPointwise(nn.Conv2d):
    """A 1x1 convolution with a stride, computed as the 1x1 convolution of every stride-th pixel: the same
    numbers and the same parameters as nn.Conv2d(cin, cout, 1, stride), but not the CPU kernel of a strided
    1x1 convolution on channels-last tensors, whose backward corrupts the heap with one thread (torch 2.13 CPU;
    tests/image/test_patch_encoder.py runs it)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__(cin, cout, 1, stride=stride, bias=False)

    def forward(self, x):  # (M, C, h, w) -> (M, C', h / s, w / s)
        s = self.stride
        return nn.functional.conv2d(x[..., :: s[0], :: s[1]], self.weight, self.bias)


class ResidualBlock(nn.Module):
    """Two 3x3 convs with a skip connection; a strided 1x1 projection when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.body = nn.Sequential(conv3x3(cin, cout, stride), patch_norm(cout), nn.ReLU(inplace=True),
                                  conv3x3(cout, cout), patch_norm(cout))
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            StridedPointwise(cin, cout, stride), patch_norm(cout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):  # (M, C, h, w)
        return self.act(self.body(x) + self.skip(x))


class PatchEncoder(nn.Module):
    """A stem conv, then one stage per width (each after the first halves the patch's side), then a mean over
    the patch's pixels and a linear map to D."""

    def __init__(self, in_channels: int, dim: int, widths: list[int], blocks: int = 1):
        super().__init__()
        layers = [conv3x3(in_channels, widths[0]), patch_norm(widths[0]), nn.ReLU(inplace=True)]
        cin = widths[0]
        for i, width in enumerate(widths):
            for b in range(blocks):
                layers.append(ResidualBlock(cin, width, stride=2 if i > 0 and b == 0 else 1))
                cin = width
        # channels-last convolutions run faster on CPU (benchmarks/step_time.py: image_cpu against image_cpu_nchw)
        self.memory_format = torch.channels_last
        self.body = nn.Sequential(*layers).to(memory_format=self.memory_format)
        self.to_latent = nn.Linear(cin, dim)
        self.dim = dim

    def forward(self, patches):  # (B, Gh, Gw, C, p, p)
        B, Gh = patches.shape[:2]
        h = rearrange(patches, "b gh gw c ph pw -> (b gh gw) c ph pw")  # (M, C, p, p)
        h = self.body(h.contiguous(memory_format=self.memory_format))  # (M, C', p', p')
        z = self.to_latent(h.mean(dim=(2, 3)))  # (M, D)
        return rearrange(z, "(b gh gw) d -> b gh gw d", b=B, gh=Gh)  # (B, Gh, Gw, D)


class PooledPatches(nn.Module):
    """x (B, C, H, W) -> the patch encoder's latent grid pooled to P x P cells, (B, D P^2). Patches are
    augmented in training mode as in CPC pretraining. Parameter names (encoder.*) are those of a PatchCPC, so
    train.init_from can start it from a CPC checkpoint."""

    def __init__(self, encoder: nn.Module, augment: nn.Module, patch: int, stride: int, pool: int):
        super().__init__()
        self.encoder, self.augment, self.patch, self.stride, self.pool = encoder, augment, patch, stride, pool
        self.dim = encoder.dim * pool * pool

    def forward(self, x):
        patches = self.augment.patch_grid(x, self.patch, self.stride)  # augmented in training mode
        return pool_grid(self.encoder(patches), self.pool)  # (B, D P^2)

    def latents(self, x):
        """Frozen features as a CPC model gives them: the un-augmented latent grid z (B, Gh, Gw, D), as both
        z and c (there is no context network)."""
        z = self.encoder(patchify(x, self.patch, self.stride))
        return z, z


class LocalGlobalPatches(PooledPatches):
    """x (B, C, H, W) -> (the latent grid z (B, Gh, Gw, D), its mean over the grid (B, D)): local features and the
    global vector of objectives that score one against the other (DIM). Patches are augmented in training mode."""

    def __init__(self, encoder: nn.Module, augment: nn.Module, patch: int, stride: int):
        super().__init__(encoder, augment, patch, stride, pool=1)
        self.local_dim = encoder.dim

    def forward(self, x):
        z = self.encoder(self.augment.patch_grid(x, self.patch, self.stride))  # (B, Gh, Gw, D)
        return z, z.mean(dim=(1, 2))

    def map_cells(self, z, cells: int):
        """z (B, Gh, Gw, D) -> the grid averaged into cells x cells cells, (B, D cells^2)."""
        return pool_grid(z, cells)

    def cells_dim(self, cells: int) -> int:
        return self.local_dim * cells * cells
