"""Mutual-information bounds on pair scores, shared by DIM (seqcpc/objectives/dim.py) and AMDIM
(seqcpc/image/amdim.py).

Shapes: B queries' samples on this rank, B' = W B key samples of every rank, M query vectors per sample, N key
vectors per sample, P the common space's dim.
A query vector (sample b, vector m) is scored against every key vector of every sample: scores (B, M, B', N).
Its positives are the N key vectors of its own sample (column own[b] of the B'); its negatives are every key
vector of the other B' - 1 samples. Two bounds read them (Hjelm et al. 2019, "Learning deep representations by
mutual information estimation and maximization", eqs. 4 and 5):
  jsd      the Jensen-Shannon estimator E_P[-sp(-T)] - E_N[sp(T)], sp the softplus; the loss is its negative,
           E_P[sp(-T)] + E_N[sp(T)], each mean over every positive and every negative pair. 2 ln 2 at T = 0
  infonce  each positive (b, m, n) against the B' - 1 samples' N keys each: cross-entropy of the positive
           among those (B' - 1) N + 1 candidates, the negatives shared by the N positives of (b, m). ln((B' - 1) N
           + 1) at T = 0
Both report "acc": the share of positives that score strictly above every negative of their query vector.
"""
import math

import torch
import torch.nn.functional as F


def pair_scores(queries, keys):
    """queries (B, M, P), keys (B', N, P) -> dot products (B, M, B', N), in fp32."""
    return torch.einsum("bmp,cnp->bmcn", queries.float(), keys.float())


def own_columns(scores, own):
    """(B, 1, B', 1) True at each query's own sample among the B'; `own` (B,) its column."""
    return F.one_hot(own, scores.shape[2]).bool()[:, None, :, None]


def hits(positives, negatives):
    """positives (B, M, N), negatives (B, M, C) -> share of positives above every negative of their (b, m)."""
    return (positives > negatives.amax(-1, keepdim=True)).float().mean()


def positives_of(scores, own):
    """(B, M, B', N) -> (B, M, N): each query's scores against its own sample's keys."""
    return scores[torch.arange(len(scores), device=scores.device), :, own]


def negatives_of(scores, own):
    """(B, M, B', N) -> (B, M, B' N): the scores against other samples' keys, -inf at its own sample's."""
    return scores.masked_fill(own_columns(scores, own), float("-inf")).flatten(2)


def jsd_bound(scores, own):
    """(loss, acc): the negative Jensen-Shannon estimator, E_P[sp(-T)] + E_N[sp(T)]."""
    positive = own_columns(scores, own).expand_as(scores)
    loss = F.softplus(-scores[positive]).mean() + F.softplus(scores[~positive]).mean()
    return loss, hits(positives_of(scores, own), negatives_of(scores, own))


def infonce_bound(scores, own):
    """(loss, acc): InfoNCE, each positive against every key vector of the other samples."""
    positives, negatives = positives_of(scores, own), negatives_of(scores, own)  # (B, M, N), (B, M, (B' - 1) N)
    rest = negatives.logsumexp(-1, keepdim=True)  # (B, M, 1): shared by the N positives of (b, m)
    loss = (torch.logaddexp(positives, rest) - positives).mean()
    return loss, hits(positives, negatives)


BOUNDS = {"jsd": jsd_bound, "infonce": infonce_bound}


def chance(estimator: str, samples: int, keys: int) -> float:
    """The loss of scores that carry no information (all 0): B' = `samples`, N = `keys`."""
    return 2 * math.log(2) if estimator == "jsd" else math.log((samples - 1) * keys + 1)
