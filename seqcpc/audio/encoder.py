"""Encoders: map a raw sequence to latents z.

Shapes: B batch, C input channels, L input samples, T latent steps (L // downsample), D latent dim.
Every encoder returns z as (B, T, D), whatever it reads, so the context, predictor and loss never need to
know the modality.
"""
import math

from einops import rearrange
from torch import nn

NORMS = ("batch", "layer", "instance", "none")


class ChannelNorm(nn.Module):
    """Layer norm over the channels of each time step (the later CPC reference code's choice): unlike batch
    norm it never mixes statistics across the batch, so negatives from other sequences stay independent."""

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)

    def forward(self, x):  # (B, D, T)
        return rearrange(self.norm(rearrange(x, "b d t -> b t d")), "b t d -> b d t")


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm1d(channels)
    if kind == "layer":
        return ChannelNorm(channels)
    if kind == "instance":
        return nn.InstanceNorm1d(channels, affine=True)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; choose one of {NORMS}")


def receptive_field(kernels, strides) -> int:
    """Input samples that one latent step of a conv stack depends on."""
    field, jump = 1, 1
    for k, s in zip(kernels, strides):
        field += (k - 1) * jump
        jump *= s
    return field


def output_length(length: int, kernels, strides) -> int:
    """Latent steps a conv stack makes of `length` input samples (padding (k - s + 1) // 2 per layer)."""
    for k, s in zip(kernels, strides):
        length = (length + 2 * ((k - s + 1) // 2) - k) // s + 1
    return length


class ConvEncoder(nn.Module):
    """A stack of strided Conv1d -> norm -> ReLU blocks, as in the CPC paper's audio encoder."""

    def __init__(self, in_channels=1, dim=512, kernels=(10, 8, 4, 4, 4), strides=(5, 4, 2, 2, 2), norm="batch"):
        super().__init__()
        if len(kernels) != len(strides):
            raise ValueError(f"encoder kernels {list(kernels)} and strides {list(strides)} differ in length")
        self.in_channels, self.dim = in_channels, dim
        self.kernels, self.strides = tuple(kernels), tuple(strides)
        blocks, width = [], in_channels
        for k, s in zip(kernels, strides):
            # no conv bias before a norm: batch norm would cancel it, and under a channel-wise layer norm a
            # bias larger than the signal (quiet audio) makes every step look the same
            conv = nn.Conv1d(width, dim, k, stride=s, padding=(k - s + 1) // 2, bias=norm == "none")
            blocks += [conv, make_norm(norm, dim), nn.ReLU()]
            width = dim
        self.net = nn.Sequential(*blocks)

    @property
    def downsample(self) -> int:
        """Input samples per latent step."""
        return math.prod(self.strides)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.kernels, self.strides)

    def output_length(self, length: int) -> int:
        return output_length(length, self.kernels, self.strides)

    def forward(self, x):  # (B, L) or (B, C, L)
        if x.dim() == 2:
            x = rearrange(x, "b l -> b 1 l")
        return rearrange(self.net(x), "b d t -> b t d")  # (B, T, D)
