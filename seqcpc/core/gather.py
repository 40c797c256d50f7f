"""Gathering tensors from every rank through the run's Fabric, for objectives whose negatives span the ranks.

The loop hands each model its Fabric (seqcpc.core.model.Pretrainable.use_fabric); every module that is a
`Gathers` then holds a RankGather. Without one (a single process, tests, evaluation) gathering returns the
local tensor, so an objective is written once for one device and for many.
"""
import torch


class RankGather:
    """`gather(t, grads)`: t (B, ...) on every rank -> (world * B, ...) in rank order; with grads=True the
    gradient flows back to each rank's own slice (Fabric's all_gather with sync_grads, as multi-GPU SimCLR
    needs). `rank` is this process's index, so its rows of the result start at rank * B."""

    def __init__(self, fabric=None):
        self.fabric = fabric
        self.world = fabric.world_size if fabric is not None else 1
        self.rank = fabric.global_rank if fabric is not None else 0

    def __call__(self, t: torch.Tensor, grads: bool = False) -> torch.Tensor:
        if self.world == 1:
            return t
        if not grads:
            t = t.detach()
        return self.fabric.all_gather(t, sync_grads=grads).flatten(0, 1)  # (world, B, ...) -> (world B, ...)


class Gathers:
    """A mixin for modules that gather across ranks: `self.gather` is a single-process RankGather until the
    loop gives the model its Fabric."""

    gather = RankGather()
