"""Online probes: a linear classifier trained beside the objective on detached features, so its accuracy shows
how much of the labels (the speakers) the representation holds while pretraining runs.

Shapes: B batch, T steps, E feature dim, C classes.
The features are pooled over every axis between the batch and the feature axis (time for sequences, only the
valid steps of padded ones) and detached: the probe's cross-entropy is added to the model's loss, so one
backward pass and one optimizer train both, but no gradient of the probe reaches the encoder or the context.
Labels of -1 (e.g. a validation speaker absent from the training split) are left out of the loss and the
accuracy.
"""
import torch.nn.functional as F
from einops import reduce
from torch import nn

from seqcpc.errors import ConfigError


def known_label_scores(logits, labels):
    """logits (B, C), labels (B,) with -1 for unknown -> (mean cross-entropy, accuracy) over the known labels;
    both 0 (and the loss still part of the graph, for DDP) when the batch has none."""
    known = labels >= 0
    count = known.sum().clamp(min=1)
    ce = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")  # (B,)
    hits = (logits.argmax(1) == labels) & known
    return (ce * known).sum() / count, hits.sum() / count


class OnlineProbe(nn.Module):
    """A linear head over `classes` on the pooled, detached features; its metric is "online_<name>"."""

    def __init__(self, dim: int, classes: int, name: str = "speaker"):
        super().__init__()
        if classes < 2:
            raise ConfigError(f"model.online_probe needs at least two classes (model.classes={classes}): it is "
                              f"counted from the training data when a run checks its config; set it to build a "
                              f"model alone")
        self.to_logits = nn.Linear(dim, classes)
        self.classes, self.metric = classes, f"online_{name}"

    def forward(self, features, labels, mask=None):
        """features (B, ..., E), labels (B,) -> (cross-entropy, {metric: accuracy}); a `mask` (B, T) of sequence
        features (B, T, E) pools only the steps it marks (the valid ones of padded inputs)."""
        if labels is None:
            raise ValueError("the online probe needs the batch's labels: call model(x, groups)")
        features = features.detach()
        if mask is None:
            pooled = reduce(features, "b ... e -> b e", "mean")
        else:
            weight = mask.to(features.dtype)[..., None]  # (B, T, 1)
            pooled = (features * weight).sum(1) / weight.sum(1).clamp(min=1)  # (B, E)
        logits = self.to_logits(pooled).float()  # (B, C); the softmax in fp32 under autocast
        loss, acc = known_label_scores(logits, labels)
        return loss, {self.metric: acc}
