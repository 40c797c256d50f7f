"""InfoNCE on padded sequences: only predictions of valid targets count, negatives never come from the padding,
and a mask of all-valid positions changes nothing."""
import pytest
import torch
import torch.nn.functional as F

from seqcpc.core.masking import frame_mask
from seqcpc.objectives.infonce import InfoNCE

B, K, T, D, N = 4, 3, 12, 6, 9
VALID = torch.tensor([12, 7, 5, 9])  # valid steps of each sequence; 5 > K leaves every offset a prediction
SETUPS = [(mode, draw) for mode in ("batch", "sequence", "group", "queue") for draw in ("shared", "position")]


def batch(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    preds = torch.randn(B, K, T, D, generator=g, dtype=dtype)
    return preds, torch.randn(B, T, D, generator=g, dtype=dtype), torch.tensor([0, 1, 0, 1])


def repadded(preds, z, mask, scale=100.0):
    """The same batch with its padding (predictions and latents at padded steps) replaced by large noise."""
    g = torch.Generator().manual_seed(1)
    noise_z = scale * torch.randn(z.shape, generator=g, dtype=z.dtype)
    noise_p = scale * torch.randn(preds.shape, generator=g, dtype=preds.dtype)
    return torch.where(mask[:, None, :, None], preds, noise_p), torch.where(mask[..., None], z, noise_z)


def masked_loop(preds, z, mask, neg_idx):
    """Plain loops over the counted predictions only (target t + k valid), with the drawn negatives."""
    S, flat = T - K, z.reshape(B * T, D)
    loss, count = torch.zeros(K, dtype=preds.dtype), torch.zeros(K)
    for b in range(B):
        for i, k in enumerate(range(1, K + 1)):
            for t in range(S):
                if not mask[b, t + k]:
                    continue
                positive = b * T + t + k
                drawn = neg_idx[b] if neg_idx.dim() == 2 else neg_idx[b, t]
                cands = [positive] + [j for j in drawn.tolist() if j != positive]
                scores = torch.stack([preds[b, i, t] @ flat[j] for j in cands])
                loss[i] -= F.log_softmax(scores, 0)[0]
                count[i] += 1
    return loss / count


@pytest.mark.parametrize("mode,draw", SETUPS)
def test_padded_positions_are_never_drawn_as_negatives(mode, draw):
    _, z, groups = batch()
    mask = frame_mask(VALID, T)
    crit = InfoNCE(mode, 64, draw=draw, dim=D, queue=8)
    idx = crit.sample_negatives(z, groups, T - K, mask)
    assert mask.flatten()[idx].all()
    rows = torch.arange(B).view(B, *[1] * (idx.dim() - 1)).expand_as(idx)
    if mode == "sequence":
        assert (idx // T == rows).all()
    if mode == "group":
        assert (groups[idx // T] == groups[rows]).all()
    unmasked = crit.sample_negatives(z, groups, T - K)
    assert not mask.flatten()[unmasked].all()  # the check above can fail: unmasked draws do hit the padding


def test_redrawn_negatives_are_uniform_over_the_valid_positions():
    _, z, _ = batch()
    mask = frame_mask(VALID, T)
    crit = InfoNCE("batch", 20_000)
    counts = torch.bincount(crit.sample_negatives(z, mask=mask).flatten(), minlength=B * T).float()
    valid = counts[mask.flatten()]
    assert counts[~mask.flatten()].sum() == 0
    share = valid / valid.sum()
    assert (share - 1 / mask.sum()).abs().max() < 0.2 / mask.sum()  # every valid position equally often


@pytest.mark.parametrize("mode,draw", SETUPS)
def test_masked_loss_equals_the_loop_over_counted_predictions(mode, draw):
    preds, z, groups = batch(torch.float64)
    mask = frame_mask(VALID, T)
    crit = InfoNCE(mode, N, draw=draw, dim=D, queue=8)
    torch.manual_seed(3)
    neg_idx = crit.sample_negatives(z, groups, T - K, mask)
    crit.sample_negatives = lambda *_: neg_idx
    loss_k, _ = crit.per_horizon(preds, z, groups, mask)
    torch.testing.assert_close(loss_k, masked_loop(preds, z, mask, neg_idx))


@pytest.mark.parametrize("mode,draw", SETUPS + [("all", "shared")])
def test_the_padding_never_changes_loss_accuracy_or_gradients(mode, draw):
    preds, z, groups = batch()
    mask = frame_mask(VALID, T)
    results = []
    for p, zz in ((preds, z), repadded(preds, z, mask)):
        p, zz = p.clone().requires_grad_(), zz.clone().requires_grad_()
        crit = InfoNCE(mode, N, draw=draw, dim=D, queue=8)
        torch.manual_seed(5)
        loss, metrics = crit(p, zz, groups, mask)
        loss.backward()
        results.append((loss, metrics, p.grad, zz.grad))
    (loss0, m0, gp0, gz0), (loss1, m1, gp1, gz1) = results
    torch.testing.assert_close(loss0, loss1, rtol=0, atol=0)
    assert m0 == m1
    assert torch.isfinite(gp1).all() and torch.isfinite(gz1).all()
    torch.testing.assert_close(gp0, gp1, rtol=0, atol=0)
    torch.testing.assert_close(gz0, gz1, rtol=0, atol=0)
    assert (gz1[~mask] == 0).all() and (gp1[~mask[:, None].expand(-1, K, -1)] == 0).all()


@pytest.mark.parametrize("mode,draw", SETUPS + [("all", "shared")])
def test_an_all_valid_mask_gives_exactly_the_unmasked_loss(mode, draw):
    preds, z, groups = batch()
    out = []
    for mask in (None, torch.ones(B, T, dtype=torch.bool)):
        crit = InfoNCE(mode, N, draw=draw, dim=D, queue=8)
        torch.manual_seed(7)
        out.append(crit(preds, z, groups, mask))
    assert out[0][0].item() == out[1][0].item()  # bit for bit: the same draws, the same sums
    assert out[0][1] == out[1][1]


def test_all_mode_leaves_padded_columns_out():
    preds, z, _ = batch()
    mask = frame_mask(VALID, T)
    crit = InfoNCE("all")
    loss_k, _ = crit.per_horizon(preds, z, mask=mask)
    # the loop over counted predictions, each scored against every valid position of the batch
    flat, valid = z.reshape(B * T, D), mask.flatten().nonzero().squeeze(1)
    ref, count = torch.zeros(K), torch.zeros(K)
    for b in range(B):
        for i, k in enumerate(range(1, K + 1)):
            for t in range(T - K):
                if mask[b, t + k]:
                    scores = flat[valid] @ preds[b, i, t]
                    ref[i] -= F.log_softmax(scores, 0)[(valid == b * T + t + k).nonzero()[0, 0]]
                    count[i] += 1
    torch.testing.assert_close(loss_k, ref / count)


def test_the_queue_takes_only_valid_targets():
    _, z, _ = batch()
    mask = frame_mask(VALID, T)
    crit = InfoNCE("queue", 200, dim=D, queue=200)
    crit(torch.randn(B, K, T, D), z.masked_fill(~mask[..., None], float("nan")), mask=mask)
    crit.end_step()
    assert len(crit.queue) and torch.isfinite(crit.queue.current()).all()  # NaN would mark a padded target
