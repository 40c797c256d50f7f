"""Random draws and their ranges, shared by the modalities' augmentations (seqcpc/image/views.py,
seqcpc/audio/views.py)."""
import torch

from seqcpc.errors import ConfigError


def check_pair(name: str, pair, low: float = 0.0) -> tuple[float, float]:
    """A (low, high) range given as two numbers with low <= high, both > `low`."""
    if len(pair) != 2 or not low < pair[0] <= pair[1]:
        raise ConfigError(f"views: {name}={list(pair)} must be two numbers, {low} < first <= second")
    return float(pair[0]), float(pair[1])


def uniform(low: float, high: float, n: int, device) -> torch.Tensor:
    """(n,) values drawn uniformly in [low, high]."""
    return low + (high - low) * torch.rand(n, device=device)
