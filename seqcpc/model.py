"""The CPC model: encoder -> context -> predictor, scored by a loss.

Shapes: B batch, T latent steps, D latent dim, E context dim, K horizon.
The model knows nothing of the modality: the encoder turns its input into z (B, T, D) and everything after
works on that sequence.
"""
import torch
from torch import nn


class CPC(nn.Module):
    def __init__(self, encoder: nn.Module, context: nn.Module, predictor: nn.Module, loss: nn.Module):
        super().__init__()
        self.encoder, self.context, self.predictor, self.loss = encoder, context, predictor, loss

    def forward(self, x, groups=None):
        """Returns (loss, metrics); `groups` (B,) are group ids for negatives='group'."""
        z = self.encoder(x)  # (B, T, D)
        c = self.context(z)  # (B, T, E)
        preds = self.predictor(c)  # (B, K, T, D)
        return self.loss(preds, z, groups)

    @torch.no_grad()
    def embed(self, x):
        """Frozen features: (z (B, T, D), c (B, T, E))."""
        z = self.encoder(x)
        return z, self.context(z)
