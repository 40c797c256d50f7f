"""InfoNCE: score each prediction of z[t+k] against its positive and a set of negatives.

Shapes: B batch, T latent steps, D latent dim, K horizon (the last offset predicted), F the first offset
predicted (1 in CPC; CPC v2 skips offsets whose targets overlap the context's own input), K' = K - F + 1
offsets, S = T - K prediction positions (the same for every offset, as in the CPC paper), N negatives per
sequence, P = B * T positions in the batch.

Negative sampling modes:
  batch     N positions drawn from anywhere in the batch (the paper; default N = 128)
  sequence  N positions drawn from the same sequence
  group     N positions drawn from the sequences of the same group (e.g. speaker); needs `groups`
  all       every position in the batch is a candidate (a full similarity matrix)
  queue     N positions drawn from the batch, plus every key of a queue of past targets (Q, MoCo's dictionary
            as a memory of earlier batches: more negatives than a small CPU batch holds). At the end of each
            training step (end_step, which the model calls from its on_step_end) N random targets of the step,
            gathered from every rank, are pushed over the oldest, so no call of a step scores the step's own
            targets as queue negatives; the queue is a buffer, so checkpoints hold it. The keys come from the
            encoder as it was when they were pushed.
Two draws (objective.loss.draw):
  shared    each sequence draws its own N negatives and shares them across its positions and horizons, so all
            scores come from one einsum and no (B, S, N, D) tensor of candidates is ever built (the default)
  position  each prediction position t draws its own N negatives, shared across the horizons k (as the CPC paper
            and its reference code draw them): one gather of (B, S, N, D) candidates for all k
A negative that happens to be the positive itself is masked out, so every candidate is a true negative.

Padded sequences: `mask` (B, T) marks the valid positions (e.g. latents of a clip shorter than the window). A
prediction of z[t+k] counts only when t + k is valid (then t is too), the loss and accuracy of each offset are
means over the counted predictions, negatives are drawn only from valid positions in every mode (`all`
leaves padded columns out) and the queue takes only valid targets, so nothing in the padding changes the loss.
"""
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.core.gather import Gathers
from seqcpc.errors import ConfigError
from seqcpc.fields import choice, number
from seqcpc.objectives.queue import KeyQueue

MODES = ("batch", "sequence", "group", "all", "queue")
IGNORED = -100  # the cross-entropy's target of a prediction that is not counted (its target is padding)
DRAWS = ("shared", "position")


@dataclass
class LossConfig:
    """CPC's InfoNCE loss: where its negatives come from, how many, and how scores are scaled."""
    negatives: str = choice("batch", MODES)
    num_negatives: int = number(128, min=1)  # ignored when negatives = all; queue: also the targets pushed a step
    draw: str = choice("shared", DRAWS)  # one draw per sequence, or per prediction position
    queue: int = number(4096, min=1)  # negatives = queue: past targets kept as extra negatives
    normalize: bool = False  # cosine instead of dot-product scores
    temperature: float = number(1.0, above=0)


def check_negatives(loss, batch_size: int, per_sample: int, per_sequence: int) -> None:
    """Refuse a negative-sampling setup (`loss`: the objective.loss config section) the batch cannot supply:
    `per_sample` latent positions per batch item, `per_sequence` positions per scored sequence."""
    positions = per_sequence if loss.negatives == "sequence" else batch_size * per_sample
    if loss.negatives == "queue" and not 1 <= loss.num_negatives <= loss.queue:
        raise ConfigError(f"objective.loss.num_negatives={loss.num_negatives} (the targets pushed each step) must be "
                          f"at most objective.loss.queue={loss.queue}")
    if loss.negatives != "all" and not 1 <= loss.num_negatives <= positions:
        raise ConfigError(f"objective.loss.num_negatives={loss.num_negatives} must be between 1 and the {positions} "
                          f"positions negatives are drawn from")
    if batch_size < 1 or loss.temperature <= 0:
        raise ConfigError("data.batch_size must be >= 1 and objective.loss.temperature > 0")


def target_latents(z, steps: int, first: int = 1):
    """The positives: z[t+k] for k = F..K and t < S.  (B, T, D) -> (B, K', S, D)."""
    S = z.shape[1] - steps
    windows = z.unfold(1, S, 1)  # (B, K+1, D, S): window j starts at step j
    return rearrange(windows[:, first:], "b k d s -> b k s d")


class InfoNCE(nn.Module, Gathers):
    def __init__(self, negatives: str = "batch", num_negatives: int = 128, normalize: bool = False,
                 temperature: float = 1.0, first: int = 1, queue: int = 0, dim: int = 0, draw: str = "shared"):
        super().__init__()
        if negatives not in MODES:
            raise ValueError(f"unknown negatives mode {negatives!r}; choose one of {MODES}")
        if draw not in DRAWS:
            raise ValueError(f"unknown negatives draw {draw!r}; choose one of {DRAWS}")
        self.mode, self.num_negatives, self.draw = negatives, num_negatives, draw
        self.normalize, self.temperature, self.first = normalize, temperature, first
        if negatives == "queue":  # (Q, D) past targets; D is the targets' dim (z's, or its projection's)
            self.queue = KeyQueue(queue, dim)
        self.pending = []  # this step's targets (P, D) for the queue, pushed by end_step

    @classmethod
    def from_config(cls, loss, first: int = 1, dim: int = 0) -> "InfoNCE":
        """From the objective.loss config section (LossConfig), the first offset predicted and the
        targets' dim (which the queue of negatives=queue needs)."""
        return cls(loss.negatives, loss.num_negatives, loss.normalize, loss.temperature, first, loss.queue, dim,
                   loss.draw)

    def offsets(self, n: int, device=None):
        """The offsets F .. F + n - 1 that the n rows of the predictions stand for."""
        return torch.arange(self.first, self.first + n, device=device)

    def sample_negatives(self, z, groups=None, positions: int = 0, mask=None):
        """Flat indices into the P positions of z (B, T, D): (B, N) for the shared draw, (B, S, N) with one draw
        per prediction position for draw='position' (S = `positions`); only valid positions when `mask` (B, T)
        is given."""
        B, T, _ = z.shape
        dev = z.device
        shape = (B, positions, self.num_negatives) if self.draw == "position" else (B, self.num_negatives)
        if self.mode in ("batch", "queue"):
            idx = torch.randint(0, B * T, shape, device=dev)
            return idx if mask is None else redraw_padding(idx, torch.ones(B, B * T, device=dev), mask)
        if self.mode == "sequence":
            offsets = torch.arange(B, device=dev).view(B, *[1] * (len(shape) - 1)) * T
            idx = offsets + torch.randint(0, T, shape, device=dev)
            own = torch.eye(B, device=dev).repeat_interleave(T, dim=1)  # (B, P): a sequence's own positions
            return idx if mask is None else redraw_padding(idx, own, mask)
        if groups is None:
            raise ValueError("negatives='group' needs the batch's group ids (e.g. speakers)")
        same = (groups[:, None] == groups[None, :]).float()  # (B, B)
        weights = same.repeat_interleave(T, dim=1)  # (B, P)
        weights = weights if mask is None else weights * mask.flatten()
        return torch.multinomial(weights, math.prod(shape[1:]), replacement=True).view(shape)

    def sampled_logits(self, preds, z, neg_idx):
        """preds (B, K', S, D), z (B, T, D), neg_idx (B, N) or (B, S, N) -> logits (B, K', S, 1+N); the positive
        is column 0."""
        B, n, S, _ = preds.shape
        T = z.shape[1]
        k = self.offsets(n, z.device)
        pos = (preds * target_latents(z, int(k[-1]), self.first)).sum(-1, keepdim=True)  # (B, K', S, 1)
        negs = z.flatten(0, 1)[neg_idx]  # (B, N, D) or (B, S, N, D)
        per_position = neg_idx.dim() == 3
        neg = torch.einsum("bksd,bsnd->bksn" if per_position else "bksd,bnd->bksn", preds, negs)  # (B, K', S, N)
        # flat index of each positive, to mask negatives that are the positive itself
        t = torch.arange(S, device=z.device)
        pos_idx = torch.arange(B, device=z.device)[:, None, None] * T + k[:, None] + t  # (B, K, S)
        neg_idx = neg_idx if per_position else neg_idx[:, None, :]  # (B, S or 1, N)
        clash = pos_idx[..., None] == neg_idx[:, None]  # (B, K, S, N)
        neg = neg.masked_fill(clash, float("-inf"))
        if self.mode != "queue" or not len(self.queue):
            return torch.cat([pos, neg], dim=-1)
        keys = self.queue.current().to(preds.dtype)  # (Q, D)
        keys = F.normalize(keys, dim=-1) if self.normalize else keys
        return torch.cat([pos, neg, torch.einsum("bksd,qd->bksq", preds, keys)], dim=-1)  # (B, K', S, 1+N+Q)

    def all_logits(self, preds, z):
        """Every batch position is a candidate: logits (B, K', S, P) and the positive's column (B, K', S)."""
        B, n, S, _ = preds.shape
        T = z.shape[1]
        logits = torch.einsum("bksd,pd->bksp", preds, z.flatten(0, 1))  # (B, K', S, P)
        t = torch.arange(S, device=z.device)
        k = self.offsets(n, z.device)
        target = torch.arange(B, device=z.device)[:, None, None] * T + k[:, None] + t  # (B, K, S)
        return logits, target

    def chance_loss(self, batch_size: int, positions: int) -> float:
        """log(candidates per prediction): the loss when scores carry no information."""
        if self.mode == "queue":
            return math.log(1 + self.num_negatives + len(self.queue.keys))  # once the queue is full
        return math.log(batch_size * positions if self.mode == "all" else 1 + self.num_negatives)

    def forward(self, preds, z, groups=None, mask=None):
        """preds (B, K', T, D) from the predictor, z (B, T, D), `mask` (B, T) the valid positions of padded
        sequences (None: all) -> (loss, {"acc": mean, "acc/kF".."acc/kK"})."""
        loss_k, acc_k = self.per_horizon(preds, z, groups, mask)
        if self.mode == "queue" and self.training:
            targets = z.detach().flatten(0, 1)  # (P, D)
            self.pending.append(targets if mask is None else targets[mask.flatten()])
        return loss_k.mean(), horizon_metrics(acc_k, self.first)

    @torch.no_grad()
    def end_step(self) -> None:
        """negatives=queue: push N random targets of this step's calls (from every rank) into the queue."""
        pending, self.pending = self.pending, []
        if self.mode != "queue" or not pending:
            return
        targets = torch.cat(pending)  # (P, D)
        picked = torch.randint(0, len(targets), (self.num_negatives,), device=targets.device)
        self.queue.push(self.gather(targets[picked]))

    def per_horizon(self, preds, z, groups=None, mask=None):
        """(loss_k (K',), acc_k (K',)): cross-entropy and accuracy of each offset k = F..K, over the predictions
        whose target is valid when `mask` (B, T) is given."""
        T = preds.shape[2]
        K = self.first + preds.shape[1] - 1
        if T <= K:
            raise ValueError(f"sequence of {T} latent steps is too short to predict {K} steps ahead")
        preds = preds[:, :, : T - K]  # (B, K', S, D)
        if self.normalize:
            preds, z = F.normalize(preds, dim=-1), F.normalize(z, dim=-1)
        if self.mode == "all":
            logits, target = self.all_logits(preds, z)
            if mask is not None:  # padded positions are no candidates
                logits = logits.masked_fill(~mask.flatten(), float("-inf"))
        else:
            logits = self.sampled_logits(preds, z, self.sample_negatives(z, groups, preds.shape[2], mask))
            target = torch.zeros(logits.shape[:-1], dtype=torch.long, device=z.device)
        counted = None if mask is None else target_latents(mask[..., None], K, self.first)[..., 0]  # (B, K', S)
        if counted is not None:
            target = target.masked_fill(~counted, IGNORED)  # a padded target: no loss, no gradient
        # at least fp32 for the softmax, also under bf16 autocast
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32)) / self.temperature
        ce = F.cross_entropy(rearrange(logits, "b k s n -> b n k s"), target, reduction="none",
                             ignore_index=IGNORED)  # (B, K, S)
        hits = hit_rate(logits.detach(), target.clamp(min=0))  # (B, K, S)
        return mean_counted(ce, counted), mean_counted(hits, counted)  # (K,), (K,)


def redraw_padding(idx, candidates, mask):
    """Drawn flat indices idx (B, ...) with those that fall on padding replaced by draws among the valid
    positions of the row's `candidates` (B, P) weights; mask (B, T). A first draw uniform over the candidates
    is, given it is valid, uniform over the valid ones, and so is the redraw: the result is uniform over the
    valid candidates, and is idx itself (the same random numbers) when nothing is padded."""
    valid = mask.flatten()  # (P,)
    fresh = torch.multinomial(candidates * valid, idx[0].numel(), replacement=True).view_as(idx)
    return torch.where(valid[idx], idx, fresh)


def mean_counted(x, counted=None):
    """(B, K', S) -> (K',): the mean over batch and positions, of the counted predictions only when `counted`
    (B, K', S) is given."""
    if counted is None:
        return x.mean(dim=(0, 2))
    return (x * counted).sum(dim=(0, 2)) / counted.sum(dim=(0, 2)).clamp(min=1)


def hit_rate(logits, target):
    """1 where the positive scores strictly above every other candidate, else 0: a tie is a miss, so features
    that carry no information (all scores equal, e.g. silence) score 0, not 1.  (..., C), (...) -> (...)."""
    positive = logits.gather(-1, target[..., None])  # (..., 1)
    others = logits.scatter(-1, target[..., None], float("-inf"))  # (..., C)
    return (positive[..., 0] > others.amax(-1)).float()


def horizon_metrics(acc_k, first: int = 1) -> dict:
    """{"acc": mean over k, "acc/kF": ..., "acc/kK": ...} from the per-offset accuracies (K',)."""
    return {"acc": acc_k.mean(), **{f"acc/k{first + i}": a for i, a in enumerate(acc_k)}}
