"""`seqcpc extract --features z,c,c1,c2`: context layers through the command line."""
import re

import numpy as np
import pytest
import torch

from conftest import ROOT, cli
from layer_fixtures import save_layered_checkpoint


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "last.ckpt"
    cfg, model = save_layered_checkpoint(path)
    (tmp_path / "seqs").mkdir()
    x = np.random.default_rng(0).standard_normal(3000).astype(np.float32)
    np.save(tmp_path / "seqs" / "a.npy", x)
    return model, path, torch.from_numpy(x)[None, None]


def test_extract_writes_each_context_layer_it_is_asked_for(saved, tmp_path, capsys):
    model, path, x = saved
    code, out, err = cli(capsys, "extract", "--checkpoint", path, "--out", tmp_path / "f", "--npy-dir",
                         tmp_path / "seqs", "--features", "z, c1,c2,c,c1")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "f").iterdir()) == ["a.c.npy", "a.c1.npy", "a.c2.npy", "a.z.npy"]
    z, c1, c2 = (s[0].numpy() for s in model.hidden_states(x))
    feats = {w: np.load(tmp_path / "f" / f"a.{w}.npy") for w in ("z", "c1", "c2", "c")}
    for w, want in (("z", z), ("c1", c1), ("c2", c2), ("c", c2)):
        np.testing.assert_allclose(feats[w], want, rtol=1e-5, atol=1e-6)
    assert not np.allclose(feats["c1"], feats["c2"])


def test_extract_of_a_split_stacks_a_layer_like_z_and_c(saved, tmp_path, capsys):
    model, path, _ = saved
    code, _, err = cli(capsys, "extract", "--checkpoint", path, "--out", tmp_path / "f", "--features", "c1",
                       "--batch-size", "32")
    assert code == 0, err
    c1 = np.load(tmp_path / "f" / "c1.npy")
    assert c1.ndim == 3 and c1.shape[-1] == 16 and (tmp_path / "f" / "groups.npy").exists()
    assert not (tmp_path / "f" / "c.npy").exists()


@pytest.mark.parametrize("features, message", [
    ("z,c3", "--features c3: .* has 2 context layer\\(s\\), c1 to c2; choose among z, c, c1, c2"),
    ("c0", "'c0' is not a feature name; give a comma-separated list of z \\(encoder output\\)"),
    ("z,layer2", "'layer2' is not a feature name"),
])
def test_extract_refuses_layers_the_model_does_not_have(saved, tmp_path, capsys, features, message):
    _, path, _ = saved
    code, _, err = cli(capsys, "extract", "--checkpoint", path, "--out", tmp_path / "f", "--npy-dir",
                       tmp_path / "seqs", "--features", features)
    assert code == 1
    assert re.search(message, err), err
    assert not (tmp_path / "f").exists()


def test_extract_refuses_context_layers_of_an_image_model(tmp_path, capsys):
    image_ckpt = ROOT / "tests" / "fixtures" / "legacy_v1" / "image.ckpt"
    code, _, err = cli(capsys, "extract", "--checkpoint", image_ckpt, "--out", tmp_path / "f", "--features", "c1")
    assert code == 1 and "image" in err and "gives only z and c" in err
