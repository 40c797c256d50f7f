"""Online probes: linear classifiers trained beside the objective on detached features, so their accuracy shows
how much of the labels (speakers, phones) the representation holds while pretraining runs.

Shapes: B batch, T steps, E feature dim, C classes, U label frames.
OnlineProbe labels a whole sequence: its features are pooled over every axis between the batch and the feature
axis (time for sequences, only the valid steps of padded ones). FrameProbe labels every step (a phone per
frame). Both read detached features: the probe's cross-entropy is added to the model's loss, so one backward
pass and one optimizer train both, but no gradient of a probe reaches the encoder or the context. Labels of -1
(e.g. a validation speaker absent from the training split, a frame past the end of the alignment) are left out
of the loss and the accuracy.
"""
import torch
import torch.nn.functional as F
from einops import rearrange, reduce
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

    # the settings that ask for the head and count its classes, for the error of a count too small to train on
    option, count, source = "objective.online_probe", "objective.classes", "the training data"

    def __init__(self, dim: int, classes: int, name: str = "speaker"):
        super().__init__()
        if classes < 2:
            raise ConfigError(f"{self.option} needs at least two classes ({self.count}={classes}): they are counted "
                              f"from {self.source} when a run checks its config; set it to build a model alone")
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


def frame_labels(labels, steps: int):
    """labels (B, U) at their own frame rate -> (B, steps): the label of each step's centre, when the U label
    frames and the steps span the same stretch of input (e.g. 10 ms phone frames for a 20 ms encoder, U = 2 *
    steps)."""
    U = labels.shape[1]
    if U == steps:
        return labels
    centre = ((torch.arange(steps, device=labels.device) + 0.5) * U / steps).long().clamp(max=U - 1)
    return labels[:, centre]


class FrameProbe(OnlineProbe):
    """A linear head over `classes` on every detached step of sequence features; its metric is "online_<name>"."""

    option, count, source = "objective.online_phones", "objective.phone_classes", "the frame labels"

    def __init__(self, dim: int, classes: int, name: str = "phone"):
        super().__init__(dim, classes, name)

    def forward(self, features, labels, mask=None):
        """features (B, T, E), labels (B, U) with -1 for unknown frames -> (cross-entropy, {metric: accuracy})
        over the known frames; steps outside `mask` (B, T) (padding) are left out."""
        if labels is None:
            raise ValueError("the online frame probe needs the batch's frame labels: call model(x, groups, lengths, "
                             "frames)")
        labels = frame_labels(labels.long(), features.shape[1])  # (B, T)
        if mask is not None:
            labels = labels.masked_fill(~mask, -1)
        logits = self.to_logits(features.detach()).float()  # (B, T, C)
        loss, acc = known_label_scores(rearrange(logits, "b t c -> (b t) c"), labels.flatten())
        return loss, {self.metric: acc}
