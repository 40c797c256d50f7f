"""Data loaders whose samplers a resumed run can restart mid-epoch.

Every dataset item is (x, group): x is one training sample as the encoder reads it, group an int64 id
(speaker, source, an image's index) used by negatives='group' and by one-group batches; a dataset of padded
sequences adds length, the valid samples of x. The loop calls model(*batch). A dataset that streams whole
batches (an IterableDataset, e.g. seqcpc.audio.shards.ShardWindows) lays out each rank's and worker's share
itself and is its own sampler. Which datasets and
which batch sampler come from the modality's registry entry.
"""
import itertools

from torch.utils.data import DataLoader, DistributedSampler, IterableDataset


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


def make_loader(dataset, batch_size: int, num_workers: int, world_size: int, rank: int, seed: int, train: bool,
                batch_sampler=None):
    """(DataLoader, sampler): the given batch sampler (e.g. one-speaker batches), else a shuffled (training) or
    ordered (validation) share of the dataset for this rank. Either has set_position(epoch, batches_done)."""
    if isinstance(dataset, IterableDataset):
        dataset.distribute(world_size, rank, num_workers)
        return DataLoader(dataset, batch_size=None, num_workers=num_workers), dataset
    if batch_sampler is not None:
        return DataLoader(dataset, batch_sampler=batch_sampler, num_workers=num_workers), batch_sampler
    sampler = ResumableSampler(dataset, world_size, rank, seed, batch_size, shuffle=train)
    loader = DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True)
    return loader, sampler
