"""SDCLR's self-damaged branch (Jiang et al., ICML 2021): a pruned copy of a network that shares every weight
with the dense one through a mask.

The mask keeps the largest-magnitude weights of all prunable layers together (convolutions, linear layers and
recurrent weight matrices; not biases or norms): one global threshold, the (1 - ratio) share kept exactly. It
is recomputed from the dense weights when an epoch starts and is a buffer, so a checkpoint holds it and a run
resumed mid-epoch keeps the mask it had. The pruned branch runs the dense network with `weight * mask` in place
of each prunable weight (so gradients reach the dense weights and the dense weights are never changed by the
mask) and with its own copies of every normalisation layer (its own affine weights and running statistics).
"""
import copy

import torch
from torch import nn
from torch.func import functional_call

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)
NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def key(name: str) -> str:
    """A dotted name as a buffer or module-dict key (which cannot hold dots)."""
    return name.replace(".", "__")


def prunable_weights(net: nn.Module) -> list[str]:
    """Names of the weights of net's convolutions, linear layers and recurrent layers."""
    names = []
    for prefix, module in net.named_modules():
        dot = f"{prefix}." if prefix else ""
        if isinstance(module, PRUNABLE):
            names.append(f"{dot}weight")
        elif isinstance(module, nn.RNNBase):
            names += [f"{dot}{n}" for n, _ in module.named_parameters(recurse=False) if n.startswith("weight_")]
    return names


class SelfDamage(nn.Module):
    """Masks and twin norms for the network `net` as it is when this is built (build it before attaching it
    to the model, so that it does not count itself)."""

    def __init__(self, net: nn.Module, ratio: float):
        super().__init__()
        if not 0 <= ratio < 1:
            raise ValueError(f"the pruning ratio must be in [0, 1), got {ratio}")
        self.ratio, self.names = ratio, prunable_weights(net)
        if not self.names:
            raise ValueError("the network has no convolution, linear or recurrent layer to prune")
        for name in self.names:
            self.register_buffer(f"mask__{key(name)}", torch.ones_like(net.get_parameter(name), dtype=torch.bool))
        self.norm_names = [n for n, m in net.named_modules() if isinstance(m, NORMS)]
        self.twins = nn.ModuleDict({key(n): copy.deepcopy(net.get_submodule(n)) for n in self.norm_names})
        self.register_buffer("epoch", torch.tensor(-1))  # the epoch the masks were computed at

    def mask(self, name: str) -> torch.Tensor:
        return getattr(self, f"mask__{key(name)}")

    def kept(self) -> float:
        """The share of prunable weights the masks keep."""
        return sum(int(self.mask(n).sum()) for n in self.names) / sum(self.mask(n).numel() for n in self.names)

    @torch.no_grad()
    def refresh(self, net: nn.Module, epoch: int) -> bool:
        """Recompute the masks from net's weights unless they were computed in this epoch; True if they were."""
        if int(self.epoch) == epoch:
            return False
        weights = [net.get_parameter(n).detach() for n in self.names]
        magnitudes = torch.cat([w.abs().flatten().float() for w in weights])
        keep = round((1 - self.ratio) * len(magnitudes))
        flat = torch.zeros(len(magnitudes), dtype=torch.bool, device=magnitudes.device)
        flat[magnitudes.topk(keep).indices] = True  # exactly `keep` weights; ties at the threshold by index
        for name, part in zip(self.names, flat.split([w.numel() for w in weights])):
            self.mask(name).copy_(part.view_as(self.mask(name)))
        self.epoch.fill_(epoch)
        return True

    def replacements(self, net: nn.Module) -> dict:
        """{name: tensor} that turns net into the pruned branch under torch.func.functional_call."""
        out = {n: net.get_parameter(n) * self.mask(n) for n in self.names}
        for name in self.norm_names:
            twin = self.twins[key(name)]
            out.update({f"{name}.{n}": t for n, t in [*twin.named_parameters(), *twin.named_buffers()]})
        return out

    def call(self, net: nn.Module, *args, method: str = "forward", **kwargs):
        """net.method(*args, **kwargs) as the pruned branch."""
        if method == "forward":
            return functional_call(net, self.replacements(net), args, kwargs, strict=False)
        replacements = {f"net.{n}": t for n, t in self.replacements(net).items()}
        return functional_call(Method(net, method), replacements, args, kwargs, strict=False)


class Method(nn.Module):
    """A module whose forward is another module's method, so functional_call can run that method."""

    def __init__(self, net: nn.Module, method: str):
        super().__init__()
        self.net, self.method = net, method

    def forward(self, *args, **kwargs):
        return getattr(self.net, self.method)(*args, **kwargs)
