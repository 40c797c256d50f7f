import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_TASK
from seqcpc.builders import build_model
from seqcpc.config import resolve
from seqcpc.objectives.infonce import InfoNCE


def loop_reference(preds, z, neg_idx=None, temperature=1.0, first=1):
    """Plain loops over batch, offset and position: the candidates of each prediction built one by one. Row i of
    the predictions is the guess for offset first + i."""
    B, n, T, D = preds.shape  # predictions at every step; only the first S = T - K have targets
    K = first + n - 1
    S, flat = T - K, z.reshape(B * T, D)
    loss, acc = torch.zeros(n, dtype=preds.dtype), torch.zeros(n)
    for b in range(B):
        for i, k in enumerate(range(first, K + 1)):
            for t in range(S):
                positive = b * T + t + k
                if neg_idx is None:  # every position is a candidate
                    cands, target = list(range(B * T)), positive
                else:  # shared (B, N) or per position (B, S, N)
                    drawn = neg_idx[b] if neg_idx.dim() == 2 else neg_idx[b, t]
                    cands, target = [positive] + [j for j in drawn.tolist() if j != positive], 0
                scores = torch.stack([preds[b, i, t] @ flat[j] for j in cands]) / temperature
                loss[i] += -F.log_softmax(scores, 0)[target]
                others = torch.cat([scores[:target], scores[target + 1:]])
                acc[i] += float(bool(scores[target] > others.max()))
    return loss / (B * S), acc / (B * S)


@pytest.mark.parametrize("mode", ["batch", "sequence", "group"])
def test_batched_scores_equal_the_loop(mode):
    B, K, T, D, N = 3, 4, 9, 5, 7
    preds, z = torch.randn(B, K, T, D, dtype=torch.float64), torch.randn(B, T, D, dtype=torch.float64)
    groups = torch.tensor([0, 1, 0])
    crit = InfoNCE(mode, N, temperature=0.5)
    torch.manual_seed(3)
    neg_idx = crit.sample_negatives(z, groups)
    if mode == "sequence":
        neg_idx[0, 0] = 0 * T + 0 + 1  # force a negative that is also a positive (t=0, k=1): it must be masked
    torch.manual_seed(3)
    crit.sample_negatives = lambda *_: neg_idx  # the loss below uses exactly these negatives
    loss, metrics = crit(preds, z, groups)
    loss_k, acc_k = crit.per_horizon(preds, z, groups)
    ref_loss, ref_acc = loop_reference(preds, z, neg_idx, temperature=0.5)
    torch.testing.assert_close(loss_k, ref_loss)
    torch.testing.assert_close(acc_k, ref_acc)
    torch.testing.assert_close(loss, ref_loss.mean())
    torch.testing.assert_close(metrics["acc"], ref_acc.mean())
    torch.testing.assert_close(torch.stack([metrics[f"acc/k{k}"] for k in range(1, K + 1)]), ref_acc)


@pytest.mark.parametrize("mode", ["batch", "sequence", "group", "queue"])
def test_negatives_drawn_per_position_equal_the_loop(mode):
    B, K, T, D, N = 3, 4, 9, 5, 7
    preds, z = torch.randn(B, K, T, D, dtype=torch.float64), torch.randn(B, T, D, dtype=torch.float64)
    groups = torch.tensor([0, 1, 0])
    crit = InfoNCE(mode, N, temperature=0.5, draw="position", queue=N, dim=D).double()
    neg_idx = crit.sample_negatives(z, groups, T - K)
    assert neg_idx.shape == (B, T - K, N)
    assert not all(torch.equal(neg_idx[:, 0], neg_idx[:, t]) for t in range(1, T - K))  # each position draws anew
    neg_idx[1, 2, 0] = 1 * T + 2 + 3  # a negative that is the positive of (b=1, t=2, k=3): it must be masked
    crit.sample_negatives = lambda *_: neg_idx
    loss_k, acc_k = crit.per_horizon(preds, z, groups)  # an empty queue: only the batch's negatives
    ref_loss, ref_acc = loop_reference(preds, z, neg_idx, temperature=0.5)
    torch.testing.assert_close(loss_k, ref_loss)
    torch.testing.assert_close(acc_k, ref_acc)


@pytest.mark.parametrize("mode", ["sequence", "group"])
def test_per_position_negatives_keep_to_their_sequence_or_group(mode):
    B, T, S, N = 6, 10, 7, 20
    groups = torch.tensor([0, 1, 2, 0, 1, 2])
    idx = InfoNCE(mode, N, draw="position").sample_negatives(torch.randn(B, T, 4), groups, S)  # (B, S, N)
    owner = idx // T
    expected = torch.arange(B) if mode == "sequence" else None
    if mode == "sequence":
        assert torch.equal(owner, expected[:, None, None].expand(-1, S, N))
    else:
        assert torch.equal(groups[owner], groups[:, None, None].expand(-1, S, N))


def test_per_position_draw_starts_at_log_one_plus_n():
    N = 64
    preds, z = 1e-3 * torch.randn(4, 12, 100, 32), torch.randn(4, 100, 32)
    loss, _ = InfoNCE("batch", N, draw="position")(preds, z)
    assert loss.item() == pytest.approx(math.log(1 + N), rel=1e-3)


def test_unknown_draw_is_refused():
    with pytest.raises(ValueError, match="draw"):
        InfoNCE("batch", 4, draw="each")


def test_all_positions_mode_equals_the_loop():
    B, K, T, D = 2, 3, 8, 4
    preds, z = torch.randn(B, K, T, D, dtype=torch.float64), torch.randn(B, T, D, dtype=torch.float64)
    loss_k, acc_k = InfoNCE("all").per_horizon(preds, z)
    ref_loss, ref_acc = loop_reference(preds, z)
    torch.testing.assert_close(loss_k, ref_loss)
    torch.testing.assert_close(acc_k, ref_acc)


@pytest.mark.parametrize("mode", ["all", "batch"])
@pytest.mark.parametrize("first", [2, 3])
def test_later_first_offsets_equal_the_loop(mode, first):
    """CPC v2's task: only offsets first..K are scored, each row of the predictions standing for one of them."""
    B, n, T, D = 2, 2, 9, 4
    preds, z = torch.randn(B, n, T, D, dtype=torch.float64), torch.randn(B, T, D, dtype=torch.float64)
    crit = InfoNCE(mode, 6, first=first)
    neg_idx = crit.sample_negatives(z) if mode == "batch" else None
    crit.sample_negatives = lambda *_: neg_idx
    loss_k, acc_k = crit.per_horizon(preds, z)
    ref_loss, ref_acc = loop_reference(preds, z, neg_idx, first=first)
    torch.testing.assert_close(loss_k, ref_loss)
    torch.testing.assert_close(acc_k, ref_acc)
    assert set(crit(preds, z)[1]) == {"acc", *(f"acc/k{k}" for k in range(first, first + n))}


@pytest.mark.parametrize("first", [1, 2, 3])
def test_positives_are_exactly_the_offsets_from_first_to_k(first):
    """The positive of the prediction at position t for row i is z[t + first + i] of its own sequence, in both
    scoring paths; nothing nearer is ever a positive."""
    B, n, T = 2, 2, 8
    crit = InfoNCE("all", first=first)
    preds = torch.zeros(B, n, T - (first + n - 1), 1)
    _, target = crit.all_logits(preds, torch.zeros(B, T, 1))  # (B, n, S): flat index of each positive
    b, i, t = torch.meshgrid(*(torch.arange(d) for d in target.shape), indexing="ij")
    assert torch.equal(target, b * T + t + first + i)
    z = torch.arange(B * T, dtype=torch.float64).reshape(B, T, 1)  # each latent holds its own flat index
    logits = crit.sampled_logits(torch.ones(B, n, T - first - n + 1, 1, dtype=torch.float64), z,
                                 torch.zeros(B, 1, dtype=torch.long))
    assert torch.equal(logits[..., 0], (b * T + t + first + i).double())  # column 0: the positive's score


def test_random_features_give_log_one_plus_n():
    N = 128
    preds, z = 1e-3 * torch.randn(8, 12, 128, 64), torch.randn(8, 128, 64)
    crit = InfoNCE("batch", N)
    loss, _ = crit(preds, z)
    assert loss.item() == pytest.approx(math.log(1 + N), rel=1e-3)
    assert crit.chance_loss(8, 128) == pytest.approx(math.log(1 + N))
    assert InfoNCE("all").chance_loss(8, 128) == pytest.approx(math.log(8 * 128))


def test_untrained_model_starts_near_log_one_plus_n():
    # random weights give scores of some spread, so the loss starts a little above chance, never below it
    model = build_model(resolve({"model": {"size": "synthetic_tiny"}, "objective": TINY_TASK}))
    loss, _ = model(torch.randn(8, 1, 4096))
    assert math.log(1 + 32) - 0.05 < loss.item() < 1.15 * math.log(1 + 32)


def test_perfect_predictions_have_accuracy_one():
    z = F.normalize(torch.randn(4, 20, 32), dim=-1)
    K = 5
    preds = torch.stack([torch.roll(z, -k, dims=1) for k in range(1, K + 1)], dim=1)  # preds[:, k-1, t] = z[t+k]
    for mode in ("batch", "sequence", "all"):
        loss, metrics = InfoNCE(mode, 16, normalize=True, temperature=0.01)(preds, z)
        assert metrics["acc"] == 1 and all(metrics[f"acc/k{k}"] == 1 for k in range(1, K + 1)), mode
        assert loss.item() < 1e-3, mode


def test_group_negatives_come_from_the_same_group():
    z = torch.randn(6, 10, 4)
    groups = torch.tensor([0, 1, 2, 0, 1, 2])
    idx = InfoNCE("group", 50).sample_negatives(z, groups)
    assert torch.equal(groups[idx // 10], groups[:, None].expand(-1, 50))


def test_group_mode_without_groups_is_refused():
    with pytest.raises(ValueError, match="group ids"):
        InfoNCE("group", 4)(torch.randn(2, 2, 8, 3), torch.randn(2, 8, 3))


def test_too_short_sequence_is_refused():
    with pytest.raises(ValueError, match="too short"):
        InfoNCE("batch", 4)(torch.randn(2, 5, 5, 3), torch.randn(2, 5, 3))


def test_gradcheck():
    preds = torch.randn(2, 2, 6, 3, dtype=torch.float64, requires_grad=True)
    z = torch.randn(2, 6, 3, dtype=torch.float64, requires_grad=True)
    crit = InfoNCE("batch", 5)
    neg_idx = crit.sample_negatives(z)
    crit.sample_negatives = lambda *_: neg_idx
    assert torch.autograd.gradcheck(lambda p, q: crit(p, q)[0], (preds, z))


def test_gradients_reach_encoder_context_and_predictor():
    model = build_model(resolve({"model": {"size": "synthetic_tiny"}, "objective": TINY_TASK}))
    loss, _ = model(torch.randn(4, 1, 2048))
    loss.backward()
    for part in (model.encoder, model.context, model.predictor):
        grads = [p.grad for p in part.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("mode", ["batch", "sequence", "all"])
def test_latents_without_information_score_no_hits(mode):
    """Silence: every latent and prediction the same, so every candidate ties with the positive. A tie is a miss
    (argmax would pick the positive, listed first, and report perfect accuracy)."""
    z, preds = torch.ones(4, 20, 8), torch.ones(4, 3, 20, 8)
    crit = InfoNCE(mode, 16)
    loss, metrics = crit(preds, z)
    assert metrics["acc"] == 0 and all(metrics[f"acc/k{k}"] == 0 for k in (1, 2, 3))
    # chance level (a little below with sampled negatives: a drawn negative that is the positive is masked)
    assert 0.97 * crit.chance_loss(4, 20) < loss.item() <= crit.chance_loss(4, 20) + 1e-5
