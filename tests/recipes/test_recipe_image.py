"""recipes/image/run.py end to end on a tiny generated image folder: every step, then every step skipped."""
import json

import numpy as np
import yaml

from conftest import ROOT, run_cli, run_recipe
from image_fixtures import toy_image_folder


def test_image_recipe_runs_end_to_end_then_skips_what_is_done(tmp_path):
    """The shipped image-folder config on an RGB folder: only paths and sizes are overridden, never the model's
    channels, which follow the prepared images."""
    toy_image_folder(tmp_path / "folder", n_per_class=60, size=20)
    shipped = yaml.safe_load((ROOT / "recipes" / "image" / "folder_cpu.yaml").read_text())
    cfg = {
        **shipped,
        "prepare": {"script": "image_folder",
                    "options": {"root": str(tmp_path / "folder"), "out": str(tmp_path / "data"), "size": 20}},
        "model": {**shipped["model"], "encoder": {"dim": 16}, "context": {"dim": 16},
                  "patches": {"widths": [8, 16], "directions": 2}},
        "data": {**shipped["data"], "images": str(tmp_path / "data"), "batch_size": 8},
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "train": {"out_dir": str(tmp_path / "run"), "max_steps": 12, "log_every": 4, "val_every": 12,
                  "val_batches": 2, "ckpt_every": 12},
        "probe": {"episodes": 30, "label_fractions": [0.2, 1.0], "supervised_max_steps": 20, "n_way": 3, "n_query": 3},
    }
    assert "in_channels" not in str(cfg["model"])
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = run_recipe("image", config)
    assert "== data" in out and "== pretraining" in out and "== probes" in out
    assert yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())["model"]["encoder"]["in_channels"] == 3
    results = json.loads((tmp_path / "run" / "probes" / "results.json").read_text())
    chance = 1 / 3
    for name in ("cpc", "random_init", "pixels"):
        assert set(results["linear"][name]) == {"0.2", "1.0"}
    assert results["linear"]["cpc"]["1.0"] > chance + 0.2  # stripes in three orientations: easy for any feature
    assert results["few_shot"]["cpc"]["3way_1shot"]["mean"] > chance + 0.1
    assert "5-shot skipped: fewer than probe.n_way=3 classes" in out  # ~11 test images a class: too few
    assert results["supervised"]["1.0"]["steps"] == 20
    for name in ("curves.png", "probes/label_efficiency.png", "probes/few_shot.png", "probes/confusion.png"):
        assert (tmp_path / "run" / name).is_file(), name

    run_cli("extract", "--checkpoint", tmp_path / "run" / "checkpoints" / "last.ckpt", "--out", tmp_path / "feats")
    z = np.load(tmp_path / "feats" / "z.npy")  # the test split's latent grids: 20 px images, 8 px patches every 4
    assert z.shape == (results["counts"]["test"], 4, 4, 16)

    again = run_recipe("image", config)
    assert "up to date" in again and "pretraining: done before" in again and "probes: done before" in again
