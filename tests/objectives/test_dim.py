"""Deep InfoMax (seqcpc/objectives/dim.py) and its bounds (seqcpc/objectives/infomax.py): the Jensen-Shannon
and InfoNCE bounds against plain loops (also across a faked second rank), DIM(L) and DIM(G) on images and audio
against loops over the model's own score networks, its chance level, its refusals, and tiny runs of the real
`seqcpc pretrain`."""
import csv
import json
import math

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_ANY, cli
from image_fixtures import toy_image_store
from seqcpc.builders import build_model, check_config, complete_config
from seqcpc.config import load_config, resolve
from seqcpc.core.gather import RankGather
from seqcpc.errors import ConfigError
from seqcpc.objectives.dim import DIM
from seqcpc.objectives.infomax import chance, infonce_bound, jsd_bound, pair_scores
from seqcpc.train.checkpoint import load_model


def bounds_loop(queries, keys, own):
    """Plain loops over every (sample b, query m, key n): the positive is key n of b's own sample, the negatives
    every key of every other sample. Returns (JSD loss, InfoNCE loss, acc)."""
    B, M, _ = queries.shape
    pos_terms, neg_terms, nce, hits = [], [], [], []
    for b in range(B):
        for m in range(M):
            q = queries[b, m]
            negatives = [q @ keys[c, n] for c in range(len(keys)) if c != own[b] for n in range(keys.shape[1])]
            for c in range(len(keys)):
                for n in range(keys.shape[1]):
                    s = q @ keys[c, n]
                    (pos_terms if c == own[b] else neg_terms).append(s)
            for n in range(keys.shape[1]):
                positive = q @ keys[own[b], n]
                candidates = torch.stack([positive, *negatives])
                nce.append(-F.log_softmax(candidates, 0)[0])
                hits.append(float(positive > max(negatives)))
    jsd = sum(F.softplus(-s) for s in pos_terms) / len(pos_terms) + sum(F.softplus(s) for s in neg_terms) / len(
        neg_terms)
    return jsd, sum(nce) / len(nce), sum(hits) / len(hits)


@pytest.mark.parametrize("M, N", [(1, 5), (1, 1), (3, 4)])
def test_the_bounds_equal_the_loops(M, N):
    queries, keys = torch.randn(4, M, 6), torch.randn(4, N, 6)
    own = torch.arange(4)
    scores = pair_scores(queries, keys)
    assert scores.shape == (4, M, 4, N)
    jsd, nce, acc = bounds_loop(queries, keys, own)
    torch.testing.assert_close(jsd_bound(scores, own)[0], jsd)
    torch.testing.assert_close(infonce_bound(scores, own)[0], nce)
    assert jsd_bound(scores, own)[1].item() == pytest.approx(acc) == pytest.approx(infonce_bound(scores, own)[1])


def test_the_bounds_take_another_ranks_keys_as_negatives():
    """Rank 1 of 2: the keys of rank 0's samples come first, so this rank's own samples are columns 3..5."""
    queries, keys = torch.randn(3, 1, 6), torch.randn(6, 4, 6)
    own = 3 + torch.arange(3)
    jsd, nce, acc = bounds_loop(queries, keys, own)
    scores = pair_scores(queries, keys)
    torch.testing.assert_close(jsd_bound(scores, own)[0], jsd)
    torch.testing.assert_close(infonce_bound(scores, own)[0], nce)
    assert infonce_bound(scores, own)[1].item() == pytest.approx(acc)


def test_zero_scores_give_the_chance_levels():
    scores, own = torch.zeros(4, 1, 4, 9), torch.arange(4)
    assert jsd_bound(scores, own)[0].item() == pytest.approx(chance("jsd", 4, 9)) == pytest.approx(2 * math.log(2))
    assert infonce_bound(scores, own)[0].item() == pytest.approx(chance("infonce", 4, 9))
    assert chance("infonce", 4, 9) == pytest.approx(math.log(3 * 9 + 1))
    assert jsd_bound(scores, own)[1] == 0  # ties are misses


def tiny_image(**options):
    return build_model(resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16},
                                          "patches": {"widths": [8, 16]}},
                                "objective": {"name": "dim", "hidden": 32, "projection": 16, **options}}))


def tiny_audio(**options):
    return build_model(resolve({"model": {"size": "synthetic_tiny"},
                                "objective": {"name": "dim", "hidden": 32, "projection": 16, **options}}))


def dim_loop(model, x, estimator):
    """The loss of an eval-mode DIM model by loops over its own features and score networks."""
    z, y = model.features(x)
    locals_ = z.flatten(1, -2)  # (B, N, D)
    total = 0.0
    pick = 0 if estimator == "jsd" else 1
    if model.beta:
        queries = model.global_to_local(y)[:, None]
        total = total + model.beta * bounds_loop(queries, model.to_local(locals_), range(len(x)))[pick]
    if model.alpha:
        whole = model.to_map(model.features.map_cells(z, model.cells))[:, None]
        total = total + model.alpha * bounds_loop(model.global_to_map(y)[:, None], whole, range(len(x)))[pick]
    return total


@pytest.mark.parametrize("estimator", ["jsd", "infonce"])
@pytest.mark.parametrize("alpha, beta", [(0.0, 1.0), (1.0, 0.0), (0.5, 2.0)])
def test_image_dim_equals_the_loop_over_its_score_networks(estimator, alpha, beta):
    model = tiny_image(estimator=estimator, alpha=alpha, beta=beta).eval()  # eval: patches not augmented
    x = torch.rand(4, 1, 16, 16)
    loss, metrics = model(x)
    with torch.no_grad():
        torch.testing.assert_close(loss, dim_loop(model, x, estimator))
    assert set(metrics) == {"acc"} | {f"acc/{t}" for t, w in (("local", beta), ("global", alpha)) if w}
    assert (hasattr(model, "to_local"), hasattr(model, "to_map")) == (bool(beta), bool(alpha))


@pytest.mark.parametrize("estimator", ["jsd", "infonce"])
def test_audio_dim_scores_the_pooled_context_against_each_frame(estimator):
    model = tiny_audio(estimator=estimator, alpha=1.0).eval()
    assert model.cells == 1  # a sequence is averaged over time
    x = torch.randn(3, 1, 1024)
    loss, _ = model(x)
    with torch.no_grad():
        torch.testing.assert_close(loss, dim_loop(model, x, estimator))
    model.train()
    model(x)[0].backward()
    for part in (model.features.encoder, model.features.context):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in part.parameters())
    z, c = model.embed(x)
    assert z.shape == (3, 1024 // 40, 64) and c.shape == (3, 1024 // 40, 64)


def test_image_dim_trains_the_encoder_and_embeds_the_latent_grid():
    model = tiny_image(alpha=1.0)
    assert type(model) is DIM
    model(torch.rand(8, 1, 16, 16))[0].backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.features.encoder.parameters())
    z, c = model.embed(torch.rand(2, 1, 16, 16))
    assert z.shape == (2, 3, 3, 16) and c is z  # the un-augmented grid, as the probes read it


@pytest.mark.parametrize("estimator", ["jsd", "infonce"])
def test_scores_of_zero_give_the_chance_loss(estimator):
    model = tiny_image(estimator=estimator, alpha=1.0, beta=0.5).eval()
    for head in (model.to_local, model.to_map):
        torch.nn.init.zeros_(head[2].weight), torch.nn.init.zeros_(head[2].bias)
    loss, _ = model(torch.rand(8, 1, 16, 16))
    assert loss.item() == pytest.approx(model.chance_loss(8, 9))


def test_another_rank_doubles_the_negatives_of_the_chance_level():
    model = tiny_image(estimator="infonce")
    model.gather = RankGather()
    model.gather.world = 2
    assert model.chance_loss(8, 9) == pytest.approx(math.log(15 * 9 + 1))


# refusals and the real `seqcpc pretrain`

IMAGE_RUN = ["model.size=image_small", "model.encoder.dim=32", "model.patches.widths=[8,16]", "objective.name=dim",
             "objective.hidden=64", "objective.projection=32", "data.batch_size=16", "optim.lr=2e-3",
             "optim.warmup_steps=5", "train.log_every=5", "train.val_every=1000", "train.val_batches=2",
             "train.deterministic=true"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_image_store(tmp_path_factory.mktemp("dim") / "stripes")


@pytest.mark.parametrize("overrides, match", [
    (["objective.estimator=mine"], "objective.estimator: 'mine' is not one of jsd, infonce"),
    (["objective.beta=0"], "has no loss"),
    (["objective.alpha=1", "objective.cells=4"], r"objective\.cells=4 .*set objective\.cells <= 3"),
    (["objective.cells=3"], r"objective\.cells=3 does nothing without objective\.alpha > 0"),
    (["data.batch_size=1"], "has no negatives"),
])
def test_dim_refuses_what_cannot_work_on_images(store, overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(complete_config(load_config(None, [*IMAGE_RUN, f"data.images={store}", *overrides])))


def test_dim_refuses_a_map_of_more_than_one_cell_on_sequences(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY_ANY, "objective.name=dim", "objective.alpha=1", "objective.cells=2",
                       f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and "objective.cells=2" in err and "averaged over time" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def train_losses(out):
    with open(out / "metrics.csv", newline="") as f:
        return [float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"]


def test_image_dim_learns_through_the_cli(store, tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *IMAGE_RUN, f"data.images={store}", "train.max_steps=30",
                       f"train.out_dir={tmp_path}")
    assert code == 0, err
    losses = train_losses(tmp_path)
    assert len(losses) == 6 and losses[-1] < losses[0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["chance_loss"] == pytest.approx(2 * math.log(2))
    assert summary["val_loss"] < summary["chance_loss"]
    assert type(load_model(tmp_path / "checkpoints" / "last.ckpt")) is DIM


def test_audio_dim_learns_through_the_cli(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY_ANY, "objective.name=dim", "objective.estimator=infonce",
                       "objective.hidden=64", "objective.projection=32", "train.max_steps=20", "train.val_every=1000",
                       "train.val_batches=2", "train.deterministic=true", f"train.out_dir={tmp_path}")
    assert code == 0, err
    losses = train_losses(tmp_path)
    assert len(losses) == 4 and losses[-1] < losses[0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["chance_loss"] == pytest.approx(math.log(7 * (2048 // 40) + 1))
    assert summary["val_loss"] < summary["chance_loss"]
