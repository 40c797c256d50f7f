"""KeyQueue (seqcpc/objectives/queue.py) and InfoNCE's negatives=queue (seqcpc/objectives/infonce.py): FIFO order
over the wrap-around, the copy that backward needs, checkpoints, and the Q extra columns of the logits."""
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_TASK
from seqcpc.builders import build_model
from seqcpc.config import resolve
from seqcpc.errors import ConfigError
from seqcpc.objectives.infonce import InfoNCE, LossConfig, check_negatives
from seqcpc.objectives.queue import KeyQueue


def rows(ids, dim=2):
    """(M, dim) keys whose every entry is the key's id, so a queue's content reads as a list of ids."""
    return torch.tensor(ids, dtype=torch.float32)[:, None].expand(-1, dim).clone()


def ids(queue):
    return queue.current()[:, 0].long().tolist()


def test_pushes_wrap_around_over_the_oldest_keys():
    queue = KeyQueue(5, 2)
    assert len(queue) == 0 and queue.current().shape == (0, 2)
    queue.push(rows([0, 1, 2]))
    assert ids(queue) == [0, 1, 2] and len(queue) == 3 and int(queue.ptr) == 3
    queue.push(rows([3, 4, 5, 6]))  # slots 3, 4, then 0 and 1: keys 0 and 1, the oldest, are overwritten
    assert ids(queue) == [5, 6, 2, 3, 4] and len(queue) == 5 and int(queue.ptr) == 2
    queue.push(rows([7]))  # the next oldest, key 2
    assert ids(queue) == [5, 6, 7, 3, 4] and len(queue) == 5 and int(queue.ptr) == 3


@pytest.mark.parametrize("start", [0, 2])
def test_a_push_longer_than_the_queue_keeps_its_last_keys_in_order(start):
    queue = KeyQueue(5, 2)
    queue.push(rows(list(range(100, 100 + start))))
    queue.push(rows(list(range(12))))
    assert sorted(ids(queue)) == [7, 8, 9, 10, 11] and len(queue) == 5
    queue.push(rows([12]))  # FIFO goes on: 7, the oldest kept, goes first
    assert sorted(ids(queue)) == [8, 9, 10, 11, 12]
    queue.push(rows([13]))
    assert sorted(ids(queue)) == [9, 10, 11, 12, 13]


def test_current_is_a_copy_so_a_push_after_scoring_leaves_backward_intact():
    queue = KeyQueue(4, 3)
    queue.push(torch.randn(4, 3))
    old = queue.keys.clone()
    q = torch.randn(2, 3, requires_grad=True)
    loss = (q @ queue.current().T).sum()
    queue.push(torch.randn(3, 3))  # MoCo and InfoNCE push after the scores are computed
    loss.backward()  # an in-place write into a view would fail here
    torch.testing.assert_close(q.grad, old.sum(0).expand(2, -1))


def test_pushed_keys_are_detached_copies():
    queue = KeyQueue(3, 2)
    keys = torch.randn(2, 2, requires_grad=True)
    queue.push(keys)
    assert not queue.keys.requires_grad
    with torch.no_grad():
        keys.mul_(0)
    assert queue.keys[:2].abs().sum() > 0


def test_state_dict_round_trip_gives_the_same_queue():
    queue = KeyQueue(5, 2)
    queue.push(rows([0, 1, 2]))
    queue.push(rows([3, 4, 5, 6]))
    fresh = KeyQueue(5, 2)
    fresh.load_state_dict(queue.state_dict())
    assert torch.equal(fresh.keys, queue.keys)
    assert int(fresh.ptr) == int(queue.ptr) == 2 and len(fresh) == len(queue) == 5
    assert set(queue.state_dict()) == {"keys", "ptr", "filled"}
    queue.push(rows([9]))
    fresh.push(rows([9]))
    assert torch.equal(fresh.keys, queue.keys)


def test_a_partly_filled_queue_restores_only_its_written_keys():
    queue = KeyQueue(6, 2)
    queue.push(rows([1, 2]))
    fresh = KeyQueue(6, 2, random=True)
    fresh.load_state_dict(queue.state_dict())
    assert ids(fresh) == [1, 2] and int(fresh.ptr) == 2


def test_a_random_queue_starts_full_of_unit_keys():
    queue = KeyQueue(7, 4, random=True)
    assert len(queue) == 7 and int(queue.ptr) == 0
    torch.testing.assert_close(queue.current().norm(dim=1), torch.ones(7))


def tiny_moco(queue):
    return build_model(resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16}, "patches": {"widths": [8, 16]}},
                                 "objective": {"name": "moco", "hidden": 32, "projection": 16, "queue": queue}}))


def test_a_moco_models_queue_survives_its_saved_and_loaded_state(tmp_path):
    model = tiny_moco(40)
    for _ in range(3):
        model(torch.rand(8, 1, 16, 16))
    torch.save(model.state_dict(), tmp_path / "moco.pt")
    torch.manual_seed(1)
    fresh = tiny_moco(40)
    assert not torch.equal(fresh.queue.keys, model.queue.keys)
    fresh.load_state_dict(torch.load(tmp_path / "moco.pt", weights_only=True))
    assert torch.equal(fresh.queue.keys, model.queue.keys)
    assert int(fresh.queue.ptr) == 24 and len(fresh.queue) == 40
    assert all(torch.equal(a, b) for a, b in zip(fresh.key_features.parameters(), model.key_features.parameters()))


@pytest.mark.parametrize("size, dim", [(0, 4), (4, 0)])
def test_an_empty_queue_shape_is_refused(size, dim):
    with pytest.raises(ValueError, match="size >= 1 and dim >= 1"):
        KeyQueue(size, dim)


# InfoNCE with negatives=queue

B, K, T, D, N, Q = 3, 2, 10, 4, 5, 16


def fixed_negatives(crit, z):
    """Make crit always use the same sampled negatives (as tests/objectives/test_infonce.py does)."""
    neg_idx = crit.sample_negatives(z)
    crit.sample_negatives = lambda *_: neg_idx
    return neg_idx


def test_with_an_empty_queue_the_loss_is_batch_modes():
    preds, z = torch.randn(B, K, T, D, dtype=torch.float64), torch.randn(B, T, D, dtype=torch.float64)
    queued, batch = InfoNCE("queue", N, temperature=0.5, queue=Q, dim=D).double(), InfoNCE("batch", N, temperature=0.5)
    neg_idx = fixed_negatives(queued, z)
    batch.sample_negatives = lambda *_: neg_idx
    for train in (False, True):
        (loss_q, m_q), (loss_b, m_b) = queued.train(train)(preds, z), batch(preds, z)
        torch.testing.assert_close(loss_q, loss_b)
        torch.testing.assert_close(m_q["acc"], m_b["acc"])
    assert len(queued.queue) == 0  # nothing is pushed before the step ends
    queued.end_step()
    assert len(queued.queue) == N  # the training forward's N targets, pushed at the end of its step


def test_a_training_step_pushes_num_negatives_of_the_batchs_targets():
    crit = InfoNCE("queue", N, queue=Q, dim=D)
    z = torch.randn(B, T, D)
    crit.eval()(torch.randn(B, K, T, D), z)
    crit.end_step()
    assert len(crit.queue) == 0  # validation leaves the queue alone
    crit.train()(torch.randn(B, K, T, D), z)
    crit.end_step()
    keys = crit.queue.current()
    assert keys.shape == (N, D) and int(crit.queue.ptr) == N
    assert all((z.flatten(0, 1) == key).all(-1).any() for key in keys)  # each a target of the batch
    for _ in range(3):
        crit(torch.randn(B, K, T, D), z)
        crit.end_step()
    assert len(crit.queue) == Q and int(crit.queue.ptr) == 4 * N % Q


@pytest.mark.parametrize("normalize", [False, True])
def test_queued_keys_add_q_columns_scored_like_the_others(normalize):
    crit = InfoNCE("queue", N, normalize=normalize, queue=Q, dim=D).double()
    keys = torch.randn(7, D, dtype=torch.float64)
    crit.queue.push(keys)
    preds, z = torch.randn(B, K, T - K, D, dtype=torch.float64), torch.randn(B, T, D, dtype=torch.float64)
    neg_idx = crit.sample_negatives(z)
    logits = crit.sampled_logits(preds, z, neg_idx)
    plain = InfoNCE("batch", N).sampled_logits(preds, z, neg_idx)
    assert logits.shape == (B, K, T - K, 1 + N + 7)
    torch.testing.assert_close(logits[..., : 1 + N], plain)
    keys = F.normalize(keys, dim=-1) if normalize else keys
    torch.testing.assert_close(logits[..., 1 + N:], torch.einsum("bksd,qd->bksq", preds, keys))


def test_more_negatives_from_the_queue_raise_the_loss_of_the_same_predictions():
    preds, z = torch.randn(B, K, T, D), torch.randn(B, T, D)
    crit = InfoNCE("queue", N, queue=Q, dim=D).eval()
    fixed_negatives(crit, z)
    before, _ = crit(preds, z)
    crit.queue.push(torch.randn(Q, D))
    after, _ = crit(preds, z)
    assert after > before  # every extra candidate adds to the softmax's denominator


def test_chance_loss_counts_the_full_queue():
    crit = InfoNCE("queue", N, queue=Q, dim=D)
    assert crit.chance_loss(B, T) == pytest.approx(math.log(1 + N + Q))


def test_more_targets_pushed_a_step_than_the_queue_holds_is_refused():
    with pytest.raises(ConfigError, match="at most objective.loss.queue=8"):
        check_negatives(LossConfig(negatives="queue", num_negatives=16, queue=8), 8, 100, 100)
    check_negatives(LossConfig(negatives="queue", num_negatives=8, queue=8), 8, 100, 100)


def test_the_queue_takes_the_targets_of_every_rank():
    crit = InfoNCE("queue", N, queue=Q, dim=D)
    other = torch.full((N, D), 7.0)
    fabric = SimpleNamespace(world_size=2, global_rank=1, all_gather=lambda t, sync_grads: torch.stack([other, t]))
    model = build_model(resolve({"model": {"size": "synthetic_tiny"}, "objective": TINY_TASK}))
    model.loss = crit
    model.use_fabric(fabric)
    assert crit.gather.world == 2
    crit(torch.randn(B, K, T, D), torch.randn(B, T, D))
    model.on_step_end(1)
    keys = crit.queue.current()
    assert len(keys) == 2 * N and torch.equal(keys[:N], other)  # rank 0's targets, then this rank's


def test_a_cpc_model_with_a_queue_keeps_it_in_its_state_dict():
    cfg = resolve({"model": {"size": "synthetic_tiny"},
                   "objective": {"predictor": {"steps": 6}, "loss": {"negatives": "queue", "num_negatives": 32, "queue": 64}}})
    model = build_model(cfg)
    model(torch.randn(4, 1, 1024))
    model.on_step_end(1)
    state = model.state_dict()
    assert int(state["loss.queue.filled"]) == cfg.objective.loss.num_negatives and state["loss.queue.keys"].shape == (64, 64)


def tiny_patch_cpc_with_two_directions():
    return build_model(resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16},
                                          "context": {"dim": 16}, "patches": {"widths": [8, 16], "directions": 2}},
                                "objective": {"loss": {"negatives": "queue", "num_negatives": 8, "queue": 64}}}))


def tiny_audio_cpc_with_a_pruned_competitor():
    return build_model(resolve({"model": {"size": "synthetic_tiny"}, "objective": {
        "predictor": {"steps": 6}, "loss": {"negatives": "queue", "num_negatives": 32, "queue": 256},
        "pruned_competitor": True}}))


@pytest.mark.parametrize("build, x", [(tiny_patch_cpc_with_two_directions, (4, 1, 28, 28)),
                                      (tiny_audio_cpc_with_a_pruned_competitor, (4, 1, 1024))])
def test_every_loss_call_of_a_step_sees_the_queue_as_it_was_before_the_step(build, x):
    model = build()
    model.on_epoch_start(0)
    seen, sampled = [], model.loss.sampled_logits

    def spy(preds, z, neg_idx):
        seen.append(len(model.loss.queue))
        return sampled(preds, z, neg_idx)

    model.loss.sampled_logits = spy
    model(torch.randn(*x))
    assert len(seen) == 2
    assert seen == [0, 0]  # the queue is empty before the first step: no call may see this batch's targets
    model.on_step_end(1)
    assert len(model.loss.queue) == model.loss.num_negatives  # N targets pushed per step
