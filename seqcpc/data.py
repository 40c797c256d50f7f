"""Datasets for pretraining, chosen by `data.kind`, and loaders whose samplers a resumed run can restart
mid-epoch.

Every dataset item is (x, group): x is one training window or image as the encoder reads it, group an int64
id (speaker, source; an image's index) used by negatives='group' and by one-speaker batches.
"""
import itertools
from functools import partial

import numpy as np

from torch.utils.data import DataLoader, DistributedSampler

from seqcpc.config import DataConfig
from seqcpc.image_store import ImageDataset
from seqcpc.synthetic import DriftingSines
from seqcpc.windows import GroupBatchSampler, WindowDataset


def build_datasets(cfg: DataConfig, seed: int):
    """(train, validation) datasets for a data config."""
    if cfg.kind == "images":
        return ImageDataset(cfg.images, "train"), ImageDataset(cfg.images, "test")
    if cfg.kind == "synthetic":
        train = DriftingSines(cfg.num_sequences, cfg.window, cfg.groups, seed=seed)
        val = DriftingSines(cfg.val_sequences, cfg.window, cfg.groups, seed=seed + 1)
        return train, val
    window = partial(WindowDataset, cfg.manifest, window=cfg.window, sample_rate=cfg.sample_rate, seed=seed,
                     allow_outside_paths=cfg.allow_outside_paths, on_bad_file=cfg.on_bad_file)
    train = window(["train"])
    return train, window(["test"], speakers=train.speakers)


class ResumableSampler(DistributedSampler):
    """DistributedSampler (a seeded shuffle per epoch, this rank's share) that can skip the first batches of
    an epoch, so a resumed run sees exactly the batches an uninterrupted run would have seen."""

    def __init__(self, dataset, num_replicas: int, rank: int, seed: int, batch_size: int, shuffle: bool = True):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=True)
        self.batch_size, self.start = batch_size, 0

    def set_position(self, epoch: int, batches_done: int = 0) -> None:
        self.set_epoch(epoch)
        self.start = batches_done * self.batch_size
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(epoch)

    def __iter__(self):
        return itertools.islice(super().__iter__(), self.start, None)

    def __len__(self):
        return super().__len__() - self.start


def make_loader(dataset, cfg: DataConfig, world_size: int, rank: int, seed: int, train: bool):
    """(DataLoader, sampler): for training, batches of one speaker (data.batching=speaker) or of one
    utterance (data.batching=utterance) when asked, else a shuffled (training) or ordered (validation)
    share of the dataset for this rank."""
    if train and cfg.batching != "uniform":
        groups = dataset.groups if cfg.batching == "speaker" else np.arange(len(dataset))
        sampler = GroupBatchSampler(groups, cfg.batch_size, world_size, rank, seed, dataset=dataset)
        return DataLoader(dataset, batch_sampler=sampler, num_workers=cfg.num_workers), sampler
    sampler = ResumableSampler(dataset, world_size, rank, seed, cfg.batch_size, shuffle=train)
    loader = DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, num_workers=cfg.num_workers,
                        drop_last=True)
    return loader, sampler
