"""The contract every model trained by the loop keeps, whatever its objective and modality.

It sits in the core, below the objectives and the loop, so both import it without a back arrow.
"""
from torch import nn

from seqcpc.core.gather import Gathers, RankGather


class Pretrainable(nn.Module):
    """What the training loop (seqcpc/train/loop.py) asks of a model, whatever its objective:

    forward(x, groups)  -> (loss, metrics): metrics is a flat dict of scalar tensors that the loop averages,
                           logs and plots; keys "name/member" (e.g. "acc/k3") are plotted in one panel per name
                           and left out of the console line. The loop calls model(*batch), so a dataset of
                           padded sequences adds lengths (B,), the valid samples of each (CPC's forward takes it)
    embed(x)            -> frozen features, without augmentation
    chance_loss(b, n)   -> the loss of features that carry no information, for a batch of b samples with n
                           latent positions each (the plateau a run must leave)
    on_step_end(step)   -> after every optimizer step (e.g. a momentum encoder's update)
    on_epoch_start(e)   -> before every pass over the training data, and when a resumed run re-enters one
                           (e.g. a pruning mask recomputed from the weights)
    use_fabric(fabric)  -> once before training: the modules that gather across ranks get the run's Fabric
    side_parameters()   -> parameters trained beside the objective on detached features (online probes): the
                           loop clips their gradients on their own, so they never shrink the objective's step
    """

    def use_fabric(self, fabric) -> None:
        gather = RankGather(fabric)
        for module in self.modules():
            if isinstance(module, Gathers):
                module.gather = gather

    def chance_loss(self, batch_size: int, positions: int) -> float:
        raise NotImplementedError

    def side_parameters(self) -> list:
        return []

    def on_step_end(self, step: int) -> None:
        pass

    def on_epoch_start(self, epoch: int) -> None:
        pass
