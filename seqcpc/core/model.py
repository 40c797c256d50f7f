"""The CPC model, and the contract every model trained by the loop keeps.

Shapes: B batch, T latent steps, D latent dim, E context dim, K horizon.
The model knows nothing of the modality: the encoder turns its input into z (B, T, D) and everything after
works on that sequence.
"""
import torch
from torch import nn


class Pretrainable(nn.Module):
    """What the training loop (seqcpc/train/loop.py) asks of a model, whatever its objective:

    forward(x, groups)  -> (loss, metrics): metrics is a flat dict of scalar tensors that the loop averages,
                           logs and plots; keys "name/member" (e.g. "acc/k3") are plotted in one panel per name
                           and left out of the console line
    embed(x)            -> frozen features, without augmentation
    chance_loss(b, n)   -> the loss of features that carry no information, for a batch of b samples with n
                           latent positions each (the plateau a run must leave)
    on_step_end(step)   -> after every optimizer step (e.g. a momentum encoder's update)
    on_epoch_start(e)   -> before every pass over the training data, and when a resumed run re-enters one
                           (e.g. a pruning mask recomputed from the weights)
    """

    def chance_loss(self, batch_size: int, positions: int) -> float:
        raise NotImplementedError

    def on_step_end(self, step: int) -> None:
        pass

    def on_epoch_start(self, epoch: int) -> None:
        pass


def scaled(preds, scale: float):
    """Predictions times CPC v2's embedding scale; untouched (not even multiplied by 1) at scale 1."""
    return preds if scale == 1 else preds * scale


class CPC(Pretrainable):
    """`targets` maps z to what the predictions are scored against (nn.Identity: z itself); `scale`
    multiplies the predictions (see seqcpc.core.predictors.predictor_from_config)."""

    def __init__(self, encoder: nn.Module, context: nn.Module, predictor: nn.Module, loss: nn.Module,
                 targets: nn.Module = None, scale: float = 1.0):
        super().__init__()
        self.encoder, self.context, self.predictor, self.loss = encoder, context, predictor, loss
        self.targets, self.scale = targets or nn.Identity(), scale

    def forward(self, x, groups=None):
        """Returns (loss, metrics); `groups` (B,) are group ids for negatives='group'."""
        z = self.encoder(x)  # (B, T, D)
        c = self.context(z)  # (B, T, E)
        preds = scaled(self.predictor(c), self.scale)  # (B, K', T, D')
        return self.loss(preds, self.targets(z), groups)

    @torch.no_grad()
    def embed(self, x):
        """Frozen features: (z (B, T, D), c (B, T, E))."""
        z = self.encoder(x)
        return z, self.context(z)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return self.loss.chance_loss(batch_size, positions)


class PooledContext(nn.Module):
    """A sequence's features for classification: the context c averaged over time, (B, E). Parameter names
    (encoder.*, context.*) are those of a CPC model, so train.init_from can start it from a CPC checkpoint."""

    def __init__(self, encoder: nn.Module, context: nn.Module, dim: int):
        super().__init__()
        self.encoder, self.context, self.dim = encoder, context, dim

    def forward(self, x):
        return self.context(self.encoder(x)).mean(1)  # (B, T, E) -> (B, E)
