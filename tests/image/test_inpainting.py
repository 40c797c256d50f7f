"""Inpainting (seqcpc/image/inpainting.py): the masked L2 against a plain loop, the masks, the hole filling, the
refusals, and learning through the command line."""
import csv
import json

import numpy as np
import pytest
import torch

from conftest import cli
from seqcpc.builders import check_config, complete_config
from seqcpc.config import load_config
from seqcpc.errors import ConfigError
from seqcpc.image.encoder import PatchEncoder
from seqcpc.image.inpainting import (Inpainting, InpaintingConfig, central_mask, fill_holes, loss_weights, masked_l2,
                                     random_mask)
from seqcpc.image.store import write_dataset
from seqcpc.train.checkpoint import load_model

TINY = ["model.size=image_small", "model.encoder.dim=16", "model.patches.widths=[8,16]", "objective.name=inpainting",
        "objective.hidden=32", "data.batch_size=16", "optim.lr=3e-3", "optim.warmup_steps=5", "train.log_every=10"]


def two_colours(n: int, size: int = 20, seed: int = 0):
    """(n, size, size, 3) uint8: a left half of one random colour and a right half of another. A central hole
    takes both; its mean fill is neither, so the inpainter must learn which side of the hole gets which."""
    rng = np.random.default_rng(seed)
    left, right = rng.uniform(0, 1, (2, n, 1, 1, 3))
    image = np.where(np.arange(size)[None, None, :, None] < size // 2, left, right).repeat(size, 1)
    return (image * 255).round().astype(np.uint8)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("inpainting") / "halves"
    splits = {"train": (two_colours(256), np.zeros(256, dtype=np.int64)),
              "test": (two_colours(64, seed=1), np.zeros(64, dtype=np.int64))}
    write_dataset(root, splits, ["halves"], "tests", key="two colours")
    return root


def loop_l2(pred, target, weights):
    """The weighted mean squared error, pixel by pixel."""
    total = norm = 0.0
    B, C, H, W = target.shape
    for b in range(B):
        for i in range(H):
            for j in range(W):
                w = weights[b, 0, i, j].item()
                norm += C * w
                for c in range(C):
                    total += w * (pred[b, c, i, j].item() - target[b, c, i, j].item()) ** 2
    return total / norm


def test_masked_l2_matches_a_plain_loop_and_reads_only_the_weighted_pixels():
    pred, target = torch.rand(2, 3, 6, 7), torch.rand(2, 3, 6, 7)
    mask = random_mask(2, 6, 7, 2, 3, blocks=2)
    for weights in (mask.float(), loss_weights(mask, 1, 10.0)):
        loss = masked_l2(pred, target, weights)
        assert loss.item() == pytest.approx(loop_l2(pred, target, weights), rel=1e-5)
        scored = (weights > 0).expand_as(pred)
        elsewhere = torch.where(scored, pred, pred + 100 * torch.randn_like(pred))  # unscored predictions changed
        assert torch.equal(masked_l2(elsewhere, target, weights), loss)
        inside = torch.where(scored, pred + 0.5, pred)
        assert masked_l2(inside, target, weights) != loss


def test_central_and_random_masks_have_their_size_and_place():
    mask = central_mask(3, 10, 12, 4, 6)
    assert mask.shape == (3, 1, 10, 12) and mask.sum((1, 2, 3)).tolist() == [24] * 3
    assert mask[0, 0, 3:7, 3:9].all()  # rows 3-6 and columns 3-8: the middle of the 10 x 12 image
    torch.manual_seed(0)
    one = random_mask(200, 10, 12, 4, 6, blocks=1)
    assert (one.sum((1, 2, 3)) == 24).all()
    for m in one[:, 0]:  # one 4 x 6 rectangle, wholly inside the image
        rows, cols = m.any(1).nonzero().flatten(), m.any(0).nonzero().flatten()
        assert len(rows) == 4 and len(cols) == 6 and m[rows[0]: rows[-1] + 1, cols[0]: cols[-1] + 1].all()
    corners = {(m.any(1).nonzero()[0].item(), m.any(0).nonzero()[0].item()) for m in one[:, 0]}
    assert len(corners) > 20 and {r for r, _ in corners} == set(range(7))  # every top row of 0..H-h drawn
    many = random_mask(200, 10, 12, 4, 6, blocks=3).sum((1, 2, 3))
    assert (many >= 24).all() and (many <= 72).all() and (many > 24).any()


def test_the_overlap_band_weighs_the_visible_pixels_around_a_hole():
    mask = central_mask(1, 9, 9, 3, 3)  # rows and columns 3-5
    weights = loss_weights(mask, 1, 10.0)[0, 0]
    assert (weights[3:6, 3:6] == 1).all() and (weights[2:7, 2:7].sum() - 9) == 10 * 16
    assert weights.sum() == 9 + 160  # nothing further out
    assert torch.equal(loss_weights(mask, 0, 10.0), mask.float())


def test_the_encoder_never_sees_the_hidden_pixels():
    x = torch.rand(2, 3, 8, 8)
    mask = central_mask(2, 8, 8, 4, 4)
    other = torch.where(mask, torch.rand_like(x), x)
    filled = fill_holes(x, mask)
    assert torch.equal(filled, fill_holes(other, mask))
    visible_mean = x[0, :, ~mask[0, 0]].mean(1)  # (C,)
    assert torch.allclose(filled[0, :, 4, 4], visible_mean)


def test_embed_gives_the_unmasked_latent_grid_and_training_starts_from_the_fill():
    model = Inpainting(PatchEncoder(3, 16, [8, 16]), 8, 4, 3, InpaintingConfig(mask="random", blocks=2, size=0.3,
                                                                             overlap=1, hidden=16))
    x = torch.rand(4, 3, 20, 24)
    z, c = model.embed(x)
    assert z.shape == (4, 4, 5, 16) and c is z
    assert torch.isnan(torch.tensor(model.chance_loss(4, 20)))
    loss, metrics = model.train()(x)
    loss.backward()
    assert set(metrics) == {"hole_mse"} and all(p.grad is not None for p in model.parameters())
    assert loss.item() == pytest.approx(model.chance_loss(4, 20))  # an untrained decoder adds nothing to the fill


def test_a_block_larger_than_the_image_or_without_context_is_refused(store, tmp_path, capsys):
    def check(*overrides):
        return check_config(complete_config(load_config(None, [*TINY, f"data.images={store}", *overrides])))

    check("objective.size=0.5")
    check("objective.size=19", "objective.mask=random", "objective.blocks=3")
    with pytest.raises(ConfigError, match=r"objective.size=24 gives a 24x24 px block, larger than the 20x20"):
        check("objective.size=24")
    with pytest.raises(ConfigError, match="hides the whole 20x20 image, leaving no context"):
        check("objective.size=20")
    with pytest.raises(ConfigError, match="whole number"):
        check("objective.size=4.5")
    with pytest.raises(ConfigError, match="objective.blocks=2 does nothing without objective.mask=random"):
        check("objective.blocks=2")
    code, _, err = cli(capsys, "pretrain", *TINY, "objective.size=24", f"data.images={store}",
                       f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and "larger than the 20x20 images" in err and not (tmp_path / "run" / "checkpoints").exists()


def test_inpainting_lowers_its_loss_through_the_command_line(store, tmp_path, capsys):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", *TINY, f"data.images={store}", f"train.out_dir={out}",
                       "train.max_steps=100", "train.val_every=100")
    assert code == 0, err
    with open(out / "metrics.csv") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]
    summary = json.loads((out / "summary.json").read_text())
    assert losses[-1] < 0.75 * losses[0], losses
    assert summary["val_loss"] < 0.8 * summary["chance_loss"], summary  # well below the fill alone
    model = load_model(out / "checkpoints" / "last.ckpt")  # rebuilt from its folder, its plateau kept
    assert model.chance_loss(16, 25) == pytest.approx(summary["chance_loss"])
    z, c = model.embed(torch.rand(2, 3, 20, 20))
    assert z.shape == (2, 4, 4, 16) and c is z
