"""Dynamic time warping between frame sequences, batched over many pairs at once (for the ABX test).

The distance between two frames is the angle between their vectors, divided by pi (0: same direction,
0.5: orthogonal, 1: opposite), as Libri-light's ABX. The DTW cost of a pair is the sum of frame distances along
the cheapest monotone alignment path (steps down, right or diagonal), divided by the number of cells on that
path; among equally cheap predecessors the diagonal is taken first, then the step down, then the step right.

Shapes: N pairs, Ta / Tb frames of the first / second sequence of a pair (padded to the longest in a batch),
K = Ta + Tb - 1 anti-diagonals, U distinct sequences of a batch, D feature dim.
"""
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence


def angular_distances(a, b):  # (N, Ta, D), (N, Tb, D)
    """Angular distance between every frame of a and every frame of b: (N, Ta, Tb) in [0, 1]."""
    cos = torch.einsum("nid,njd->nij", F.normalize(a, dim=-1), F.normalize(b, dim=-1))  # (N, Ta, Tb)
    return torch.arccos(cos.clamp(-1.0, 1.0)) / math.pi


def dtw_costs(dist, len_a, len_b):  # (N, Ta, Tb), (N,), (N,)
    """Normalised DTW cost of each pair, from its frame distances; cells beyond (len_a, len_b) are padding.
    The recursion runs over anti-diagonals (cells i + j = k depend only on diagonals k - 1 and k - 2), each one
    vectorised over the pairs and its cells: Ta + Tb - 1 steps whatever the number of pairs."""
    N, Ta, Tb = dist.shape
    # padded cells never feed a valid one (paths only move down and right), but keep them finite
    valid = (torch.arange(Ta)[:, None] < len_a[:, None, None]) & (torch.arange(Tb) < len_b[:, None, None])
    dist = dist.masked_fill(~valid, 0.0)  # (N, Ta, Tb)
    # skewed[:, k, i] = dist[:, i, k - i], inf where k - i is outside 0..Tb-1: diagonal k is one row
    i, k = torch.arange(Ta), torch.arange(Ta + Tb - 1)[:, None]
    j = k - i  # (K, Ta)
    skewed = dist[:, i, j.clamp(0, Tb - 1)].masked_fill((j < 0) | (j >= Tb), math.inf)  # (N, K, Ta)
    # each diagonal is stored with a border column first (cell i = -1, never on a path): the cost and the
    # length of the cheapest path to cell (i, k - i) sit at column i + 1
    border = torch.full((N, 1), math.inf, dtype=dist.dtype)
    cost = [torch.cat([torch.zeros_like(border), border.expand(N, Ta)], 1),  # diagonal -2: the origin's start
            torch.cat([border, border.expand(N, Ta)], 1)]  # diagonal -1: nothing
    steps = [torch.zeros(N, Ta + 1, dtype=dist.dtype)] * 2
    for diagonal in range(Ta + Tb - 1):
        before = torch.stack([cost[-2][:, :-1], cost[-1][:, :-1], cost[-1][:, 1:]])  # (3, N, Ta): diag, down, right
        best, which = before.min(0)  # (N, Ta): the first of equal minima, so the diagonal wins ties
        before_steps = torch.stack([steps[-2][:, :-1], steps[-1][:, :-1], steps[-1][:, 1:]])  # (3, N, Ta)
        cost.append(torch.cat([border, skewed[:, diagonal] + best], 1))  # (N, Ta + 1)
        steps.append(torch.cat([border.new_zeros(N, 1), 1 + before_steps.gather(0, which[None])[0]], 1))
    n, end = torch.arange(N), len_a + len_b - 2  # the last cell of each pair: diagonal end, column len_a
    cost, steps = torch.stack(cost[2:], 1), torch.stack(steps[2:], 1)  # (N, K, Ta + 1)
    return cost[n, end, len_a] / steps[n, end, len_a]  # (N,)


def dtw_distances(a_list, b_list, max_floats: int = 2 ** 24):
    """Normalised DTW distance (angular frame distance) of each pair (a_list[n], b_list[n]) of (T, D) tensors:
    (N,)."""
    if len(a_list) != len(b_list):
        raise ValueError(f"dtw_distances: {len(a_list)} first and {len(b_list)} second sequences")
    n = np.arange(len(a_list))
    return pair_distances([*a_list, *b_list], n, len(a_list) + n, max_floats)


@torch.no_grad()
def pair_distances(seqs, first, second, max_floats: int = 2 ** 24):
    """Normalised DTW distance of each pair (seqs[first[n]], seqs[second[n]]) of (T, D) tensors: (N,). Pairs go
    in batches of similar lengths, each holding about `max_floats` numbers at most; a sequence in many pairs of
    a batch is padded once."""
    lengths = np.array([x.shape[0] for x in seqs], dtype=np.int64)
    if (lengths == 0).any():
        raise ValueError("dtw: every sequence needs at least one frame")
    first, second = np.asarray(first, dtype=np.int64), np.asarray(second, dtype=np.int64)
    la, lb = lengths[first], lengths[second]  # (N,) each
    order = np.lexsort((lb, la, np.maximum(la, lb)))  # similar lengths side by side: little padding
    la_sorted, lb_sorted = la[order].tolist(), lb[order].tolist()
    dim = seqs[0].shape[-1] if len(seqs) else 0
    out, start = torch.empty(len(first)), 0
    while start < len(order):
        stop, Ta, Tb = start + 1, la_sorted[start], lb_sorted[start]
        while stop < len(order):  # grow the batch while it fits the budget
            ta, tb = max(Ta, la_sorted[stop]), max(Tb, lb_sorted[stop])
            if (stop - start + 1) * (ta + tb) * max(8 * (ta + 1), dim) > max_floats:
                break
            Ta, Tb, stop = ta, tb, stop + 1
        batch = order[start:stop]
        used, where = np.unique(np.concatenate([first[batch], second[batch]]), return_inverse=True)
        padded = pad_sequence([seqs[u].float() for u in used], batch_first=True)  # (U, T, D)
        a, b = padded[where[:len(batch)], :Ta], padded[where[len(batch):], :Tb]  # (N, Ta, D), (N, Tb, D)
        len_a, len_b = torch.from_numpy(la[batch]), torch.from_numpy(lb[batch])
        out[torch.from_numpy(batch)] = dtw_costs(angular_distances(a, b), len_a, len_b)
        start = stop
    return out
