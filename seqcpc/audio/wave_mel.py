"""CMC's views of a speech window (seqcpc/objectives/cmc.py): the waveform through the conv encoder and a log mel
filterbank of the same window (seqcpc/audio/lfb.py) through its own projection, each with its own context network
of the model section's kind, averaged over time to one vector. The two carry the same content by two routes.

Shapes: B batch, L samples, T latent steps, D latent dim, E context dim.
The log mel frames are taken every model.encoder.hop samples, which the check sets equal to the conv encoder's
downsampling, so that both views have a latent where the other has one and their frozen features concatenate frame
by frame (an input length at which their counts differ by a frame is cut to the shorter).
"""
from torch import nn


class ParallelViews(nn.Module):
    """x (B, 1, L) -> [each view's pooled features (B, E)]; every view reads the whole input."""

    def __init__(self, views: list):
        super().__init__()
        self.views = nn.ModuleList(views)  # PooledContext each: the waveform's, the log mel's
        self.dims = [v.dim for v in views]

    def forward(self, x):
        return [view(x) for view in self.views]

    def latents(self, x):
        """[(z (B, T, D), c (B, T, E))] of each view, cut to the fewest frames of any."""
        latents = [view.latents(x) for view in self.views]
        T = min(z.shape[1] for z, _ in latents)
        return [(z[:, :T], c[:, :T]) for z, c in latents]
