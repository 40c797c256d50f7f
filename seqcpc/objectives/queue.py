"""A first-in first-out queue of past keys, kept as module buffers so that a checkpoint holds it and a resumed
run continues with the same queue (MoCo's dictionary; also the `negatives=queue` source of CPC's InfoNCE).

Shapes: Q queue size, F key dim, M keys pushed at once.
"""
import torch
from torch import nn


class KeyQueue(nn.Module):
    """Starts empty, or (random=True, as MoCo) full of random unit vectors, so that the loss starts at chance."""

    def __init__(self, size: int, dim: int, random: bool = False):
        super().__init__()
        if size < 1 or dim < 1:
            raise ValueError(f"a key queue needs size >= 1 and dim >= 1, got {size} and {dim}")
        keys = nn.functional.normalize(torch.randn(size, dim), dim=1) if random else torch.zeros(size, dim)
        self.register_buffer("keys", keys)
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # where the next key goes
        self.register_buffer("filled", torch.tensor(size if random else 0))  # keys written so far (capped at Q)

    def __len__(self) -> int:
        return int(self.filled)

    def current(self) -> torch.Tensor:
        """(min(filled, Q), F): a copy of the keys written so far (a copy, so that pushing after the scores
        are computed does not touch what backward needs)."""
        return self.keys[: int(self.filled)].clone()

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Write keys (M, F) over the oldest ones; with M > Q only the last Q are kept."""
        keys = keys.detach().to(self.keys.dtype)[-len(self.keys):]
        Q, M = len(self.keys), len(keys)
        slots = (int(self.ptr) + torch.arange(M, device=keys.device)) % Q
        self.keys[slots] = keys
        self.ptr.fill_((int(self.ptr) + M) % Q)
        self.filled.fill_(min(Q, int(self.filled) + M))
