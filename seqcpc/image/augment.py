"""Patch augmentations of CPC v2, written with torch ops and applied to a batch of patch grids at once.

Shapes: B batch, Gh x Gw patch grid, C channels, p patch side, m margin (the jitter), M = B * Gh * Gw.
Each patch arrives with m spare pixels on every side (seqcpc.patches.patchify(..., margin=m)) and leaves as a
p x p crop at a random offset: the patch's position jitters by up to m pixels. Then, each with its own random
draw per patch (per_patch=True) or per image: a horizontal flip, colour dropping (an RGB patch keeps one of
its three channels, the others set to zero) and grey-scale (the channels replaced by their mean). Every
operation only moves, copies, zeroes or averages pixels, so values stay within the input's range.
"""
import torch
from einops import rearrange, repeat
from torch import nn

from seqcpc.image.patches import patchify


class PatchAugment(nn.Module):
    def __init__(self, jitter: int = 0, flip: bool = False, colour_drop: float = 0.0, grey: float = 0.0,
                 per_patch: bool = True):
        super().__init__()
        self.jitter, self.flip, self.colour_drop, self.grey, self.per_patch = jitter, flip, colour_drop, grey, per_patch

    def patch_grid(self, x, size: int, stride: int):
        """(B, C, H, W) -> (B, Gh, Gw, C, p, p) patches, augmented while this module is in training mode."""
        if not self.training:
            return patchify(x, size, stride)
        return self(patchify(x, size, stride, self.jitter))

    def draw(self, shape, dist, device):
        """Random values of shape (M,): one per patch, or one per image repeated over its grid."""
        B, Gh, Gw = shape
        n = B * Gh * Gw if self.per_patch else B
        values = dist(n, device)
        return values if self.per_patch else repeat(values, "b -> (b g)", g=Gh * Gw)

    def crop(self, x, grid, random: bool):
        """(M, C, p + 2m, p + 2m) -> (M, C, p, p): at a random offset in training, else the centre."""
        m = self.jitter
        p = x.shape[-1] - 2 * m
        if m == 0:
            return x
        if not random:
            return x[..., m: m + p, m: m + p]
        views = x.unfold(2, p, 1).unfold(3, p, 1)  # (M, C, 2m+1, 2m+1, p, p), no copy
        oy, ox = (self.draw(grid, lambda n, d: torch.randint(0, 2 * m + 1, (n,), device=d), x.device)
                  for _ in range(2))
        return views[torch.arange(len(x), device=x.device), :, oy, ox]  # (M, C, p, p)

    def forward(self, patches):  # (B, Gh, Gw, C, p + 2m, p + 2m)
        B, Gh, Gw = grid = patches.shape[:3]
        x = rearrange(patches, "b gh gw c h w -> (b gh gw) c h w")
        x = self.crop(x, grid, random=self.training)
        if self.training:
            uniform = lambda n, d: torch.rand(n, device=d)  # noqa: E731
            if self.flip:
                flip = self.draw(grid, uniform, x.device) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(-1), x)
            if x.shape[1] == 3 and self.colour_drop > 0:
                drop = self.draw(grid, uniform, x.device) < self.colour_drop
                keep = self.draw(grid, lambda n, d: torch.randint(0, 3, (n,), device=d), x.device)
                mask = torch.nn.functional.one_hot(keep, 3).to(x.dtype)  # (M, 3)
                mask = torch.where(drop[:, None], mask, torch.ones_like(mask))
                x = x * mask[:, :, None, None]
            if x.shape[1] > 1 and self.grey > 0:
                grey = self.draw(grid, uniform, x.device) < self.grey
                x = torch.where(grey[:, None, None, None], x.mean(1, keepdim=True).expand_as(x), x)
        return rearrange(x, "(b gh gw) c h w -> b gh gw c h w", b=B, gh=Gh)
