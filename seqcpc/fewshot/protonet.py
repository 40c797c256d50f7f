"""Prototypical networks (Snell et al. 2017) and their registry entry.

Shapes: N ways, K shots, R query items, F feature dim.
"""
from dataclasses import dataclass

import torch

from seqcpc.fewshot.learners import EpisodeConfig, EpisodicLearner, check_class_major, class_major, learner_entry


@dataclass
class ProtoNetConfig(EpisodeConfig):
    """Prototypical networks on episodes (seqcpc/fewshot/protonet.py)."""


class ProtoNet(EpisodicLearner):
    """Snell et al. 2017: a class's prototype is the mean of its support features; logits are minus the squared
    Euclidean distances to the prototypes."""

    def classify(self, f_support, y_support, f_query, n_way: int):
        check_class_major(y_support, n_way)
        prototypes = class_major(f_support, n_way).mean(1)  # (N, F)
        return -torch.cdist(f_query, prototypes).pow(2)  # (R, N)


PROTONET = learner_entry("protonet", ProtoNetConfig, ProtoNet, "prototypical networks: each class is the mean of its "
                         "support features")
