"""Image CPC (CPC v2): patch grid -> per-patch encoder -> masked-conv context -> predictions rows below.

Shapes: B batch, C channels, H x W pixels, Gh x Gw patch grid, D latent dim, E context dim, K rows ahead.
The context at row r predicts the latents of rows r + F .. r + K in its column (F = objective.predictor.first: with
patches overlapping by half, row r + 1 shares pixels with row r, which CPC v2 avoids by starting further down),
scored against the latents themselves or their projection (objective.predictor.target_dim), the predictions
multiplied by objective.predictor.scale. Each grid column is then a
sequence along the rows, which is exactly what the core's predictor and InfoNCE take: (B Gw, Gh, D). With
negatives='all' every other patch latent of the batch is a negative (one matmul per k).
More directions (up to 4: top-down, then the grid rotated by 90, 180, 270 degrees, i.e. right-to-left,
bottom-up, left-to-right) each get their own predictor and, unless the context is shared, their own context;
the loss is their mean.
"""
import torch
from einops import rearrange
from torch import nn

from seqcpc.core.model import Predictive, scaled
from seqcpc.core.pretrainable import Pretrainable
from seqcpc.image.patches import patchify


class PatchCPC(Predictive, Pretrainable):
    def __init__(self, encoder: nn.Module, contexts: nn.ModuleList, predictors: nn.ModuleList, loss: nn.Module,
                 augment: nn.Module, patch: int, stride: int, targets: nn.Module = None, scale: float = 1.0):
        super().__init__()
        self.encoder, self.contexts, self.predictors, self.loss = encoder, contexts, predictors, loss
        self.augment, self.patch, self.stride = augment, patch, stride
        self.targets, self.scale = targets or nn.Identity(), scale

    def patches(self, x):
        """(B, C, H, W) -> (B, Gh, Gw, C, p, p), augmented in training mode only."""
        return self.augment.patch_grid(x, self.patch, self.stride)

    def context(self, z, direction: int = 0):
        """The context for one direction: z (B, Gh, Gw, D) is rotated so that it runs top-down."""
        z = torch.rot90(z, direction, dims=(1, 2))
        ctx = self.contexts[direction if len(self.contexts) > 1 else 0]
        return z, ctx(z)  # rotated z (B, Gh', Gw', D), c (B, Gh', Gw', E)

    def predict(self, x):
        """[(predictions (B Gw, K', Gh, D'), targets (B Gw, Gh, D')) for each direction], each grid column a
        sequence along the rows."""
        z = self.encoder(self.patches(x))  # (B, Gh, Gw, D)
        pairs = []
        for d, predictor in enumerate(self.predictors):
            zd, c = self.context(z, d)
            preds = scaled(predictor(rearrange(c, "b gh gw e -> (b gw) gh e")), self.scale)
            pairs.append((preds, self.targets(rearrange(zd, "b gh gw d -> (b gw) gh d"))))
        return pairs

    def forward(self, x, groups=None):
        """Returns (loss, metrics) averaged over the directions; `groups` is unused (no group negatives)."""
        return self.compete(x)

    @torch.no_grad()
    def embed(self, x):
        """Frozen features of the un-augmented grid: (z (B, Gh, Gw, D), c (B, Gh, Gw, E)) top-down."""
        z = self.encoder(patchify(x, self.patch, self.stride))
        return z, self.context(z)[1]

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return self.loss.chance_loss(batch_size, positions)
