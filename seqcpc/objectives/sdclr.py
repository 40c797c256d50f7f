"""SDCLR (Jiang et al. 2021): SimCLR with view 1 through the dense network and view 2 through its pruned twin
(seqcpc/objectives/pruning.py), whose mask is recomputed from the dense weights every epoch."""
from dataclasses import dataclass

from torch import nn

from seqcpc.fields import number
from seqcpc.objectives.ntxent import nt_xent
from seqcpc.objectives.pruning import SelfDamage
from seqcpc.objectives.registry import Objective
from seqcpc.objectives.simclr import SimCLR
from seqcpc.objectives.two_views import TwoViewsConfig, check_batch_negatives, two_views_model


@dataclass
class SDCLRConfig(TwoViewsConfig):
    """SDCLR: SimCLR against a pruned twin of the network (seqcpc/objectives/sdclr.py)."""
    # share of the weights the pruned branch drops
    prune_ratio: float = number(0.9, above=0, max=0.999, why="at 0 the pruned twin is the network itself")


class SDCLR(SimCLR):
    """SimCLR between the dense network (view 1) and its pruned twin (view 2)."""

    def __init__(self, features: nn.Module, views: nn.Module, cfg):
        super().__init__(features, views, cfg)
        damage = SelfDamage(self, cfg.prune_ratio)  # built before it is attached: it does not prune itself
        self.damage = damage

    def forward(self, x, groups=None):
        dense = self.project(self.views(x))
        pruned = self.damage.call(self, self.views(x), method="project")
        return nt_xent(dense, pruned, self.temperature, self.gather)

    def on_epoch_start(self, epoch: int) -> None:
        self.damage.refresh(self, epoch)


SDCLR_OBJECTIVE = Objective(
    name="sdclr", config=SDCLRConfig, build=two_views_model(SDCLR), parts=("pooled", "views"),
    check=check_batch_negatives,
    summary="SDCLR: SimCLR between the network and its pruned twin, for long-tailed data",
)
