"""SimCLR, MoCo v2 and SDCLR (seqcpc/objectives/contrastive.py): NT-Xent against a plain loop (also across a
faked second rank), MoCo's momentum encoder and queue, and tiny runs of the real `seqcpc pretrain`."""
import csv
import json
import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_ANY, cli
from image_fixtures import toy_image_store
from seqcpc.builders import build_model
from seqcpc.config import resolve
from seqcpc.errors import ConfigError
from seqcpc.objectives.moco import MoCo
from seqcpc.objectives.sdclr import SDCLR
from seqcpc.objectives.simclr import SimCLR
from seqcpc.core.gather import RankGather
from seqcpc.objectives.ntxent import nt_xent, nt_xent_chance
from seqcpc.train.checkpoint import load_model, read_checkpoint


def nt_xent_loop(a, b, temperature, other_a=None, other_b=None):
    """Plain loops: every view of every sample (another rank's first) is a candidate, and each of this rank's
    2B views is a query whose positive is the other view of its sample. Returns (loss, acc)."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    local = range(len(a))
    if other_a is not None:
        a, b = torch.cat([other_a, a]), torch.cat([other_b, b])
        local = range(len(other_a), len(a))
    views = [(s, v, vec) for v, part in enumerate((a, b)) for s, vec in enumerate(part)]
    loss, hits = 0.0, 0.0
    for s in local:
        for v, query in enumerate((a[s], b[s])):
            cands = [(t, w, vec) for t, w, vec in views if (t, w) != (s, v)]
            target = [(t, w) for t, w, _ in cands].index((s, 1 - v))
            scores = torch.stack([query @ vec for _, _, vec in cands]) / temperature
            loss = loss - F.log_softmax(scores, 0)[target]
            others = torch.cat([scores[:target], scores[target + 1:]])
            hits += float(scores[target] > others.max())
    return loss / (2 * len(local)), hits / (2 * len(local))


def test_nt_xent_equals_the_loop():
    a, b = torch.randn(6, 5), torch.randn(6, 5)
    loss, metrics = nt_xent(a, b, 0.3)
    ref_loss, ref_acc = nt_xent_loop(a, b, 0.3)
    torch.testing.assert_close(loss, ref_loss)
    assert metrics["acc"].item() == pytest.approx(ref_acc)


def test_nt_xent_accuracy_counts_queries_whose_positive_wins():
    a = F.normalize(torch.randn(6, 8), dim=-1)
    b = a.clone()
    b[:2] = -a[:2]  # the first two samples' views point apart: 4 of the 12 queries miss
    loss, metrics = nt_xent(a, b, 0.1)
    assert metrics["acc"].item() == pytest.approx(nt_xent_loop(a, b, 0.1)[1]) == pytest.approx(8 / 12)


def test_random_features_give_log_of_2b_minus_1():
    B = 32
    loss, _ = nt_xent(torch.randn(B, 4096), torch.randn(B, 4096), 1.0)
    assert loss.item() == pytest.approx(math.log(2 * B - 1), rel=1e-2)
    assert nt_xent_chance(B) == pytest.approx(math.log(2 * B - 1))


def test_identical_views_at_a_low_temperature_give_no_loss_and_full_accuracy():
    a = torch.randn(6, 64)
    loss, metrics = nt_xent(a, a.clone(), 0.02)
    assert loss.item() < 1e-4 and metrics["acc"] == 1


def test_gradients_reach_both_views():
    a, b = torch.randn(6, 5, requires_grad=True), torch.randn(6, 5, requires_grad=True)
    nt_xent(a, b, 0.3)[0].backward()
    for g in (a.grad, b.grad):
        assert torch.isfinite(g).all() and g.abs().sum() > 0


class OtherRankFirst(RankGather):
    """Rank 1 of 2: each gather puts the next of `others` (another rank's normalised rows) before the local rows."""

    def __init__(self, others):
        super().__init__()
        self.world, self.rank, self.others = 2, 1, list(others)

    def __call__(self, t, grads=False):
        return torch.cat([self.others.pop(0), t if grads else t.detach()])


def test_nt_xent_over_two_ranks_equals_the_loop_over_every_key():
    other_a, other_b = F.normalize(torch.randn(4, 5), dim=-1), F.normalize(torch.randn(4, 5), dim=-1)
    a, b = torch.randn(4, 5, requires_grad=True), torch.randn(4, 5, requires_grad=True)
    loss, metrics = nt_xent(a, b, 0.3, OtherRankFirst([other_a, other_b]))
    ref_loss, ref_acc = nt_xent_loop(a, b, 0.3, other_a, other_b)
    torch.testing.assert_close(loss, ref_loss)
    assert metrics["acc"].item() == pytest.approx(ref_acc)
    assert loss.item() != pytest.approx(nt_xent(a, b, 0.3)[0].item())  # the other rank's views count
    loss.backward()
    assert a.grad.abs().sum() > 0 and b.grad.abs().sum() > 0


def test_rank_gather_puts_each_ranks_rows_in_rank_order_and_detaches_unless_asked():
    other, calls = torch.randn(3, 2), []

    def all_gather(t, sync_grads=False):
        calls.append((t.requires_grad, sync_grads))
        return torch.stack([other, t])  # (world, B, ...) as Fabric gives it

    gather = RankGather(SimpleNamespace(world_size=2, global_rank=1, all_gather=all_gather))
    t = torch.randn(3, 2, requires_grad=True)
    out = gather(t)
    assert out.shape == (6, 2) and torch.equal(out[:3], other) and torch.equal(out[3:], t.detach())
    gather(t, grads=True)
    assert calls == [(False, False), (True, True)]
    assert RankGather()(t) is t  # one process: the local tensor itself


def tiny_image(objective, **contrastive):
    return build_model(resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16}, "patches": {"widths": [8, 16]}},
                                 "objective": {"name": objective, "hidden": 32, "projection": 16, **contrastive}}))


def test_use_fabric_gives_every_gathering_module_the_runs_ranks():
    model = tiny_image("simclr")
    model.use_fabric(SimpleNamespace(world_size=2, global_rank=1))
    assert model.gather.world == 2 and model.gather.rank == 1
    assert model.chance_loss(8, 9) == pytest.approx(math.log(2 * 16 - 1))  # 2B views on each of 2 ranks
    assert SimCLR.gather.world == 1  # the class default is left alone


@pytest.mark.parametrize("objective, kind", [("simclr", SimCLR), ("moco", MoCo), ("sdclr", SDCLR)])
def test_each_objective_builds_and_trains_the_encoder_and_head(objective, kind):
    model = tiny_image(objective)
    assert type(model) is kind
    model.on_epoch_start(0)
    loss, metrics = model(torch.rand(8, 1, 16, 16))
    assert loss.dim() == 0 and set(metrics) == {"acc"} and 0 <= metrics["acc"] <= 1
    loss.backward()
    for part in (model.features.encoder, model.head):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters()), objective
    z, c = model.embed(torch.rand(2, 1, 16, 16))
    assert z.shape == (2, 3, 3, 16) and c is z  # the un-augmented latent grid, as a CPC model's embed


def test_views_are_drawn_in_validation_too():
    model = tiny_image("simclr").eval()
    assert model.views.training and not model.features.training and not model.head.training
    x = torch.rand(8, 1, 16, 16)
    with torch.no_grad():
        assert not torch.equal(model.views(x), model.views(x))


def test_an_audio_simclr_model_needs_its_view_length():
    cfg = resolve({"model": {"size": "synthetic_tiny"}, "objective": {"name": "simclr"}})
    with pytest.raises(ConfigError, match="views.length"):
        build_model(cfg)
    cfg.objective.views.length, cfg.objective.hidden, cfg.objective.projection = 768, 32, 16
    model = build_model(cfg)
    loss, _ = model(torch.randn(6, 1, 1024))
    loss.backward()
    assert all(p.grad.abs().sum() > 0 for p in model.features.parameters())  # encoder and GRU
    z, c = model.embed(torch.randn(2, 1, 1024))
    assert z.shape == (2, 1024 // 40, 64) and c.shape == (2, 1024 // 40, 64)


def test_moco_key_network_follows_the_query_network_by_its_momentum():
    model = tiny_image("moco", momentum=0.9)
    pairs = list(model.key_pairs())
    assert len(pairs) == len(list(model.features.parameters())) + len(list(model.head.parameters()))
    assert all(torch.equal(k, q) for k, q in pairs)  # the key network starts as a copy
    with torch.no_grad():
        for _, q in pairs:
            q.add_(torch.randn_like(q))
    before = [(k.clone(), q.clone()) for k, q in pairs]
    model.on_step_end(1)
    for (k, q), (k0, q0) in zip(model.key_pairs(), before):
        assert torch.equal(q, q0)  # the query network is not moved
        torch.testing.assert_close(k, 0.9 * k0 + 0.1 * q0)
        assert not torch.equal(k, k0)


def test_moco_keys_get_no_gradient():
    model = tiny_image("moco")
    model(torch.rand(8, 1, 16, 16))[0].backward()
    keys = [*model.key_features.parameters(), *model.key_head.parameters()]
    assert keys and all(not p.requires_grad and p.grad is None for p in keys)


def test_moco_scores_its_query_against_its_key_and_the_queue_then_pushes_the_keys():
    model = tiny_image("moco", queue=40, temperature=0.2).train()
    x = torch.rand(8, 1, 16, 16)
    queue = model.queue.current()
    torch.manual_seed(5)  # replay the forward's draws: view 1 through the query network, then view 2
    with torch.no_grad():
        q = F.normalize(model.project(model.views(x)), dim=-1)
        k = F.normalize(model.key_head(model.key_features(model.views(x))), dim=-1)
    logits = torch.cat([(q * k).sum(-1, keepdim=True), q @ queue.T], dim=1) / 0.2
    torch.manual_seed(5)
    loss, _ = model(x)
    torch.testing.assert_close(loss, F.cross_entropy(logits, torch.zeros(8, dtype=torch.long)))
    assert int(model.queue.ptr) == 8 and len(model.queue) == 40
    torch.testing.assert_close(model.queue.keys[:8], k)
    torch.testing.assert_close(model.queue.keys[8:], queue[8:])
    assert model.chance_loss(8, 9) == pytest.approx(math.log(1 + 40))


def test_moco_validation_leaves_the_queue_alone():
    model = tiny_image("moco", queue=40).eval()
    keys = model.queue.keys.clone()
    with torch.no_grad():
        model(torch.rand(8, 1, 16, 16))
    assert torch.equal(model.queue.keys, keys) and int(model.queue.ptr) == 0


# the real `seqcpc pretrain`, a few dozen steps each

IMAGE_RUN = ["model.size=image_small", "model.encoder.dim=32", "model.patches.widths=[8,16]",
             "objective.hidden=64", "objective.projection=32", "data.batch_size=16", "optim.lr=2e-3",
             "optim.warmup_steps=5", "train.log_every=5", "train.val_every=1000", "train.val_batches=2",
             "train.deterministic=true"]  # one thread: quicker on busy cores, and the same numbers every time


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_image_store(tmp_path_factory.mktemp("contrastive") / "stripes")


def train_losses(out):
    with open(out / "metrics.csv", newline="") as f:
        return {int(r["step"]): float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"}


def summary(out):
    return json.loads((out / "summary.json").read_text())


@pytest.mark.parametrize("objective, kind, extra", [("simclr", SimCLR, []),
                                                    ("sdclr", SDCLR, ["objective.prune_ratio=0.2"])])
def test_an_image_objective_learns_through_the_cli(store, tmp_path, capsys, objective, kind, extra):
    code, _, err = cli(capsys, "pretrain", *IMAGE_RUN, f"objective.name={objective}", *extra,
                       f"data.images={store}", "train.max_steps=30", f"train.out_dir={tmp_path}")
    assert code == 0, err
    losses = list(train_losses(tmp_path).values())
    assert len(losses) == 6 and losses[-1] < losses[0]
    result = summary(tmp_path)
    assert result["chance_loss"] == pytest.approx(math.log(2 * 16 - 1))
    assert result["val_loss"] < result["chance_loss"]
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert type(load_model(ckpt)) is kind
    if objective == "sdclr":  # the loop renewed the masks at every epoch: 120 images, 7 batches an epoch
        state = read_checkpoint(ckpt)["model"]
        assert int(state["damage.epoch"]) == 29 // 7
        kept = [v for k, v in state.items() if k.startswith("damage.mask__")]
        assert sum(int(m.sum()) for m in kept) / sum(m.numel() for m in kept) == pytest.approx(0.8, abs=1e-3)


def test_moco_learns_through_the_cli_and_resumes_with_its_queue(store, tmp_path, capsys):
    args = [*IMAGE_RUN, "objective.name=moco", "objective.queue=100", f"data.images={store}",
            f"train.out_dir={tmp_path}"]
    code, _, err = cli(capsys, "pretrain", *args, "train.max_steps=10")
    assert code == 0, err
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    first = read_checkpoint(ckpt)["model"]
    assert first["queue.keys"].shape == (100, 32) and int(first["queue.ptr"]) == 10 * 16 % 100

    code, out, err = cli(capsys, "pretrain", *args, "train.max_steps=30", "--resume")
    assert code == 0, err
    assert "resumed from" in out and "at step 10" in out
    state = read_checkpoint(ckpt)["model"]
    assert int(state["queue.ptr"]) == 30 * 16 % 100  # a fresh queue would stand at 20 * 16 % 100
    losses = train_losses(tmp_path)
    assert sorted(losses) == [5, 10, 15, 20, 25, 30]
    # the loss rises while real keys replace the queue's random ones (7 steps), then falls
    assert losses[30] < losses[10]
    assert summary(tmp_path)["val_loss"] < math.log(1 + 100)


def test_moco_on_an_audio_encoder_with_batch_norm_is_refused(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY_ANY, "objective.name=moco", "model.encoder.norm=batch",
                       f"train.out_dir={tmp_path}")
    assert code == 1 and "batch statistics" in err and "Traceback" not in err


def test_audio_simclr_learns_through_the_cli(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY_ANY, "objective.name=simclr", "objective.hidden=64",
                       "objective.projection=32", "data.batch_size=16", "train.max_steps=20",
                       "train.val_every=1000", "train.val_batches=2", "train.deterministic=true",
                       f"train.out_dir={tmp_path}")
    assert code == 0, err
    losses = list(train_losses(tmp_path).values())
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert summary(tmp_path)["val_loss"] < math.log(2 * 16 - 1)
    model = load_model(tmp_path / "checkpoints" / "last.ckpt")
    assert type(model) is SimCLR and model.views.length == 2048 * 3 // 4  # 3/4 of the window, set by the run
    z, c = model.embed(torch.randn(2, 1, 2048))
    assert z.shape[:2] == c.shape[:2] == (2, 2048 // 40)
