"""Colourisation (seqcpc/image/colourise.py): its ab bins, targets and rebalancing weights against plain loops,
its loss, its features, training through the command line on colour images, and its refusals."""
import itertools
import json
import math

import numpy as np
import pytest
import torch

from conftest import cli
from image_fixtures import toy_colour_store, toy_image_store
from seqcpc.builders import build_model, check_config, complete_config
from seqcpc.config import load_config
from seqcpc.errors import ConfigError
from seqcpc.image.colourise import (Colourise, ColouriseConfig, gamut_bins, nearest_bins, rebalancing_weights,
                                    soft_targets)
from seqcpc.image.augment import PatchAugment
from seqcpc.image.encoder import PatchEncoder
from seqcpc.image.lab import rgb_to_lab
from seqcpc.image.patches import patchify

IMAGE = ["model.size=image_small", "model.encoder.dim=16", "model.patches.widths=[8,16]",
         "objective.name=colourise", "objective.hidden=64", "data.batch_size=16", "optim.lr=3e-3",
         "optim.warmup_steps=5", "train.log_every=10"]


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    return toy_colour_store(tmp_path_factory.mktemp("colourise") / "shapes", n_train=64, n_test=16)


def test_the_bins_are_the_grid_squares_that_srgb_colours_reach():
    levels = 12
    reached = set()
    for r, g, b in itertools.product(np.linspace(0, 1, levels), repeat=3):
        _, a, bb = rgb_to_lab(torch.tensor([r, g, b], dtype=torch.float64)[:, None, None])[:, 0, 0].tolist()
        reached.add((round(a / 10) * 10, round(bb / 10) * 10))
    assert [tuple(c) for c in gamut_bins(10.0, levels).tolist()] == sorted(reached)
    bins = gamut_bins(10.0)
    assert len(bins) == 261 and [0, 0] in bins.tolist()  # the paper's grid of 10: 313 in its gamut


def test_targets_are_the_nearest_bin_or_gaussian_weights_on_the_nearest_bins():
    centres = gamut_bins(10.0)
    ab = torch.tensor([[3.0, -4.0], [41.0, 13.5], [-27.0, 52.0]])  # no ties among the 6 nearest centres
    expected = [min(range(len(centres)), key=lambda q: float(((p - centres[q]) ** 2).sum())) for p in ab]
    assert nearest_bins(ab, centres).tolist() == expected
    soft = soft_targets(ab, centres, 5, 5.0)
    for point, row in zip(ab, soft):
        near = sorted(range(len(centres)), key=lambda q: float(((point - centres[q]) ** 2).sum()))[:5]
        weights = [math.exp(-float(((point - centres[q]) ** 2).sum()) / (2 * 5.0 ** 2)) for q in near]
        assert row[near].tolist() == pytest.approx([w / sum(weights) for w in weights], rel=1e-4, abs=1e-7)
        assert (row > 0).sum() <= 5 and row.sum().item() == pytest.approx(1)


def test_rebalancing_weights_follow_the_papers_formula_in_a_plain_loop():
    centres = torch.tensor([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [50.0, 50.0]])
    counts = torch.tensor([70, 20, 10, 0])
    sigma, mix, Q = 5.0, 0.5, 4
    p = [c / 100 for c in counts.tolist()]
    kernel = [[math.exp(-float(((centres[i] - centres[j]) ** 2).sum()) / (2 * sigma ** 2)) for j in range(Q)]
              for i in range(Q)]
    smooth = [sum(p[i] * kernel[i][j] / sum(kernel[i]) for i in range(Q)) for j in range(Q)]
    raw = [1 / ((1 - mix) * s + mix / Q) for s in smooth]
    expected = [w / sum(s * r for s, r in zip(smooth, raw)) for w in raw]
    weights = rebalancing_weights(counts, centres, sigma, mix)
    assert weights.tolist() == pytest.approx(expected, rel=1e-5)
    assert sum(s * w for s, w in zip(smooth, weights.tolist())) == pytest.approx(1)  # expected weight 1
    assert weights[3] > weights[1] > weights[0]  # rare colours weigh more
    assert torch.allclose(rebalancing_weights(torch.zeros(4, dtype=torch.long), centres, sigma, mix), torch.ones(4))
    assert torch.allclose(rebalancing_weights(counts, centres, sigma, 1.0), torch.ones(4))  # all uniform: no effect


def test_the_loss_is_each_cells_cross_entropy_weighted_by_its_bins_weight_and_counts_only_in_training():
    model = Colourise(PatchEncoder(1, 8, [8]), PatchAugment(), 4, 4, ColouriseConfig(hidden=16, cells=2))
    x = torch.rand(2, 3, 8, 8)
    loss, metrics = model.eval()(x)
    assert model.counts.sum() == 0  # validation counts nothing: uniform prior, every weight 1
    assert loss.item() == pytest.approx(metrics["ce"].item(), rel=1e-5)
    model.train()(x)
    assert model.counts.sum() == 2 * 2 * 2 * 2 * 2  # B, Gh, Gw, and 2 x 2 cells of each patch
    loss, metrics = model.train()(x)
    ab = rgb_to_lab(x)[:, 1:]  # (B, 2, 8, 8): the cells are the 2 x 2 pixel blocks
    cells = torch.nn.functional.avg_pool2d(ab, 2).permute(0, 2, 3, 1).reshape(-1, 2)  # row-major blocks
    assert sorted(nearest_bins(cells, model.centres).tolist()) == sorted(
        torch.repeat_interleave(torch.arange(len(model.centres)), model.counts // 2).tolist())
    assert model.chance_loss(2, 4) == pytest.approx(math.log(261))


def test_its_features_are_the_l_encoders_grid(colour):
    cfg = complete_config(load_config(None, [*IMAGE, f"data.images={colour}"]))
    check_config(cfg)
    model = build_model(cfg)
    assert model.encoder.body[0].in_channels == 1
    x = torch.rand(3, 3, 16, 16)
    z, c = model.embed(x)
    assert z.shape == (3, 3, 3, 16) and c is z
    light = (rgb_to_lab(x)[:, :1] / 50 - 1)  # the L channel alone, scaled as the encoder reads it
    assert torch.allclose(model.encoder(patchify(light, 8, 4)), z, atol=1e-6)


def test_it_lowers_its_loss_through_the_command_line_on_colour_images(colour, tmp_path, capsys):
    code, out, err = cli(capsys, "pretrain", *IMAGE, f"data.images={colour}", "train.max_steps=60",
                         "train.val_every=60", "train.val_batches=1", f"train.out_dir={tmp_path}")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["chance_loss"] == pytest.approx(math.log(261))
    assert summary["train_loss"] < summary["chance_loss"] - 1, summary
    assert summary["val_metrics"]["ce"] < summary["chance_loss"] - 1, summary


def test_grey_images_are_refused_before_anything_runs(tmp_path, capsys):
    grey = toy_image_store(tmp_path / "grey", 4, 2)
    code, _, err = cli(capsys, "pretrain", *IMAGE, f"data.images={grey}", f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and "grey (1 channel)" in err and not (tmp_path / "run" / "checkpoints").exists()
    assert len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("overrides, match", [
    (["objective.cells=3"], r"objective\.cells=3 must divide model\.patches\.size=8"),
    (["model.augment.colour_drop=0.5"], r"model\.augment\.colour_drop=0\.5 .* set both to 0"),
    (["objective.neighbours=3"], r"objective\.neighbours=3 does nothing without objective\.soft=true"),
])
def test_settings_it_cannot_learn_from_are_refused(colour, overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(complete_config(load_config(None, [*IMAGE, f"data.images={colour}", *overrides])))
