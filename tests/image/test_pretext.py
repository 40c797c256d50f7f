"""Pretext-task baselines (seqcpc/image/pretext.py): rotation and jigsaw on the patch encoder, their labels, the
jigsaw's permutation set, the config check, and learning through the training loop."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from conftest import cli
from seqcpc.config import load_config
from seqcpc.errors import ConfigError
from seqcpc.image.augment import PatchAugment
from seqcpc.builders import check_config, complete_config
from seqcpc.image.encoder import PatchEncoder
from seqcpc.image.pretext import JigsawPretext, RotationPretext, permutation_set, quarter_turns
from seqcpc.image.store import write_dataset
from seqcpc.train.loop import pretrain

TINY = ["model.size=image_small", "model.encoder.dim=16", "model.patches.widths=[8,16]", "model.augment.flip=false",
        "objective.hidden=64", "data.batch_size=32", "optim.lr=3e-3",
        "optim.warmup_steps=10", "train.log_every=50"]


def tiny_encoder(channels=1):
    return PatchEncoder(channels, 16, [8, 16])


def lit_discs(n: int, size: int = 28, seed: int = 0):
    """(n, size, size, 1) uint8: a bright disc on a background lit from above, both jittered, with noise. The light
    says which way is up (rotation); the disc's rim says which part of the image a tile comes from (jigsaw)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / (size - 1)
    images = []
    for _ in range(n):
        (cy, cx), radius = rng.uniform(0.42, 0.58, 2), rng.uniform(0.3, 0.38)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < radius ** 2
        img = 0.1 + 0.5 * disc + rng.uniform(0.2, 0.35) * (1 - yy) + rng.normal(0, 0.04, (size, size))
        images.append(np.clip(img * 255, 0, 255).astype(np.uint8)[..., None])
    return np.stack(images)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("pretext") / "discs"
    splits = {"train": (lit_discs(256, seed=0), np.zeros(256, dtype=np.int64)),
              "test": (lit_discs(64, seed=1), np.zeros(64, dtype=np.int64))}
    write_dataset(root, splits, ["disc"], "tests", key="lit discs")
    return root


@pytest.mark.parametrize("task", ["rotation", "jigsaw"])
def test_untrained_loss_is_near_chance_and_embed_gives_the_latent_grid(task):
    augment = PatchAugment(jitter=1, flip=True)
    if task == "rotation":
        model, classes = RotationPretext(tiny_encoder(), augment, 8, 4, pool=3, hidden=64), 4
    else:
        model, classes = JigsawPretext(tiny_encoder(), augment, 8, 4, cells=3, permutations=10, hidden=64), 10
    x = torch.rand(32, 1, 28, 32)  # not square: the task sees the centre 28x28
    for train in (True, False):
        loss, metrics = model.train(train)(x)
        assert abs(loss.item() - math.log(classes)) < 0.15 * math.log(classes), (train, loss.item())
        assert set(metrics) == {"acc"} and metrics["acc"].dim() == 0 and 0 <= metrics["acc"] <= 1
    assert model.chance_loss(32, 36) == pytest.approx(math.log(classes))
    z, c = model.embed(x)
    assert z.shape == (32, 6, 7, 16) and c is z  # the whole image's grid; no context network
    assert all(name.startswith(("encoder.", "to_logits.")) for name, _ in model.named_parameters())


def test_permutation_set_is_distinct_deterministic_and_spread_out():
    perms = permutation_set(100, 9, seed=3)
    assert perms.dtype == torch.long and perms.shape == (100, 9)
    assert (perms.sort(1).values == torch.arange(9)).all()  # each a permutation of range(9)
    assert len({tuple(p) for p in perms.tolist()}) == 100
    assert torch.equal(perms, permutation_set(100, 9, seed=3)) and not torch.equal(perms, permutation_set(100, 9))

    def min_hamming(p):
        distance = (p[:, None] != p[None]).sum(-1)  # (n, n)
        return distance[~torch.eye(len(p), dtype=torch.bool)].min().item()

    random = torch.stack([torch.randperm(9, generator=torch.Generator().manual_seed(i)) for i in range(100)])
    assert min_hamming(perms) > min_hamming(random)
    sampled = permutation_set(30, 16)  # beyond 9 items the candidates are sampled
    assert (sampled.sort(1).values == torch.arange(16)).all() and len({tuple(p) for p in sampled.tolist()}) == 30
    with pytest.raises(ValueError):
        permutation_set(7, 3)  # 3! = 6


def test_the_jigsaw_check_refuses_tiles_without_room_for_a_patch_and_too_many_permutations(store):
    def check(*overrides):
        return check_config(complete_config(load_config(None, [*TINY, f"data.images={store}", *overrides])))

    check("objective.name=jigsaw")  # 8 px patches, 3 x 3 cells: 9 px cells of the 28x28 images
    with pytest.raises(ConfigError, match=r"objective\.cells=4 .*7 px cells.*model\.patches\.size=8"):
        check("objective.name=jigsaw", "objective.cells=4")
    with pytest.raises(ConfigError, match=r"objective\.permutations=25 .* 24 orders"):
        check("objective.name=jigsaw", "objective.cells=2", "objective.permutations=25")
    with pytest.raises(ConfigError, match="'objective.cells' applies only to objective.name=jigsaw"):
        check("objective.name=rotation", "objective.cells=4")


def test_a_jigsaw_that_cannot_be_cut_is_refused_before_training(store, tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY, "objective.name=jigsaw", "objective.cells=4",
                       f"data.images={store}", f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and "objective.cells=4" in err and not (tmp_path / "run" / "checkpoints").exists()


class MeanPixel(nn.Module):
    """A stand-in encoder: each patch's mean pixel, (B, Gh, Gw, C, p, p) -> (B, Gh, Gw, 1)."""

    def forward(self, patches):
        return patches.mean(dim=(3, 4, 5))[..., None]


class Scaled(nn.Module):
    """A stand-in head: logits that are a fixed function of the features, scaled up to be sure."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, features):
        return 100 * self.fn(features)


def test_quarter_turns_label_each_image_with_its_rotation():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 0, 1] = 1  # a mark in the top row, one pixel from the left
    rotated, turns = quarter_turns(x)
    assert set(turns.tolist()) == {0, 1, 2, 3}
    where = {0: (0, 1), 1: (6, 0), 2: (7, 6), 3: (1, 7)}  # counter-clockwise quarter turns as displayed
    for image, r in zip(rotated, turns.tolist()):
        assert image[0, where[r][0], where[r][1]] == 1 and image.sum() == 1, r


def test_rotation_model_scores_the_rotation_it_applied():
    """The top-left quadrant is lit; a head that reads off where it went must be right every time."""
    model = RotationPretext(tiny_encoder(), PatchAugment(), 4, 4, pool=2, hidden=8).train()
    model.encoder = MeanPixel()
    quadrant = {0: 0, 1: 2, 2: 3, 3: 1}  # turns -> the lit quadrant (top-left, top-right, bottom-left, bottom-right)
    model.to_logits = Scaled(lambda q: q[:, [quadrant[r] for r in range(4)]])  # pooled (B, 4) -> (B, 4)
    x = torch.zeros(64, 1, 16, 20)
    x[:, :, :8, 2:10] = 1  # the top-left quadrant of the centre square
    loss, metrics = model(x)
    assert metrics["acc"] == 1 and loss < 1e-3


def test_jigsaw_model_scores_the_shuffle_it_applied():
    """Each cell holds its own index; a head that matches the tiles' order to the set must be right every time."""
    model = JigsawPretext(tiny_encoder(), PatchAugment(), 5, 5, cells=3, permutations=20, hidden=8).train()
    model.encoder = MeanPixel()
    model.to_logits = Scaled(lambda order: -(order[:, None] != model.permutations[None]).sum(-1).float())
    cells = torch.arange(9.0).reshape(3, 3).repeat_interleave(9, 0).repeat_interleave(9, 1)  # (27, 27)
    x = torch.zeros(64, 1, 27, 31)
    x[:, 0, :, 2:29] = cells
    loss, metrics = model(x)
    assert metrics["acc"] == 1 and loss < 1e-3


@pytest.mark.parametrize("task, steps, chance, extra", [("rotation", 120, 1 / 4, []),
                                                       ("jigsaw", 150, 1 / 10, ["objective.permutations=10"])])
def test_each_task_learns_well_above_chance_through_the_loop(store, tmp_path, task, steps, chance, extra):
    summary = pretrain(load_config(None, [*TINY, f"objective.name={task}", *extra, f"data.images={store}",
                                          f"train.out_dir={tmp_path / task}", f"train.max_steps={steps}",
                                          f"train.val_every={steps}"]))
    assert summary["chance_loss"] == pytest.approx(-math.log(chance))
    assert summary["val_loss"] < summary["chance_loss"] - 0.5, summary
    assert summary["val_metrics"]["acc"] > chance + 0.4, summary
