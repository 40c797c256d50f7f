"""The few-shot learner of a model config: model.objective names it, model.meta configures it, and the modality
gives the feature network it learns on."""
from torch import nn

from seqcpc.config import MetaConfig
from seqcpc.fewshot.learners import EpisodicLearner, MatchingNet, ProtoNet
from seqcpc.fewshot.maml import MAML


def build_learner(objective: str, features: nn.Module, cfg: MetaConfig) -> EpisodicLearner:
    """`features` maps a batch to (B, F) and says its F in `features.dim`."""
    if objective == "protonet":
        return ProtoNet(features, cfg)
    if objective == "matching":
        return MatchingNet(features, cfg, features.dim)
    if objective == "maml":
        return MAML(features, cfg, features.dim)
    raise ValueError(f"model.objective={objective!r} is not a few-shot learner")
