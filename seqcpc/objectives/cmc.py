"""CMC (Tian, Krishnan & Isola 2019, "Contrastive Multiview Coding"): each view of a sample has its own encoder,
and the views' embeddings are contrasted with each other.

Shapes: B batch on this rank, W ranks, N = W B samples in all, M views, F_i view i's pooled feature dim,
P embedding dim (objective.projection), Q queue size.
The modality gives the views (its `multiview` part), each through its own encoder, pooled to one vector:
  images  the L and the ab channels of Lab colour, the paper's split of a colour image (seqcpc/image/lab_views.py)
  speech  the waveform through the conv encoder and a log mel filterbank of the same window through its own
          encoder, each with its own context network (seqcpc/audio/wave_mel.py)
Each view's vector goes through its own head to P dims and is L2-normalised (the paper's head is one linear map
to 128 dims; objective.hidden > 0 makes it Linear, ReLU, Linear). For an ordered pair of views (i, j) each sample's
view-i embedding is an anchor whose positive is the same sample's view-j embedding and whose negatives are
  negatives=batch  the view-j embeddings of the other N - 1 samples, gathered from every rank
  negatives=queue  the view-j embeddings of earlier batches, kept in one first-in first-out queue per view
                   (seqcpc/objectives/queue.py, MoCo's; like the paper's memory bank, stored and not back-propagated)
scored by cosine similarity / temperature under cross-entropy (the paper's softmax form of its contrastive loss;
temperature 0.07 as the paper's). The pairs (the paper's Sec. 3.2):
  graph=core  view 1 is the core view: the pairs (1, j) for j = 2..M
  graph=full  every pair (i, j), i < j
each in both directions. With two views both graphs are the one pair (1, 2). The loss is the mean over the pairs
and directions (the paper sums them: a constant factor).
Frozen features (`embed`): every view's (z, c) concatenated along the feature dim, as the paper probes the
concatenation of its views' features (L and ab: 2D dims per patch; speech: each view's D and E, frame by frame).
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.core.gather import Gathers, RankGather
from seqcpc.core.pretrainable import Pretrainable
from seqcpc.fields import choice, number, refuse_idle
from seqcpc.objectives.infonce import hit_rate
from seqcpc.objectives.queue import KeyQueue
from seqcpc.objectives.registry import Objective, check_pool
from seqcpc.objectives.two_views import check_batch_negatives, projection_head


@dataclass
class CMCConfig:
    """CMC: views of each sample through their own encoders, contrasted pairwise (seqcpc/objectives/cmc.py)."""
    projection: int = number(128, min=1)  # each view's embedding: what the loss compares
    hidden: int = number(0, min=0)  # 0: a linear head (the paper's); else Linear, ReLU, Linear with this hidden layer
    temperature: float = number(0.07, above=0)  # cosine similarities are divided by this
    graph: str = choice("core", ["core", "full"])  # which pairs of views are contrasted (one pair with two views)
    negatives: str = choice("batch", ["batch", "queue"])  # the other samples of the batch, or earlier batches
    queue: int = number(4096, min=1)  # negatives=queue: embeddings of earlier batches kept per view
    pool: int = number(1, min=1)  # images: each view's latent grid averaged into pool x pool cells before the head


def view_pairs(views: int, graph: str) -> list[tuple[int, int]]:
    """The (i, j), i < j, pairs of views contrasted: the core view 0 with each other, or every pair."""
    if graph == "core":
        return [(0, j) for j in range(1, views)]
    return [(i, j) for i in range(views) for j in range(i + 1, views)]


def pair_loss(anchors, positives, temperature: float, gather: RankGather, queue: KeyQueue = None):
    """anchors, positives (B, P) unit vectors -> (cross-entropy of each anchor's positive against its negatives,
    hit rate (B,)): the other samples' positives (from every rank), or the queue's keys (Q', P)."""
    if queue is None:
        keys = gather(positives, grads=True)  # (N, P), ours at rank * B
        logits = anchors @ keys.T / temperature  # (B, N)
        target = gather.rank * len(anchors) + torch.arange(len(anchors), device=anchors.device)
    else:
        own = (anchors * positives).sum(-1, keepdim=True)  # (B, 1)
        logits = torch.cat([own, anchors @ queue.current().T], dim=1) / temperature  # (B, 1 + Q')
        target = torch.zeros(len(anchors), dtype=torch.long, device=anchors.device)
    return F.cross_entropy(logits, target), hit_rate(logits.detach(), target)


def multiview_loss(embeddings: list, graph: str, temperature: float, gather: RankGather = None, queues=None):
    """M embeddings (B, P), unit vectors -> (mean pair_loss over the graph's pairs in both directions,
    {"acc"}); with queues (one a view) the negatives of anchor view i against view j are queue j's."""
    gather = gather or RankGather()
    losses, hits = [], []
    for i, j in view_pairs(len(embeddings), graph):
        for a, b in ((i, j), (j, i)):
            loss, hit = pair_loss(embeddings[a], embeddings[b], temperature, gather,
                                  None if queues is None else queues[b])
            losses.append(loss)
            hits.append(hit)
    return torch.stack(losses).mean(), {"acc": torch.cat(hits).mean()}


class CMC(Pretrainable, Gathers):
    def __init__(self, views: nn.Module, cfg: CMCConfig):
        super().__init__()
        self.views, self.graph, self.temperature = views, cfg.graph, cfg.temperature
        self.heads = nn.ModuleList(nn.Linear(dim, cfg.projection) if cfg.hidden == 0 else
                                   projection_head(dim, cfg.hidden, cfg.projection) for dim in views.dims)
        self.queues = None
        if cfg.negatives == "queue":  # random unit keys at first, so the loss starts at chance
            self.queues = nn.ModuleList(KeyQueue(cfg.queue, cfg.projection, random=True) for _ in views.dims)

    def embed_views(self, x) -> list:
        """x -> M unit embeddings (B, P), one a view."""
        return [F.normalize(head(f).float(), dim=-1) for head, f in zip(self.heads, self.views(x))]

    def forward(self, x, groups=None):
        """Returns (the mean contrastive loss over the pairs of views, {"acc"}); `groups` is unused."""
        embeddings = self.embed_views(x)
        loss, metrics = multiview_loss(embeddings, self.graph, self.temperature, self.gather, self.queues)
        if self.training and self.queues is not None:
            for queue, e in zip(self.queues, embeddings):
                queue.push(self.gather(e))
        return loss, metrics

    @torch.no_grad()
    def embed(self, x):
        """Frozen features: every view's (z, c), concatenated along the feature dim."""
        latents = self.views.latents(x)
        return torch.cat([z for z, _ in latents], -1), torch.cat([c for _, c in latents], -1)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        if self.queues is not None:
            return math.log(1 + len(self.queues[0].keys))  # once the queue is full
        return math.log(batch_size * self.gather.world)


def check(cfg, modality, geometry) -> None:
    section = cfg.objective
    refuse_idle(section, "objective", {"queue": (section.negatives == "queue", "objective.negatives=queue")})
    if section.negatives == "batch":
        check_batch_negatives(cfg, modality, geometry)  # a batch of one has no negatives
    else:
        check_pool(cfg, modality, geometry)


CMC_OBJECTIVE = Objective(
    name="cmc", config=CMCConfig, build=lambda parts, cfg: CMC(parts.multiview(cfg.pool), cfg),
    parts=("multiview",), check=check,
    summary="CMC: views of a sample (L and ab colour; waveform and log mel) through their own encoders, contrasted",
)
