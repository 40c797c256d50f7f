"""Padded sequences: which steps are real, and norms whose statistics ignore the padding.

Shapes: B batch, D channels, T steps. A padded batch says how many leading steps of each sequence are valid,
`valid` (B,) int64; the rest is padding whose content must never change a valid output. Batch and instance
norm compute their statistics over the steps, so in training mode the padding would leak into every valid
output through the mean and variance; the masked norms below take only valid steps into them. Without `valid`
they are exactly nn.BatchNorm1d and nn.InstanceNorm1d (same parameter and buffer names: checkpoints load
either way).
"""
import torch
from torch import nn


def frame_mask(valid, steps: int):
    """(B,) valid steps -> (B, T) bool, True on the first valid[b] steps of sequence b."""
    return torch.arange(steps, device=valid.device) < valid[:, None]


def masked_moments(x, valid, dims):
    """Mean and (biased) variance of x (B, D, T) over `dims`, counting only valid steps, in fp32 (also under
    bf16 autocast); also returns the number of values counted."""
    mask = frame_mask(valid, x.shape[-1])[:, None]  # (B, 1, T)
    x = torch.where(mask, x.float(), 0.0)  # padding may hold anything, even inf
    n = mask.expand_as(x).sum(dims, keepdim=True).clamp(min=1)
    mean = x.sum(dims, keepdim=True) / n
    var = torch.where(mask, (x - mean).square(), 0.0).sum(dims, keepdim=True) / n
    return mean, var, n


def normalized(x, mean, var, eps: float, weight=None, bias=None):
    """(x - mean) / sqrt(var + eps), times weight plus bias (D,) when given, in x's dtype."""
    y = (x.float() - mean) * torch.rsqrt(var + eps)  # (B, D, T)
    if weight is not None:
        y = y * weight[:, None] + bias[:, None]
    return y.to(x.dtype)


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """Batch statistics (training mode) over the valid steps of every sequence; running statistics updated
    from them as nn.BatchNorm1d would."""

    def forward(self, x, valid=None):  # (B, D, T), valid (B,)
        batch_stats = self.training or self.running_mean is None
        if valid is None or not batch_stats:  # running statistics are per step: padding cannot reach them
            return super().forward(x)
        mean, var, n = masked_moments(x, valid, (0, 2))  # (1, D, 1) each
        if self.training and self.track_running_stats:
            self.update_running_stats(mean.flatten(), var.flatten() * n.flatten() / (n.flatten() - 1).clamp(min=1))
        return normalized(x, mean, var, self.eps, self.weight if self.affine else None, self.bias)

    @torch.no_grad()
    def update_running_stats(self, mean, unbiased_var) -> None:
        """What nn.BatchNorm1d does to its buffers in a training step (the running variance is unbiased)."""
        self.num_batches_tracked.add_(1)
        factor = 1 / self.num_batches_tracked.item() if self.momentum is None else self.momentum
        self.running_mean.lerp_(mean.to(self.running_mean.dtype), factor)
        self.running_var.lerp_(unbiased_var.to(self.running_var.dtype), factor)


class MaskedInstanceNorm1d(nn.InstanceNorm1d):
    """Per-sequence statistics over its valid steps; running statistics are not supported with `valid`."""

    def forward(self, x, valid=None):  # (B, D, T), valid (B,)
        if valid is None:
            return super().forward(x)
        if self.track_running_stats:
            raise ValueError("MaskedInstanceNorm1d keeps no running statistics of padded sequences; build it "
                             "with track_running_stats=False")
        mean, var, _ = masked_moments(x, valid, (2,))  # (B, D, 1) each
        return normalized(x, mean, var, self.eps, self.weight if self.affine else None, self.bias)
