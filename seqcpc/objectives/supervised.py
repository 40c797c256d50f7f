"""The supervised ceiling: the same encoder and context as CPC, trained end to end to name each window's class
(the speaker) with a linear head on the pooled context, through the same loop and on the same windows.

Shapes: B batch, F pooled feature dim, C classes.
`features` is the modality's pooled network (seqcpc.core.model.PooledContext for sequences): features(x) ->
(B, F), features.dim = F, and features.latents(x) -> (z, c) as a CPC model's `embed`, so every probe and
`seqcpc extract` read a supervised model as they read a CPC one. Labels of -1 (validation speakers absent from
the training split) are left out of the loss and the accuracy.
"""
import math
from dataclasses import dataclass

import torch
from torch import nn

from seqcpc.core.pretrainable import Pretrainable
from seqcpc.core.online import known_label_scores
from seqcpc.errors import ConfigError
from seqcpc.fields import number
from seqcpc.objectives.classes import class_count
from seqcpc.objectives.registry import Objective


@dataclass
class SupervisedConfig:
    """The supervised ceiling: a linear head on the pooled context, trained with the encoder on each sample's class
    (seqcpc/objectives/supervised.py)."""
    classes: int = number(0, min=0)  # of the head; 0: counted from the training data (the speakers)


class Supervised(Pretrainable):
    def __init__(self, features: nn.Module, classes: int):
        super().__init__()
        if classes < 2:
            raise ConfigError(f"objective.name=supervised needs at least two classes (objective.classes={classes}): "
                              f"it is counted from the training data when a run completes its config; set it to "
                              f"build a model alone")
        self.features, self.classes = features, classes
        self.to_logits = nn.Linear(features.dim, classes)

    def forward(self, x, groups=None):
        """Returns (cross-entropy, {"acc"}) against `groups` (B,), the class of each sample."""
        if groups is None:
            raise ValueError("objective.name=supervised needs the batch's labels: call model(x, groups)")
        logits = self.to_logits(self.features(x)).float()  # (B, C); the softmax in fp32 under autocast
        loss, acc = known_label_scores(logits, groups)
        return loss, {"acc": acc}

    @torch.no_grad()
    def embed(self, x):
        """Frozen features as a CPC model gives them: (z, c)."""
        return self.features.latents(x)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return math.log(self.classes)


def complete(cfg, modality) -> None:
    """The head's classes from the training data, unless given."""
    cfg.objective.classes = class_count(cfg.objective.classes, *modality.count_classes(cfg), "objective.classes")


SUPERVISED = Objective(
    name="supervised", config=SupervisedConfig, parts=("pooled",), complete=complete,
    build=lambda parts, cfg: Supervised(parts.pooled(), cfg.classes), needs=lambda cfg: frozenset({"labels"}),
    summary="the supervised ceiling: the same encoder and context trained with the labels (the speakers)",
)
