"""Mini-batch k-means (Sculley 2010) in torch, for turning frame features into discrete units.

Shapes: F frames, D feature dim, K clusters, B frames of a mini-batch, S frames of the initial sample, M
candidate frames for re-seeding.

The data is an (F, D) array (numpy, a numpy memmap or a tensor; mini-batches are drawn from a fresh random
order every pass) or a re-iterable of (n, D) chunks (a list, or an object whose __iter__ starts over each
time; each chunk's rows are shuffled and batched in the order the chunks come), so millions of frames need
not be in memory at once.

  init      k-means++ on S frames drawn uniformly (a seeded reservoir over one pass)
  passes    each frame of a mini-batch moves its nearest centroid by 1 / (frames that centroid has seen), so
            a centroid is the running mean of what it was given
  collapse  every `check_every` batches and after each pass but the last, clusters that got less than
            `min_share` of the frames since the last check are re-seeded by splitting: frames far from their
            centroid are drawn k-means++ style (probability ~ squared distance, so mostly from wide clusters)
            and each moves a re-seeded centroid a step SPLIT_STEP from the frame's centroid towards it; the
            two halves restart their running means. (A centroid placed on a frame itself would catch almost
            nothing in high dimensions, where every frame is far from every other.)
  final     one assignment pass counts each cluster's frames; an empty cluster is re-seeded on a frame,
            which is then strictly nearer to it than to any other centroid, and the pass is repeated, so the
            result has no empty cluster (or a DataError when there are fewer distinct frames than clusters)
The same seed and data give the same centroids.
"""
from typing import NamedTuple

import numpy as np
import torch

from seqcpc.errors import DataError

REPAIRS = 10  # final passes that may re-seed empty clusters before giving up
SPLIT_STEP = 0.1  # how far a re-seeded centroid starts from the centroid it splits, towards the drawn frame


class KMeans(NamedTuple):
    centroids: torch.Tensor  # (K, D) float32 on the CPU
    counts: np.ndarray  # (K,) frames of the data nearest to each centroid, all >= 1
    inertia: float  # mean squared distance of a frame to its centroid


class Reservoir:
    """The M items with the largest keys among all offered: with keys log(u) / w (u uniform) a sample without
    replacement with probability ~ w (Efraimidis and Spirakis 2006); no weights give a uniform sample. An
    item is a row of each of the columns offered together (e.g. frames (B, D) and their labels (B,))."""

    def __init__(self, size: int, generator: torch.Generator):
        self.size, self.generator = size, generator
        self.keys, self.columns = torch.empty(0), None

    def offer(self, weights: torch.Tensor | None, *columns: torch.Tensor) -> None:
        u = torch.rand(len(columns[0]), generator=self.generator).clamp_min(1e-12)
        keys = u.log() if weights is None else torch.where(weights.cpu() > 0, u.log() / weights.cpu(), -torch.inf)
        keys, top = keys.topk(min(self.size, len(keys)))  # only a batch's best can enter the reservoir
        columns = [c[top.to(c.device)].cpu() for c in columns]
        if self.columns is not None:
            keys, columns = torch.cat([self.keys, keys]), [torch.cat(pair) for pair in zip(self.columns, columns)]
        top = keys.topk(min(self.size, len(keys))).indices.sort().values  # kept in a fixed order: reproducible
        self.keys, self.columns = keys[top], [c[top] for c in columns]


def plus_plus(points: torch.Tensor, n: int, generator: torch.Generator, fixed: torch.Tensor | None = None):
    """Indices (<= n,) of rows of `points` (P, D) chosen one by one with probability ~ squared distance to the
    nearest of `fixed` (Q, D) and the rows already chosen (the first uniformly when nothing is fixed):
    k-means++. Fewer than n come back when every remaining point coincides with a centre. Distances are
    computed exactly (no matrix-product shortcut), so a duplicate of a centre has weight exactly 0."""
    nearest = torch.full((len(points),), torch.inf)
    for centre in [] if fixed is None else fixed:
        nearest = torch.minimum(nearest, (points - centre).pow(2).sum(1))
    chosen = []  # indices
    for _ in range(n):
        if torch.isinf(nearest).all():
            i = int(torch.randint(len(points), (1,), generator=generator))
        elif nearest.max() > 0:
            i = int(torch.multinomial(nearest, 1, generator=generator))
        else:
            break
        chosen.append(i)
        nearest = torch.minimum(nearest, (points - points[i]).pow(2).sum(1))
    return torch.tensor(chosen, dtype=torch.long)


def is_array(data) -> bool:
    return hasattr(data, "shape") and len(data.shape) == 2


def batches(data, batch_size: int, generator: torch.Generator | None):
    """Float32 tensors (B, D) covering the data once: shuffled when a generator is given, in order without."""
    if is_array(data):
        order = torch.randperm(len(data), generator=generator) if generator is not None else torch.arange(len(data))
        for start in range(0, len(data), batch_size):
            idx = order[start:start + batch_size].sort().values.numpy()  # sorted: sequential reads of a memmap
            rows = data[torch.as_tensor(idx)] if torch.is_tensor(data) else np.asarray(data[idx])
            yield torch.as_tensor(rows, dtype=torch.float32)
        return
    if iter(data) is data:
        raise TypeError("k-means reads the data several times: pass an array or a re-iterable of chunks (a list, "
                        "or an object whose __iter__ starts over), not a generator")
    buffer, held = [], 0
    for chunk in data:
        chunk = torch.as_tensor(np.asarray(chunk), dtype=torch.float32)
        if generator is not None:
            chunk = chunk[torch.randperm(len(chunk), generator=generator)]
        buffer.append(chunk)
        held += len(chunk)
        while held >= batch_size:
            joined = torch.cat(buffer)
            yield joined[:batch_size]
            buffer, held = [joined[batch_size:]], held - batch_size
    if held:
        yield torch.cat(buffer)


def nearest(x: torch.Tensor, centroids: torch.Tensor):
    """(labels (B,), squared distances (B,)) of each row of x to its nearest centroid; ties go to the lower
    index."""
    d = x.pow(2).sum(1, keepdim=True) - 2 * x @ centroids.T + centroids.pow(2).sum(1)  # (B, K)
    dist, labels = d.min(1)
    return labels, dist.clamp_min(0)


def assign(data, centroids, batch_size: int = 65_536, device="cpu") -> np.ndarray:
    """(F,) int64: the nearest centroid of each frame of an (F, D) array."""
    centroids = torch.as_tensor(centroids, dtype=torch.float32).to(device)
    return torch.cat([nearest(x.to(device), centroids)[0].cpu() for x in batches(data, batch_size, None)]).numpy()


def reseed(centroids, seen, tiny, far: Reservoir, generator, step: float) -> int:
    """Move the centroids of the `tiny` (K,) mask: for each, a frame of `far` (frames (M, D) and their labels
    (M,)) is drawn k-means++ style away from the centroids that stay, and the centroid goes `step` of the way
    from that frame's centroid to it (1: onto the frame). Both restart their running means. Returns how many
    moved (fewer than asked when no candidate frame is off every centroid)."""
    frames, labels = far.columns
    moved = tiny.nonzero().flatten()  # (n,)
    picked = plus_plus(frames, len(moved), generator, fixed=centroids[~tiny].cpu())  # (<= n,)
    moved, parents = moved[:len(picked)], labels[picked].to(centroids.device)
    start = centroids[parents]  # (n, D), copied before any centroid moves
    centroids[moved] = start + step * (frames[picked].to(centroids.device) - start)
    seen[moved] = seen[parents] = 0
    return len(moved)


def fit_kmeans(data, k: int, *, passes: int = 3, batch_size: int = 10_000, init_size: int | None = None,
               min_share: float | None = None, check_every: int = 50, init=None, seed: int = 0, device="cpu",
               log=None) -> KMeans:
    """Mini-batch k-means of an (F, D) array or a re-iterable of chunks. `init_size` frames (default
    max(50 k, 10 000)) seed k-means++; clusters below `min_share` of the frames (default a tenth of 1 / k)
    are re-seeded; `init` (K, D) replaces k-means++ (e.g. to resume, or to test the collapse guard)."""
    if k < 1 or passes < 1 or batch_size < 1:
        raise ValueError(f"k ({k}), passes ({passes}) and batch_size ({batch_size}) must be >= 1")
    gen = torch.Generator().manual_seed(seed)
    min_share = 0.1 / k if min_share is None else min_share
    sample = Reservoir(init_size or max(50 * k, 10_000), gen)
    frames = 0
    for x in batches(data, batch_size, None):
        sample.offer(None, x)
        frames += len(x)
    if frames < k:
        raise DataError(f"k-means into {k} clusters needs at least {k} frames, and the data has {frames}")
    rows = sample.columns[0]  # (S, D)
    if init is None:
        picked = plus_plus(rows, k, gen)  # (<= K,)
        # fewer distinct frames in the sample than clusters: the rest start on sample frames and are re-seeded
        filler = torch.randint(len(rows), (k - len(picked),), generator=gen)
        centroids = rows[torch.cat([picked, filler])]  # (K, D)
    else:
        centroids = torch.as_tensor(init, dtype=torch.float32).clone()
        if centroids.shape != (k, rows.shape[1]):
            raise ValueError(f"init has shape {tuple(centroids.shape)}, expected ({k}, {rows.shape[1]})")
    centroids = centroids.to(device)
    seen = torch.zeros(k, device=device)  # frames each centroid has averaged (its learning rate is 1 / seen)

    window, far = torch.zeros(k, device=device), Reservoir(2 * k, gen)  # frames per cluster since the last check

    def check(p: int):
        nonlocal window, far
        moved = reseed(centroids, seen, window < min_share * window.sum(), far, gen, SPLIT_STEP)
        if moved and log:
            log(f"k-means pass {p + 1}: re-seeded {moved} of {k} clusters that were empty or tiny")
        window, far = torch.zeros(k, device=device), Reservoir(2 * k, gen)

    for p in range(passes):
        for step, x in enumerate(batches(data, batch_size, gen), start=1):
            x = x.to(device)
            labels, dist = nearest(x, centroids)
            far.offer(dist, x, labels)
            n = torch.bincount(labels, minlength=k).float()  # (K,)
            sums = torch.zeros_like(centroids).index_add_(0, labels, x)  # (K, D)
            seen += n
            hit = n > 0
            centroids[hit] += (sums[hit] - n[hit, None] * centroids[hit]) / seen[hit, None]
            window += n
            if step % check_every == 0:
                check(p)
        if p < passes - 1 and window.sum() > 0:  # the last pass only refines: a re-seeded centroid needs a pass
            check(p)

    for _ in range(REPAIRS):
        counts, total, far = torch.zeros(k, dtype=torch.long), 0.0, Reservoir(2 * k, gen)
        for x in batches(data, batch_size, None):
            labels, dist = nearest(x.to(device), centroids)
            far.offer(dist, x, labels)
            counts += torch.bincount(labels, minlength=k).cpu()
            total += float(dist.sum())
        if (counts > 0).all():
            return KMeans(centroids.cpu(), counts.numpy(), total / frames)
        if not reseed(centroids, seen, (counts == 0).to(device), far, gen, step=1.0):
            break
    raise DataError(f"k-means could not give each of its {k} clusters a frame: the data has fewer distinct frames "
                    f"than that (at most {int((counts > 0).sum())} clusters could be filled); lower k")
