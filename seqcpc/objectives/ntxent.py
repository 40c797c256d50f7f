"""NT-Xent (SimCLR's normalised temperature-scaled cross-entropy) between two views of a batch.

Shapes: B samples on this rank, W ranks, N = W B samples in all, F projection dim.
Views a and b (B, F) are L2-normalised; each of the 2B local rows is a query whose positive is the other view of
its sample and whose negatives are the other 2N - 2 views of the whole (gathered) batch; itself is masked out.
Scores are cosine similarities divided by the temperature. With random features the loss is close to
log(2N - 1), the chance level.
"""
import math

import torch
import torch.nn.functional as F

from seqcpc.core.gather import RankGather
from seqcpc.objectives.infonce import hit_rate


def nt_xent(a, b, temperature: float, gather: RankGather = None):
    """a, b (B, F) -> (loss, {"acc": share of queries whose positive scores above every negative})."""
    gather = gather or RankGather()
    B = len(a)
    a, b = F.normalize(a.float(), dim=-1), F.normalize(b.float(), dim=-1)
    keys_a, keys_b = gather(a, grads=True), gather(b, grads=True)  # (N, F) each, ours at rank * B
    N = len(keys_a)
    keys = torch.cat([keys_a, keys_b])  # (2N, F)
    queries = torch.cat([a, b])  # (2B, F)
    logits = queries @ keys.T / temperature  # (2B, 2N)
    own = gather.rank * B + torch.arange(B, device=a.device)  # (B,) this rank's samples among the N
    self_col = torch.cat([own, N + own])  # each query's own column
    target = torch.cat([N + own, own])  # the other view of the same sample
    logits = logits.masked_fill(F.one_hot(self_col, 2 * N).bool(), float("-inf"))
    loss = F.cross_entropy(logits, target)
    return loss, {"acc": hit_rate(logits.detach(), target).mean()}


def nt_xent_chance(samples: int) -> float:
    """The loss of uninformative features: log of the 2N - 1 candidates of each query."""
    return math.log(2 * samples - 1)
