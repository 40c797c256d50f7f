"""Datasets for pretraining, chosen by `data.kind`, and a sampler that a resumed run can restart mid-epoch.

Every dataset item is (x, group): x is one training window as the encoder reads it, group an int64 id
(speaker, source) used by negatives='group'.
"""
import itertools

from torch.utils.data import DistributedSampler

from seqcpc.config import DataConfig
from seqcpc.synthetic import DriftingSines


def build_datasets(cfg: DataConfig, seed: int):
    """(train, validation) datasets for a data config."""
    if cfg.kind == "synthetic":
        train = DriftingSines(cfg.num_sequences, cfg.window, cfg.groups, seed=seed)
        val = DriftingSines(cfg.val_sequences, cfg.window, cfg.groups, seed=seed + 1)
        return train, val
    raise ValueError(f"unknown data.kind {cfg.kind!r}")


class ResumableSampler(DistributedSampler):
    """DistributedSampler (a seeded shuffle per epoch, this rank's share) that can skip the first `start`
    indices of an epoch, so a resumed run sees exactly the batches an uninterrupted run would have seen."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.start = 0

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self):
        return super().__len__() - self.start
