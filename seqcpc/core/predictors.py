"""Predictors: from the context c[t], predict the latents z[t+k] for k = 1..K.

Shapes: B batch, T steps, E context dim, D latent dim, K horizon, H hidden dim.
Every predictor maps c (B, T, E) -> predictions (B, K, T, D); row k-1 holds the guess for z[t+k].
"""
import torch
from einops import rearrange
from torch import nn


class LinearPredictor(nn.Module):
    """One linear map W_k per step (the CPC paper), fused into a single (E -> K*D) matmul."""

    def __init__(self, in_dim: int, out_dim: int, steps: int):
        super().__init__()
        self.steps = steps
        self.to_pred = nn.Linear(in_dim, steps * out_dim, bias=False)

    def forward(self, c):  # (B, T, E)
        return rearrange(self.to_pred(c), "b t (k d) -> b k t d", k=self.steps)  # (B, K, T, D)


class MLPPredictor(nn.Module):
    """A two-layer network per step (`per_step=True`), or one shared hidden layer with a linear head per step."""

    def __init__(self, in_dim: int, out_dim: int, steps: int, hidden: int = 256, per_step: bool = False):
        super().__init__()
        self.steps, self.per_step = steps, per_step
        if per_step:
            # batched weights: one (E, H) and one (H, D) matrix per step, applied with einsum
            self.w1 = nn.Parameter(torch.randn(steps, in_dim, hidden) * in_dim**-0.5)
            self.b1 = nn.Parameter(torch.zeros(steps, 1, 1, hidden))
            self.w2 = nn.Parameter(torch.randn(steps, hidden, out_dim) * hidden**-0.5)
        else:
            self.hidden = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
            self.to_pred = nn.Linear(hidden, steps * out_dim, bias=False)

    def forward(self, c):  # (B, T, E)
        if self.per_step:
            h = torch.relu(torch.einsum("bte,keh->kbth", c, self.w1) + self.b1)  # (K, B, T, H)
            return torch.einsum("kbth,khd->bktd", h, self.w2)  # (B, K, T, D)
        return rearrange(self.to_pred(self.hidden(c)), "b t (k d) -> b k t d", k=self.steps)  # (B, K, T, D)


def make_predictor(kind: str, in_dim: int, out_dim: int, steps: int, hidden: int = 256, per_step: bool = False):
    """A predictor by name: "linear" (the paper) or "mlp"."""
    if kind == "mlp":
        return MLPPredictor(in_dim, out_dim, steps, hidden, per_step)
    if kind == "linear":
        return LinearPredictor(in_dim, out_dim, steps)
    raise ValueError(f"unknown predictor kind {kind!r}; choose linear or mlp")
