"""Encoders: map a raw sequence to latents z.

Shapes: B batch, C input channels, L input samples, T latent steps (L // downsample), D latent dim.
Every encoder returns z as (B, T, D), whatever it reads, so the context, predictor and loss never need to
know the modality.

Padded batches: `lengths` (B,) says how many leading samples of each sequence are real (the rest is padding,
a clip shorter than the window). A latent step is valid when its whole receptive field lies inside the clip;
the conv stack's own zero padding at the window's edges is the same whatever the clip, so a clip that fills
the window has every step valid. Batch and instance norm take their statistics over valid steps only, so no
valid latent depends on the padding.
"""
import math

import torch
from einops import rearrange
from torch import nn

from seqcpc.core.masking import MaskedBatchNorm1d, MaskedInstanceNorm1d

NORMS = ("batch", "layer", "layer_unbiased", "instance", "none")
MASKED_NORMS = (MaskedBatchNorm1d, MaskedInstanceNorm1d)  # the norms that mix steps, told which are valid


class ChannelNorm(nn.Module):
    """Layer norm over the channels of each time step (the later CPC reference code's choice): unlike batch
    norm it never mixes statistics across the batch, so negatives from other sequences stay independent.
    `unbiased` divides by the variance with Bessel's correction (over D - 1), as facebookresearch/CPC_audio's
    ChannelNorm does, so that its checkpoints import exactly; the weights are the same either way."""

    def __init__(self, channels: int, eps: float = 1e-5, unbiased: bool = False):
        super().__init__()
        self.norm = nn.LayerNorm(channels, eps=eps)
        self.unbiased = unbiased

    def forward(self, x):  # (B, D, T)
        if not self.unbiased:
            return rearrange(self.norm(rearrange(x, "b d t -> b t d")), "b t d -> b d t")
        mean, var = x.mean(1, keepdim=True), x.var(1, keepdim=True)  # (B, 1, T)
        x = (x - mean) * torch.rsqrt(var + self.norm.eps)
        return x * rearrange(self.norm.weight, "d -> d 1") + rearrange(self.norm.bias, "d -> d 1")


def make_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return MaskedBatchNorm1d(channels)
    if kind == "layer":
        return ChannelNorm(channels)
    if kind == "layer_unbiased":
        return ChannelNorm(channels, unbiased=True)
    if kind == "instance":
        return MaskedInstanceNorm1d(channels, affine=True)
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


def valid_steps(valid, length: int, kernel: int, stride: int, padding: int):
    """Output steps of one conv layer whose inputs are all valid, from `valid` (B,) valid steps of a `length`-step
    input: a sequence that fills the input keeps every step, a shorter one the steps that end before its padding."""
    out = (length + 2 * padding - kernel) // stride + 1
    inside = ((valid + padding - kernel) // stride + 1).clamp(0, out)  # floor division, also below zero
    return torch.where(valid >= length, out, inside)


def valid_length(lengths, total: int, kernels, strides):
    """Latent steps whose receptive field lies inside each sequence: (B,) valid samples of `total`-sample
    inputs -> (B,) valid steps (of output_length(total) steps)."""
    valid = torch.as_tensor(lengths, dtype=torch.int64)
    for k, s in zip(kernels, strides):
        valid, total = valid_steps(valid, total, k, s, (k - s + 1) // 2), output_length(total, [k], [s])
    return valid


def shortest_clip(steps: int, total: int, kernels, strides) -> int:
    """The fewest samples a clip padded to `total` samples needs for `steps` valid latent steps (total + 1 when
    even a full window has fewer)."""
    low, high = 1, total + 1
    while low < high:  # valid steps grow with the clip's length
        mid = (low + high) // 2
        if int(valid_length([mid], total, kernels, strides)[0]) >= steps:
            high = mid
        else:
            low = mid + 1
    return low


class StridedFrames:
    """Where an encoder's latents sit on its input, for an encoder whose frames are those of a conv stack with
    `self.kernels` and `self.strides` (seqcpc's padding): the conv encoder, and the log mel one (one layer)."""
    kernels: tuple
    strides: tuple

    @property
    def downsample(self) -> int:
        """Input samples per latent step."""
        return math.prod(self.strides)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.kernels, self.strides)

    def output_length(self, length: int) -> int:
        return output_length(length, self.kernels, self.strides)

    def valid_frames(self, lengths, total: int):
        """(B,) valid samples of `total`-sample inputs -> (B,) latent steps whose receptive field lies inside."""
        return valid_length(lengths, total, self.kernels, self.strides)


class ConvEncoder(StridedFrames, nn.Module):
    """A stack of strided Conv1d -> norm -> ReLU blocks, as in the CPC paper's audio encoder."""

    def __init__(self, in_channels=1, dim=512, kernels=(10, 8, 4, 4, 4), strides=(5, 4, 2, 2, 2), norm="batch",
                 bias=None):
        super().__init__()
        if len(kernels) != len(strides):
            raise ValueError(f"encoder kernels {list(kernels)} and strides {list(strides)} differ in length")
        self.in_channels, self.dim = in_channels, dim
        self.kernels, self.strides = tuple(kernels), tuple(strides)
        blocks, width = [], in_channels
        for k, s in zip(kernels, strides):
            # by default no conv bias before a norm: batch norm would cancel it, and under a channel-wise layer
            # norm a bias larger than the signal (quiet audio) makes every step look the same; bias=True keeps
            # the biases of imported models (CPC_audio's convs all have one)
            conv = nn.Conv1d(width, dim, k, stride=s, padding=(k - s + 1) // 2,
                             bias=norm == "none" if bias is None else bias)
            blocks += [conv, make_norm(norm, dim), nn.ReLU()]
            width = dim
        self.net = nn.Sequential(*blocks)

    def forward(self, x, lengths=None):  # (B, L) or (B, C, L); lengths (B,) valid samples of padded inputs
        if x.dim() == 2:
            x = rearrange(x, "b l -> b 1 l")
        if lengths is None:
            return rearrange(self.net(x), "b d t -> b t d")  # (B, T, D)
        valid = lengths
        for i in range(0, len(self.net), 3):
            conv, norm, act = self.net[i:i + 3]
            valid = valid_steps(valid, x.shape[-1], conv.kernel_size[0], conv.stride[0], conv.padding[0])
            x = conv(x)  # (B, D, T_i)
            x = act(norm(x, valid) if isinstance(norm, MASKED_NORMS) else norm(x))  # per-step norms ignore valid
        return rearrange(x, "b d t -> b t d")  # (B, T, D)
