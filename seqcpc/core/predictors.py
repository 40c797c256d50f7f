"""Predictors: from the context c[t], predict the latents z[t+k] for k = 1..K.

Shapes: B batch, T steps, E context dim, D latent dim, K horizon, H hidden dim.
Three kinds: one linear map per step (the CPC paper), a two-layer MLP, and one single-layer causal transformer per
step over the whole context sequence (CPC_audio's later default, `rnnMode transformer`).
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
    kind: str = choice("linear", ["linear", "mlp", "transformer"])
    steps: int = number(12, min=1)  # K: the last offset predicted; z[t+first] .. z[t+K]
    hidden: int = number(256, min=1)  # mlp: the hidden layer; transformer: each layer's feed-forward width
    heads: int = number(4, min=1)  # transformer only: attention heads (they must divide the context dim)
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


class TransformerPredictor(nn.Module):
    """One single-layer transformer per step k over the context sequence, then a projection to the latent dim
    (CPC_audio's transformer prediction head). The attention is causal, so the prediction at t reads c[<= t] only.
    No positions are added: c comes from a recurrent or positioned context, which already carries them."""

    def __init__(self, in_dim: int, out_dim: int, steps: int, hidden: int = 256, heads: int = 4):
        super().__init__()
        if in_dim % heads:
            raise ConfigError(f"objective.predictor.heads={heads} must divide the context dim {in_dim} "
                              f"(model.context.dim) for objective.predictor.kind=transformer")
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(in_dim, heads, hidden, dropout=0.0, batch_first=True, norm_first=True)
            for _ in range(steps))
        self.to_pred = nn.ModuleList(nn.Linear(in_dim, out_dim, bias=False) for _ in range(steps))
        for to_pred in self.to_pred:
            # small, as GPT-2 initialises its weights: the blocks' outputs are O(1) per dim (pre-norm), and at
            # the default scale the first scores are so spread that the loss starts ~0.7 above chance
            nn.init.normal_(to_pred.weight, std=0.02)

    def forward(self, c):  # (B, T, E)
        mask = nn.Transformer.generate_square_subsequent_mask(c.shape[1], device=c.device, dtype=c.dtype)  # (T, T)
        preds = [to_pred(block(c, src_mask=mask, is_causal=True)) for block, to_pred in zip(self.blocks, self.to_pred)]
        return torch.stack(preds, dim=1)  # (B, K, T, D)


def make_predictor(kind: str, in_dim: int, out_dim: int, steps: int, hidden: int = 256, per_step: bool = False,
                   heads: int = 4):
    """A predictor by name: "linear" (the paper), "mlp" or "transformer"."""
    if kind == "mlp":
        return MLPPredictor(in_dim, out_dim, steps, hidden, per_step)
    if kind == "linear":
        return LinearPredictor(in_dim, out_dim, steps)
    if kind == "transformer":
        return TransformerPredictor(in_dim, out_dim, steps, hidden, heads)
    raise ValueError(f"unknown predictor kind {kind!r}; choose linear, mlp or transformer")


def scored_dim(pred, latent_dim: int) -> int:
    """The dim of what predictions are scored against: pred.target_dim, or z's own when targets are z."""
    return pred.target_dim or latent_dim


def predictor_from_config(pred, context_dim: int, latent_dim: int):
    """The predictor of the objective.predictor config section: it covers the offsets first..steps and predicts
    z, or z's projection to pred.target_dim (see target_projection)."""
    return make_predictor(pred.kind, context_dim, scored_dim(pred, latent_dim), pred.steps - pred.first + 1,
                          pred.hidden, pred.per_step, pred.heads)


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
