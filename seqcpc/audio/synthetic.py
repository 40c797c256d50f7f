"""Built-in synthetic sequences: sums of sinusoids whose frequencies drift slowly.

Each sequence belongs to one of `groups` sources (the stand-in for speakers): a source fixes the base
frequencies of its components, each sequence jitters them and lets them drift along a smooth random path, so
the near future of a sequence is predictable from its past while different sequences are told apart by
their frequencies. Sequence i is a pure function of (seed, i): nothing is stored, any size is free.
Item shapes: x (1, L) float32, group () int64.
"""
import math

import torch
from torch.utils.data import Dataset


class DriftingSines(Dataset):
    def __init__(self, num_sequences: int, length: int, groups: int = 8, seed: int = 0, components: int = 3):
        self.num_sequences, self.length, self.groups = num_sequences, length, groups
        self.seed, self.components = seed, components

    def __len__(self):
        return self.num_sequences

    def base_frequencies(self, group: int):
        """Cycles per sample of the group's components, log-uniform over periods of 8..200 samples."""
        g = torch.Generator().manual_seed(1_000_003 * (group + 1))
        return torch.exp(torch.empty(self.components).uniform_(math.log(1 / 200), math.log(1 / 8), generator=g))

    def __getitem__(self, i):
        if not 0 <= i < self.num_sequences:
            raise IndexError(i)
        g = torch.Generator().manual_seed(self.seed * 1_000_000_007 + i)
        group = i % self.groups
        L, C = self.length, self.components
        f0 = self.base_frequencies(group) * torch.exp(0.05 * torch.randn(C, generator=g))  # (C,)
        # drift: a random walk over 8 knots, linearly interpolated to every sample
        knots = torch.cumsum(0.1 * torch.randn(C, 8, generator=g), dim=1)  # (C, 8)
        drift = torch.nn.functional.interpolate(knots[None], size=L, mode="linear", align_corners=True)[0]
        freq = f0[:, None] * torch.exp(drift)  # (C, L)
        phase = 2 * math.pi * (torch.cumsum(freq, dim=1) + torch.rand(C, 1, generator=g))
        amp = torch.rand(C, 1, generator=g) + 0.5
        x = (amp * torch.sin(phase)).sum(0) + 0.1 * torch.randn(L, generator=g)  # (L,)
        return (x / x.std())[None].float(), torch.tensor(group)
