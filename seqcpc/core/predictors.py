"""Predictors: from the context c[t], predict the latents z[t+k] for k = 1..K.

Shapes: B batch, T steps, E context dim, D latent dim, K horizon, H hidden dim.
Every predictor maps c (B, T, E) -> predictions (B, K', T, D'); row i holds the guess for z[t+F+i], for the
K' = K - F + 1 offsets F..K (F = 1 in CPC). D' is D, or the target dim when targets are projected (CPC v2).
"""
from dataclasses import dataclass

import torch
from einops import rearrange
from torch import nn

from seqcpc.errors import ConfigError
from seqcpc.fields import choice, number


@dataclass
class PredictorConfig:
    kind: str = choice("linear", ["linear", "mlp"])
    steps: int = number(12, min=1)  # K: the last offset predicted; z[t+first] .. z[t+K]
    hidden: int = number(256, min=1)  # mlp only
    per_step: bool = False  # mlp only: one network per k instead of a shared hidden layer
    first: int = number(1, min=1)  # the first offset predicted (CPC v2 skips the rows that overlap the context)
    target_dim: int = number(0, min=0)  # > 0: targets are z projected linearly to this dim (CPC v2: 64); 0: z
    scale: float = number(1.0, above=0)  # predictions are multiplied by this before scoring (CPC v2: 0.1)


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


def scored_dim(pred, latent_dim: int) -> int:
    """The dim of what predictions are scored against: pred.target_dim, or z's own when targets are z."""
    return pred.target_dim or latent_dim


def predictor_from_config(pred, context_dim: int, latent_dim: int):
    """The predictor of the objective.predictor config section: it covers the offsets first..steps and predicts
    z, or z's projection to pred.target_dim (see target_projection)."""
    return make_predictor(pred.kind, context_dim, scored_dim(pred, latent_dim), pred.steps - pred.first + 1,
                          pred.hidden, pred.per_step)


def target_projection(pred, latent_dim: int) -> nn.Module:
    """What the predictions are scored against: z itself, or its linear projection to pred.target_dim (CPC
    v2's 1x1 convolution of the latents)."""
    return nn.Linear(latent_dim, pred.target_dim) if pred.target_dim else nn.Identity()


def check_offsets(pred, positions: int, what: str) -> None:
    """Refuse offsets that a sequence of `positions` latent steps cannot serve."""
    if not 1 <= pred.first <= pred.steps or positions <= pred.steps:
        raise ConfigError(f"objective.predictor.first={pred.first} and objective.predictor.steps={pred.steps}: need "
                          f"1 <= first <= steps < the {positions} {what} (a short sequence can predict nearer "
                          f"offsets, e.g. objective.predictor.first=1 objective.predictor.steps=1)")
