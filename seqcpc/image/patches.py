"""Images as grids of overlapping patches, and back.

Shapes: B batch, C channels, H x W image pixels, Gh x Gw patch grid, p patch side, s stride.
An image becomes a grid of p x p patches taken every s pixels (s = p / 2 gives CPC v2's 50% overlap). When
the patches do not tile the image exactly, it is zero-padded evenly on all sides until they do.
"""
import torch
import torch.nn.functional as F
from einops import rearrange


def grid_shape(height: int, width: int, size: int, stride: int) -> tuple[int, int]:
    """(Gh, Gw): patches along each side, after the padding `patchify` adds."""
    return -(-max(height - size, 0) // stride) + 1, -(-max(width - size, 0) // stride) + 1


def tiling_padding(height: int, width: int, size: int, stride: int) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding after which the patches cover every pixel exactly."""
    gh, gw = grid_shape(height, width, size, stride)
    extra_h, extra_w = (gh - 1) * stride + size - height, (gw - 1) * stride + size - width
    return extra_w // 2, extra_w - extra_w // 2, extra_h // 2, extra_h - extra_h // 2


def patchify(x, size: int, stride: int, margin: int = 0):
    """(B, C, H, W) -> (B, Gh, Gw, C, p + 2m, p + 2m).

    With a margin m each patch keeps m extra pixels on every side (the image is padded by m), so that a
    random p x p crop of it can jitter the patch by up to m pixels (see seqcpc.augment)."""
    left, right, top, bottom = tiling_padding(x.shape[-2], x.shape[-1], size, stride)
    x = F.pad(x, (left + margin, right + margin, top + margin, bottom + margin))
    side = size + 2 * margin
    grid = x.unfold(2, side, stride).unfold(3, side, stride)  # (B, C, Gh, Gw, p', p')
    return rearrange(grid, "b c gh gw ph pw -> b gh gw c ph pw")


def unpatchify(patches, height: int, width: int, stride: int):
    """(B, Gh, Gw, C, p, p) -> (B, C, H, W): each pixel is the mean of the patches that cover it."""
    size = patches.shape[-1]
    left, right, top, bottom = tiling_padding(height, width, size, stride)
    padded = (height + top + bottom, width + left + right)
    cols = rearrange(patches, "b gh gw c ph pw -> b (c ph pw) (gh gw)")
    total = F.fold(cols, padded, size, stride=stride)  # (B, C, H', W'): overlapping patches summed
    count = F.fold(torch.ones_like(cols[:1]), padded, size, stride=stride)
    return (total / count)[..., top: top + height, left: left + width]


def pool_grid(z, pool: int):
    """(B, Gh, Gw, D) -> (B, D P^2): a latent grid averaged into P x P cells."""
    cells = F.adaptive_avg_pool2d(rearrange(z, "b gh gw d -> b d gh gw"), pool)  # (B, D, P, P)
    return cells.flatten(1)
