"""AMDIM (seqcpc/image/amdim.py): the regularised NCE against a plain loop, the scales of the patch grid, the whole
loss over pairs and both directions against a loop over replayed views, the refusal of scales the grid does not
give, and a tiny run of the real `seqcpc pretrain`."""
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
from seqcpc.errors import ConfigError
from seqcpc.image.amdim import AMDIM, cells, regularised_nce
from seqcpc.objectives.infomax import pair_scores


def regularised_nce_loop(queries, keys, clip, penalty):
    """Every (image b, antecedent m, consequent n): -log softmax of the clipped positive among it and every
    clipped score of b's antecedent m against the other images' consequents; plus penalty * mean raw score^2.
    Returns (loss, acc)."""
    B, M, _ = queries.shape
    raw = [[[[queries[b, m] @ keys[c, n] for n in range(keys.shape[1])] for c in range(B)] for m in range(M)]
           for b in range(B)]
    terms, hits, squares = [], [], []
    for b in range(B):
        for m in range(M):
            clipped = [[clip * math.tanh(float(s) / clip) for s in row] for row in raw[b][m]]
            negatives = [s for c in range(B) if c != b for s in clipped[c]]
            for n in range(keys.shape[1]):
                candidates = torch.tensor([clipped[b][n], *negatives])
                terms.append(-F.log_softmax(candidates, 0)[0])
                hits.append(float(clipped[b][n] > max(negatives)))
            squares += [float(s) ** 2 for row in raw[b][m] for s in row]
    return sum(terms) / len(terms) + penalty * sum(squares) / len(squares), sum(hits) / len(hits)


@pytest.mark.parametrize("M, N", [(1, 4), (4, 4), (1, 1)])
def test_regularised_nce_equals_the_loop(M, N):
    queries, keys = 3 * torch.randn(4, M, 5), 3 * torch.randn(4, N, 5)  # scores of tens: the clip bends them
    loss, acc = regularised_nce(pair_scores(queries, keys), torch.arange(4), 20.0, 0.04)
    ref_loss, ref_acc = regularised_nce_loop(queries, keys, 20.0, 0.04)
    assert loss.item() == pytest.approx(float(ref_loss), rel=1e-5)
    assert acc.item() == pytest.approx(ref_acc)


def test_the_clip_bounds_the_scores_and_the_penalty_pulls_them_in():
    queries, keys = 100 * torch.randn(4, 1, 5), 100 * torch.randn(4, 1, 5)
    scores = pair_scores(queries, keys)
    loss, _ = regularised_nce(scores, torch.arange(4), 20.0, 0.0)
    assert loss.item() <= math.log(1 + 3 * math.exp(40)) + 1e-3  # clipped to (-20, 20): at most 40 apart
    with_penalty, _ = regularised_nce(scores, torch.arange(4), 20.0, 0.04)
    assert (with_penalty - loss).item() == pytest.approx(0.04 * scores.pow(2).mean().item(), rel=1e-5)


def test_a_scale_is_the_grid_averaged_into_s_by_s_cells():
    z = torch.randn(2, 6, 6, 3)
    assert torch.equal(cells(z, 6), z.reshape(2, 36, 3))
    torch.testing.assert_close(cells(z, 1)[:, 0], z.mean(dim=(1, 2)))
    three = cells(z, 3)  # (2, 9, 3): 2x2 blocks, row by row
    torch.testing.assert_close(three[:, 5], z[:, 2:4, 4:6].mean(dim=(1, 2)))


def tiny(pairs, **options):
    return build_model(resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16},
                                          "patches": {"widths": [8, 16]}},
                                "objective": {"name": "amdim", "hidden": 32, "projection": 16, "pairs": pairs,
                                              **options}}))


def test_the_loss_is_the_mean_over_pairs_and_directions_of_the_loop():
    model = tiny([[1, 3], [2, 2]], clip=5.0, penalty=0.1).train()
    x = torch.rand(4, 1, 16, 16)
    torch.manual_seed(3)  # replay the forward's draws: view 1, then view 2
    with torch.no_grad():
        one, two = model.embeddings(x), model.embeddings(x)
    scale = 1 / math.sqrt(16)
    expected, accs = [], {}
    for a, b in ([1, 3], [2, 2]):
        both = [regularised_nce_loop(scale * src[a], trg[b], 5.0, 0.1) for src, trg in ((one, two), (two, one))]
        expected += [loss for loss, _ in both]
        accs[f"acc/{a}-{b}"] = sum(acc for _, acc in both) / 2
    torch.manual_seed(3)
    loss, metrics = model(x)
    assert loss.item() == pytest.approx(float(sum(expected) / 4), rel=1e-5)
    assert set(metrics) == {"acc", "acc/1-3", "acc/2-2"}
    for name, acc in accs.items():
        assert metrics[name].item() == pytest.approx(acc)
    assert one[1].shape == (4, 1, 16) and one[3].shape == (4, 9, 16) and sorted(model.to_embedding) == ["1", "2", "3"]


def test_amdim_trains_the_encoder_and_embeds_the_latent_grid():
    model = tiny([[1, 3], [3, 3]])
    assert type(model) is AMDIM
    loss, _ = model(torch.rand(8, 1, 16, 16))
    assert loss.item() == pytest.approx(model.chance_loss(8, 9), rel=0.1)  # untrained: near chance
    assert model.chance_loss(8, 9) == pytest.approx(math.log(7 * 9 + 1))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert model.eval().views.training  # views are drawn in validation too
    z, c = model.embed(torch.rand(2, 1, 16, 16))
    assert z.shape == (2, 3, 3, 16) and c is z


# refusals and the real `seqcpc pretrain`

IMAGE_RUN = ["model.size=image_small", "model.encoder.dim=32", "model.patches.widths=[8,16]", "objective.name=amdim",
             "objective.pairs=[[1,3],[1,2],[2,2]]", "objective.hidden=64", "objective.projection=32",
             "data.batch_size=16", "optim.lr=2e-3", "optim.warmup_steps=5", "train.log_every=5",
             "train.val_every=1000", "train.val_batches=2", "train.deterministic=true"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_image_store(tmp_path_factory.mktemp("amdim") / "stripes")


@pytest.mark.parametrize("overrides, match", [
    (["objective.pairs=[[1,5],[1,7],[5,5]]"], r"scale\(s\) \[5, 7\] are not produced: the 16x16 images give a 3x3 "
                                              r"patch grid .*scales are 1 \(the global vector\) to 3"),
    (["objective.pairs=[[0,3]]"], r"scale\(s\) \[0\] are not produced"),
    (["objective.pairs=[[1,2,3]]"], r"\[antecedent scale, consequent scale\] pairs"),
    (["objective.pairs=[]"], r"\[antecedent scale, consequent scale\] pairs"),
    (["data.batch_size=1"], "has no negatives"),
])
def test_amdim_refuses_what_the_grid_cannot_give(store, overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(complete_config(load_config(None, [*IMAGE_RUN, f"data.images={store}", *overrides])))


def test_a_scale_the_grid_does_not_give_is_refused_before_training(store, tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *IMAGE_RUN, "objective.pairs=[[1,4]]", f"data.images={store}",
                       f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and "scale(s) [4] are not produced" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_amdim_is_refused_on_audio(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY_ANY, "objective.name=amdim", f"train.out_dir={tmp_path}")
    assert code == 1 and "objective.name=amdim does not work on audio data" in err


def test_amdim_learns_through_the_cli(store, tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *IMAGE_RUN, f"data.images={store}", "train.max_steps=30",
                       f"train.out_dir={tmp_path}")
    assert code == 0, err
    with open(tmp_path / "metrics.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"]
    assert len(losses) == 6 and losses[-1] < losses[0]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["chance_loss"] == pytest.approx((math.log(15 * 9 + 1) + 2 * math.log(15 * 4 + 1)) / 3)
    assert summary["val_loss"] < summary["chance_loss"]
