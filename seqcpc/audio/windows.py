"""Training windows cut from a manifest's utterances, and a sampler of one-speaker or one-utterance batches.

Item shapes: x (1, L) float32 with L = window samples at the corpus rate, group () int64 speaker index, and
for a padded dataset (min_clip < window) length () int64, the valid samples of x. A dataset given frame labels
(`frames`, phones.txt's {utterance id: one label per 10 ms}) also gives length (L for a whole window) and
labels (U,) int64, U = the 10 ms frames of a window, -1 where the utterance has none (past its alignment, in
the padding, or an utterance without labels).
Only metadata lives in memory; each item reads its window from disk, inside its row's span of the file (a
segment row of a long file, seqcpc.audio.manifest: Utterance.start_at). The window of item i in epoch e starts
at a position drawn from (seed, e, i), so an epoch's windows are the same in a resumed run. Utterances
shorter than min_clip samples (by default the window) are skipped (the count is kept in `skipped_short`
and logged with the share of the corpus used, `usage()`); with min_clip < window, a clip of min_clip..window
samples is read whole and zero-padded at its end to the window, and every item carries its valid length so
the model never scores the padding. When clips are left out as short, `usage()` says which data.min_clip would
keep how many of them.

Bad files: every file is checked when the dataset is built; with on_bad_file="skip" a missing, empty or
unreadable one is left out and listed in `bad_files`, and a window that still fails to read (a truncated
file, NaN samples) is replaced by the next item's window with a warning naming the file. With "stop" the
first bad file raises a DataError naming it.
"""
import itertools
import math
import sys

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from seqcpc.audio.io import read_audio, usable_audio_info
from seqcpc.audio.manifest import manifest_roots, read_manifest, resolve_path
from seqcpc.errors import DataError


def min_clip_hint(short_lengths: list[int]) -> str:
    """"; to keep ..." naming the data.min_clip values that would keep half and 90% of the clips left out as
    short (lengths in samples), or "" when none was."""
    lengths = np.sort([n for n in short_lengths if n > 0])[::-1]  # longest first; 0 would mean "the window"
    if not len(lengths):
        return ""
    picks = sorted({int(lengths[math.ceil(share * len(lengths)) - 1]) for share in (0.5, 0.9)}, reverse=True)
    keeps = " or ".join(f"data.min_clip={n} (keeps {int((lengths >= n).sum())})" for n in picks)
    return f"; to keep short clips, zero-padded (objectives that leave padding out, such as cpc), set {keeps}"


def window_labels(labels: np.ndarray, start: int, n: int, frames: int, sample_rate: int) -> torch.Tensor:
    """(U,) int64 with U = `frames`: the label of each 10 ms frame of the window at sample `start` of a clip of
    n samples whose labels (one per 10 ms) are `labels`, the label at the frame's centre; -1 past the clip or
    its labels."""
    centre = np.floor(start * 100 / sample_rate + np.arange(frames) + 0.5).astype(np.int64)
    inside = (centre < len(labels)) & (centre * sample_rate < (n * 100))
    out = np.full(frames, -1, dtype=np.int64)
    out[inside] = labels[centre[inside]]
    return torch.from_numpy(out)


class WindowDataset(Dataset):
    def __init__(self, manifest, splits, window: int, sample_rate: int, seed: int = 0,
                 allow_outside_paths: bool = False, speakers: list[str] | None = None, on_bad_file: str = "skip",
                 min_clip: int = 0, frames: dict | None = None):
        if on_bad_file not in ("skip", "stop"):
            raise ValueError(f"on_bad_file must be 'skip' or 'stop', not {on_bad_file!r}")
        if not 0 <= min_clip <= window:
            raise ValueError(f"min_clip must be between 0 (the window) and the window of {window} samples, "
                             f"not {min_clip}")
        self.on_bad_file = on_bad_file
        roots = manifest_roots(manifest)
        self.window, self.sample_rate, self.seed, self.epoch = window, sample_rate, seed, 0
        self.min_clip = min_clip or window
        self.padded = self.min_clip < window  # items carry their valid length
        self.frames = frames  # {id: labels at 10 ms}: items carry their window's labels (and length)
        self.label_frames = window * 100 // sample_rate  # U
        # the manifest is streamed and only (id, speaker, samples, path, start) is kept of each usable row, so
        # memory grows by tens of bytes per utterance and never with the audio
        self.short_lengths, self.bad_files, kept, total = [], [], [], 0  # samples of each clip left out as short
        self.total_samples = 0  # of every row, to say what share of the corpus is used
        last = (None, None)  # (path, info) of the previous row: the segments of one file follow each other
        for row in read_manifest(manifest, splits):
            total += 1
            n = row.samples_at(sample_rate)
            self.total_samples += n
            if n < self.min_clip:
                self.short_lengths.append(n)
                continue
            path = str(resolve_path(manifest, row.path, roots, allow_outside_paths))
            if path != last[0]:
                last = (path, usable_audio_info(path, on_bad_file, self.bad_files))
            if last[1] is None:
                continue
            if problem := row.span_problem(last[1][2]):
                raise DataError(f"{manifest}: {problem} ({path}); the manifest does not fit its audio")
            kept.append((row.id, row.speaker, n, last[0], row.start_at(sample_rate)))
        self.total_clips = total
        if not kept:
            raise DataError(f"{manifest}: no usable utterance among the {total} of {', '.join(splits)}: "
                            f"{self.skipped_short} are shorter than {self.min_clip} samples "
                            f"({'data.min_clip' if self.padded else 'the window'}), "
                            f"{len(self.bad_files)} cannot be read{min_clip_hint(self.short_lengths)}")
        ids, speaker_of, lengths, paths, starts = zip(*kept)
        # `speakers` fixes the speaker -> index map (e.g. the training split's) so ids agree across splits
        self.speakers = speakers or sorted(set(speaker_of))
        index = {s: i for i, s in enumerate(self.speakers)}
        self.ids, self.paths = list(ids), list(paths)
        self.lengths = np.array(lengths, dtype=np.int64)
        self.starts = np.array(starts, dtype=np.int64)  # first sample of each clip in its file (segment rows)
        self.groups = np.array([index.get(s, -1) for s in speaker_of], dtype=np.int64)

    def __len__(self):
        return len(self.paths)

    @property
    def skipped_short(self) -> int:
        return len(self.short_lengths)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def usage(self) -> str:
        """What share of the corpus the dataset uses, e.g. "using 812 of 1000 clips (93% of the audio); 188
        shorter than data.min_clip (8000 samples)"."""
        used = int(self.lengths.sum())
        share = 100 * used / max(self.total_samples, 1)
        limit = f"data.min_clip ({self.min_clip} samples)" if self.padded else f"the window ({self.window} samples)"
        return (f"using {len(self)} of {self.total_clips} clips ({share:.0f}% of the audio); "
                f"{self.skipped_short} shorter than {limit}, {len(self.bad_files)} unreadable"
                f"{min_clip_hint(self.short_lengths)}")

    def read(self, i, repeat: int = 0):
        """(x (1, L), group) of a random window of clip i; for a padded dataset also its valid samples (); with
        frame labels also the valid samples and the window's labels (U,)."""
        n, start, first = int(self.lengths[i]), 0, int(self.starts[i])  # start: in the clip, first: of the clip
        if n < self.window:  # a short clip, whole, then zeros: the model is told where its padding starts
            x = np.zeros(self.window, dtype=np.float32)
            x[:n] = read_audio(self.paths[i], first, n, self.sample_rate)
        else:
            rng = np.random.default_rng([self.seed, self.epoch, i, repeat])
            start = int(rng.integers(0, n - self.window + 1))
            x = read_audio(self.paths[i], first + start, self.window, self.sample_rate)  # (L,)
        item = torch.from_numpy(x)[None], torch.tensor(self.groups[i])
        if self.frames is not None:
            return *item, torch.tensor(min(n, self.window)), self.window_labels(i, start, n)
        return (*item, torch.tensor(min(n, self.window))) if self.padded else item

    def window_labels(self, i, start: int, n: int) -> torch.Tensor:
        labels = self.frames.get(self.ids[i], np.empty(0, np.int16))
        return window_labels(labels, start, n, self.label_frames, self.sample_rate)

    def __getitem__(self, i):
        """Item i; an index of r * len(self) + i asks for another random window of utterance i (r > 0),
        which is how a sampler puts several windows of one utterance in a batch."""
        repeat, i = divmod(i, len(self))
        for attempt in range(len(self)):
            try:
                return self.read((i + attempt) % len(self), repeat)
            except DataError as err:
                if self.on_bad_file == "stop":
                    raise
                print(f"warning: skipping a window: {err}", file=sys.stderr, flush=True)
        raise DataError("no file of the dataset could be read")


class GroupBatchSampler(Sampler):
    """Batches whose windows all come from one group: a speaker (the CPC reference code's speaker sampler,
    so negatives drawn from the batch are same-speaker negatives) or an utterance (several windows of one
    recording). A group with fewer items than a batch is topped up with other random windows of its
    utterances, never the same window twice (but a clip shorter than the window is the same whole clip each
    time). Each rank takes its own share of every epoch's shuffled batches; `set_position` restarts an epoch
    after its first batches."""

    def __init__(self, groups, batch_size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0, dataset=None):
        self.groups, self.batch_size = np.asarray(groups), batch_size
        self.num_replicas, self.rank, self.seed, self.dataset = num_replicas, rank, seed, dataset
        self.epoch, self.start = 0, 0
        per_speaker = np.bincount(self.groups[self.groups >= 0])
        self.total = int(sum(max(1, n // batch_size) for n in per_speaker if n > 0)) // num_replicas

    def set_position(self, epoch: int, batches_done: int = 0) -> None:
        self.epoch, self.start = epoch, batches_done
        if self.dataset is not None:
            self.dataset.set_epoch(epoch)

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        out = []
        for g in np.unique(self.groups[self.groups >= 0]):
            idx = rng.permutation(np.flatnonzero(self.groups == g))
            if len(idx) < self.batch_size:  # r-th extra window of item i is index r * N + i (see WindowDataset)
                extra = np.arange(len(idx), self.batch_size)
                idx = np.concatenate([idx, idx[extra % len(idx)] + (extra // len(idx)) * len(self.groups)])
            out += [idx[j:j + self.batch_size].tolist() for j in range(0, len(idx) - self.batch_size + 1, self.batch_size)]
        order = rng.permutation(len(out))
        return [out[j] for j in order[self.rank::self.num_replicas][: self.total]]

    def __iter__(self):
        return itertools.islice(iter(self.batches()), self.start, None)

    def __len__(self):
        return self.total - self.start
