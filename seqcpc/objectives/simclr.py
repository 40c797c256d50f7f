"""SimCLR (Chen et al. 2020): NT-Xent between the projections of two views of each sample; the negatives are
every other view of the batch, gathered from every rank (seqcpc/objectives/ntxent.py)."""
from dataclasses import dataclass

from seqcpc.objectives.ntxent import nt_xent, nt_xent_chance
from seqcpc.objectives.registry import Objective
from seqcpc.objectives.two_views import TwoViews, TwoViewsConfig, check_batch_negatives, two_views_model


@dataclass
class SimCLRConfig(TwoViewsConfig):
    """SimCLR: two views, a projection head, NT-Xent (seqcpc/objectives/simclr.py)."""


class SimCLR(TwoViews):
    def forward(self, x, groups=None):
        """Returns (NT-Xent, {"acc"}); `groups` is unused."""
        return nt_xent(self.project(self.views(x)), self.project(self.views(x)), self.temperature, self.gather)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return nt_xent_chance(batch_size * self.gather.world)


SIMCLR = Objective(
    name="simclr", config=SimCLRConfig, build=two_views_model(SimCLR), parts=("pooled", "views"),
    check=check_batch_negatives,
    summary="SimCLR: NT-Xent between two augmented views of each sample, the rest of the batch as negatives",
)
