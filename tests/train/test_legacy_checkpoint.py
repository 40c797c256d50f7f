"""Checkpoints written before the architecture change (format 1: one config with every modality's fields) and before
objectives had their own config section (format 3) still
load and give the features they gave then (tests/fixtures/legacy_v1, written by make_legacy.py at that commit)."""
from pathlib import Path

import numpy as np
import pytest
import torch

from seqcpc.train.checkpoint import checkpoint_config, load_model, read_checkpoint

LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "legacy_v1"


@pytest.mark.parametrize("name, modality", [("audio", "audio"), ("image", "image")])
def test_a_format_1_checkpoint_loads_and_gives_the_same_features(name, modality):
    ckpt = read_checkpoint(LEGACY / f"{name}.ckpt")
    assert "format" not in ckpt and "patches" in ckpt["config"]["model"]  # really the old layout
    cfg = checkpoint_config(ckpt)
    assert cfg.model.modality == modality
    model = load_model(LEGACY / f"{name}.ckpt")
    x = torch.from_numpy(np.load(LEGACY / f"{name}_x.npy"))
    z, c = model.embed(x)
    torch.testing.assert_close(z, torch.from_numpy(np.load(LEGACY / f"{name}_z.npy")), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c, torch.from_numpy(np.load(LEGACY / f"{name}_c.npy")), rtol=1e-5, atol=1e-6)


FORMAT3 = Path(__file__).resolve().parents[1] / "fixtures" / "format3"
# what each format-3 checkpoint's model section held -> where the migration must put it
MOVED = {
    "cpc_probes": ("cpc", {"predictor.steps": 3, "loss.num_negatives": 8, "online_probe": True, "classes": 3,
                           "pruned_competitor": True, "prune_ratio": 0.5}),
    "simclr": ("simclr", {"views.length": 768, "views.noise_prob": 0.5, "hidden": 16, "projection": 8,
                          "temperature": 0.3}),
    "supervised": ("supervised", {"classes": 4}),
    "protonet": ("protonet", {"n_way": 3, "pool": 2}),
    "jigsaw": ("jigsaw", {"cells": 2, "permutations": 6, "hidden": 16}),
}


def dotted(section, key: str):
    for name in key.split("."):
        section = getattr(section, name)
    return section


@pytest.mark.parametrize("name", list(MOVED))
def test_a_format_3_checkpoint_moves_its_objective_options_and_gives_the_same_features(name):
    """Format 3 (tests/fixtures/format3, written by make_format3.py at commit 8ba9440) kept the objective and its
    options in the model section; they are moved to the objective section, the other objectives' options dropped."""
    ckpt = read_checkpoint(FORMAT3 / f"{name}.ckpt")
    assert ckpt["format"] == 3 and "objective" in ckpt["config"]["model"]  # really the old layout
    cfg = checkpoint_config(ckpt)
    objective, moved = MOVED[name]
    assert cfg.objective.name == objective
    assert {key: dotted(cfg.objective, key) for key in moved} == moved
    model = load_model(FORMAT3 / f"{name}.ckpt")
    x = torch.from_numpy(np.load(FORMAT3 / f"{name}_x.npy"))
    z, c = (model.embed(x),) * 2 if name == "protonet" else model.embed(x)  # a learner's features: (B, F)
    torch.testing.assert_close(z, torch.from_numpy(np.load(FORMAT3 / f"{name}_z.npy")), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(c, torch.from_numpy(np.load(FORMAT3 / f"{name}_c.npy")), rtol=1e-5, atol=1e-6)
