"""The CPC model: an encoder, an autoregressive context and predictors of the latents ahead, scored by a loss.

Shapes: B batch, T latent steps, D latent dim, E context dim, K horizon.
The model knows nothing of the modality: the encoder turns its input into z (B, T, D) and everything after
works on that sequence.
"""
import math

import torch
from torch import nn

from seqcpc.core.masking import frame_mask
from seqcpc.core.online import FrameProbe, OnlineProbe
from seqcpc.core.pretrainable import Pretrainable


def scaled(preds, scale: float):
    """Predictions times CPC v2's embedding scale; untouched (not even multiplied by 1) at scale 1."""
    return preds if scale == 1 else preds * scale


def mean_scores(scores: list) -> tuple:
    """[(loss, metrics), ...] -> (mean loss, mean of each metric)."""
    losses, metrics = zip(*scores)
    return torch.stack(losses).mean(), {k: torch.stack([m[k] for m in metrics]).mean() for k in metrics[0]}


def crossed(predicting: list, targeted: list) -> list:
    """The predictions of one branch's (predictions, targets) pairs with the targets of the other's."""
    return [(p, t) for (p, _), (_, t) in zip(predicting, targeted)]


class Predictive:
    """What CPC and PatchCPC share: predict(x) -> [(predictions, targets), ...] scored by their loss, SDCLR's
    optional pruned competitor (objective.pruned_competitor), the optional online probes (linear heads on
    the detached context whose cross-entropy joins the loss: a sequence's class, objective.online_probe, and a class
    per step, objective.online_phones), and the loss's end of a step
    (the queue of negatives=queue takes the step's targets once, however many times the loss was called).

    The pruned competitor is a twin of the whole model that shares its weights through a mask
    (seqcpc/objectives/pruning.py). The twin's predictions are scored against the dense model's targets and the
    dense predictions against the twin's, and the loss is the mean of the two, so what the pruned network forgets
    costs the dense one too."""

    # the online probes' module names: a label per sequence (the speaker), a label per step (the phone)
    PROBES = ("online", "online_frames")

    def add_online_probe(self, dim: int, classes: int, name: str, per_step: bool = False) -> None:
        """A linear head on the detached context, trained beside the objective (seqcpc/core/online.py): one label
        per sequence, or one per step (`per_step`)."""
        if per_step:
            self.online_frames = FrameProbe(dim, classes, name)
        else:
            self.online = OnlineProbe(dim, classes, name)

    def probed(self, scores: tuple, c, groups, mask=None, frames=None) -> tuple:
        """(loss, metrics) with each online probe's cross-entropy on c (its valid steps `mask` of padded inputs)
        added and its accuracy among the metrics: the sequence probe reads `groups` (B,), the step probe
        `frames` (B, U); unchanged without probes."""
        loss, metrics = scores
        for name, labels in zip(self.PROBES, (groups, frames)):
            probe = self._modules.get(name)
            if probe is not None:
                probe_loss, probe_metrics = probe(c, labels, mask)
                loss, metrics = loss + probe_loss, {**metrics, **probe_metrics}
        return loss, metrics

    def side_parameters(self) -> list:
        """The online probes' parameters (clipped apart from the objective's by the loop)."""
        return [p for name in self.PROBES if name in self._modules for p in self._modules[name].parameters()]

    def probe_chance(self) -> float:
        """The online probes' share of the chance loss: log(classes) of each, 0 without probes."""
        return sum(math.log(self._modules[name].classes) for name in self.PROBES if name in self._modules)

    def pruned_twin(self):
        """The SelfDamage of the pruned competitor, or None."""
        return self._modules.get("damage")

    def on_epoch_start(self, epoch: int) -> None:
        if self.pruned_twin() is not None:
            self.pruned_twin().refresh(self, epoch)

    def on_step_end(self, step: int) -> None:
        self.loss.end_step()

    def compete(self, x, groups=None, pairs=None, lengths=None):
        """(loss, metrics) of predict(x)'s pairs (`pairs` when the caller has them), or of the crossed pairs when
        there is a pruned twin; with `lengths` (B,) (CPC's padded inputs) only valid targets are scored."""
        padded = {} if lengths is None else {"lengths": lengths}
        pairs, twin = self.predict(x, **padded) if pairs is None else pairs, self.pruned_twin()
        if twin is not None:
            pruned = twin.call(self, x, method="predict", **padded)
            pairs = crossed(pruned, pairs) + crossed(pairs, pruned)
        mask = None if lengths is None else self.valid_mask(x, lengths, pairs[0][1].shape[1])  # (B, T)
        return mean_scores([self.loss(p, t, groups, mask) for p, t in pairs])


class CPC(Predictive, Pretrainable):
    """`targets` maps z to what the predictions are scored against (nn.Identity: z itself); `scale`
    multiplies the predictions (see seqcpc.core.predictors.predictor_from_config). `augment_past`, when set, maps
    x (B, C, L) to an augmented copy (CPC2): in training the context reads the copy's latents while the targets
    stay the clean x's, so the model predicts clean speech from a distorted past."""

    def __init__(self, encoder: nn.Module, context: nn.Module, predictor: nn.Module, loss: nn.Module,
                 targets: nn.Module = None, scale: float = 1.0):
        super().__init__()
        self.encoder, self.context, self.predictor, self.loss = encoder, context, predictor, loss
        self.targets, self.scale, self.augment_past = targets or nn.Identity(), scale, None

    def encode(self, x, lengths=None):
        return self.encoder(x) if lengths is None else self.encoder(x, lengths)  # (B, T, D)

    def latents(self, x, lengths=None):
        """(z (B, T, D), c (B, T, E)), with gradients; `lengths` (B,) the valid samples of padded inputs. With
        augment_past in training, c is the context of the augmented copy's latents and z the clean x's."""
        z = self.encode(x, lengths)
        if self.augment_past is None or not self.training:
            return z, self.context(z)
        copy = self.augment_past(x, lengths)  # (B, C, L)
        # a second encoder pass for the windows that drew an effect only: the others' latents are z's
        changed = (copy != x).flatten(1).any(1).nonzero().squeeze(1)  # (B',)
        if not len(changed):
            return z, self.context(z)
        some = None if lengths is None else lengths[changed]
        return z, self.context(z.index_copy(0, changed, self.encode(copy[changed], some)))  # (B, T, E)

    def predict(self, x, latents=None, lengths=None):
        """[(predictions (B, K', T, D'), targets (B, T, D'))] of x, or of its `latents` (z, c) when given."""
        z, c = latents or self.latents(x, lengths)
        return [(scaled(self.predictor(c), self.scale), self.targets(z))]

    def valid_mask(self, x, lengths, steps: int):
        """(B, T) True where a latent's receptive field lies inside the valid samples `lengths` (B,) of x; the
        context is causal, so c there never saw the padding either."""
        return frame_mask(self.encoder.valid_frames(lengths, x.shape[-1]), steps)

    def forward(self, x, groups=None, lengths=None, frames=None):
        """Returns (loss, metrics); `groups` (B,) are group ids for negatives='group' and the online probe's
        labels; `lengths` (B,) the valid samples of padded inputs, whose padding is never scored; `frames` (B, U)
        the online step probe's labels (-1: unknown)."""
        if lengths is not None and bool((lengths >= x.shape[-1]).all()):
            lengths = None  # nothing is padded: the unmasked path (masked norms cost ~1.4x a step on CPU)
        z, c = self.latents(x, lengths)
        mask = None if lengths is None else self.valid_mask(x, lengths, c.shape[1])  # (B, T)
        return self.probed(self.compete(x, groups, self.predict(x, (z, c)), lengths), c, groups, mask, frames)

    @torch.no_grad()
    def embed(self, x):
        """Frozen features: (z (B, T, D), c (B, T, E))."""
        z = self.encoder(x)
        return z, self.context(z)

    @torch.no_grad()
    def hidden_states(self, x) -> list:
        """Frozen features of every layer: [z (B, T, D), c_1 (B, T, E), ..., c_L (B, T, E)]; c_L is embed's c."""
        z = self.encoder(x)
        return [z, *self.context.layers(z)]

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return self.loss.chance_loss(batch_size, positions) + self.probe_chance()


class PooledContext(nn.Module):
    """A sequence's features for classification: the context c averaged over time, (B, E). Parameter names
    (encoder.*, context.*) are those of a CPC model, so train.init_from can start it from a CPC checkpoint."""

    def __init__(self, encoder: nn.Module, context: nn.Module, dim: int):
        super().__init__()
        self.encoder, self.context, self.dim = encoder, context, dim

    def forward(self, x):
        return self.context(self.encoder(x)).mean(1)  # (B, T, E) -> (B, E)

    def latents(self, x):
        """Frozen features as a CPC model gives them: (z (B, T, D), c (B, T, E))."""
        z = self.encoder(x)
        return z, self.context(z)


class LocalGlobalContext(PooledContext):
    """x -> (the latents z (B, T, D), the context averaged over time (B, E)): local features and the global vector
    of objectives that score one against the other (DIM)."""

    def __init__(self, encoder: nn.Module, context: nn.Module, dim: int):
        super().__init__(encoder, context, dim)
        self.local_dim = encoder.dim  # D of the latents z

    def forward(self, x):
        z = self.encoder(x)  # (B, T, D)
        return z, self.context(z).mean(1)

    def map_cells(self, z, cells: int):
        """z (B, T, D) -> (B, D): a sequence is averaged over time, into one cell."""
        if cells != 1:
            raise ValueError(f"a sequence is averaged over time into one cell, not {cells} a side")
        return z.mean(1)

    def cells_dim(self, cells: int) -> int:
        return self.local_dim
