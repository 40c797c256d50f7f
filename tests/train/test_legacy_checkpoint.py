"""Checkpoints written before the architecture change (format 1: one config with every modality's fields) still
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
