"""recipes/image/table.py end to end on a tiny generated image folder: CPC, rotation and jigsaw over two seeds,
the supervised budget chosen by the first seed and trained by the second, the summary with mean ± std, then
every step skipped; a seed whose probes were lost and a row added later reuse the cached features."""
import json
import shutil

import yaml

from conftest import run_script
from image_fixtures import toy_image_folder


def test_image_table_runs_every_seed_and_run_then_skips_what_is_done(tmp_path):
    toy_image_folder(tmp_path / "folder", n_per_class=40, size=28)
    pretrain = {
        "prepare": {"script": "image_folder",
                    "options": {"root": str(tmp_path / "folder"), "out": str(tmp_path / "data"), "size": 28}},
        "model": {"size": "image_small", "encoder": {"dim": 16}, "context": {"dim": 16},
                  "patches": {"widths": [8, 16]}},
        "data": {"kind": "images", "images": str(tmp_path / "data"), "batch_size": 8},
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "train": {"max_steps": 6, "log_every": 3, "val_every": 6, "val_batches": 1, "ckpt_every": 6},
        "probe": {"episodes": 10, "label_fractions": [0.5, 1.0], "supervised_max_steps": 6, "n_way": 3,
                  "n_query": 3, "shots": [1], "supervised_val_images": 12, "supervised_checks": 1},
    }
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(pretrain))
    table = {"pretrain": str(tmp_path / "pretrain.yaml"), "out_dir": str(tmp_path / "table"), "seeds": [0, 1],
             "supervised_full_seeds": [0],
             "runs": {"cpc": [], "rotation": ["objective.name=rotation", "objective.hidden=16"],
                      "jigsaw": ["objective.name=jigsaw", "model.augment.flip=false", "objective.permutations=6",
                                 "objective.hidden=16"]}}
    config = tmp_path / "table.yaml"
    config.write_text(yaml.safe_dump(table))

    run_script("recipes/image/table.py", config)
    for seed in (0, 1):
        for run in ("cpc", "rotation", "jigsaw"):
            summary = json.loads((tmp_path / "table" / f"seed{seed}" / run / "summary.json").read_text())
            assert summary["step"] == 6
            saved = yaml.safe_load((tmp_path / "table" / f"seed{seed}" / run / "config.yaml").read_text())
            assert saved["train"]["seed"] == seed and saved["objective"]["name"] == run
    probes = [tmp_path / "table" / f"seed{seed}" / "probes" for seed in (0, 1)]
    chosen = json.loads((probes[0] / "supervised_0.5.json").read_text())
    trained = json.loads((probes[1] / "supervised_0.5.json").read_text())
    assert chosen["selected"] and not trained["selected"] and trained["budget"] == chosen["budget"]
    schedule = json.loads((tmp_path / "table" / "supervised_schedule.json").read_text())
    assert {entry["seed"] for entry in schedule.values()} == {0} and set(schedule) == {"0.5", "1"}
    assert (tmp_path / "table" / "supervised_schedule.png").is_file()
    assert (probes[0] / "supervised_1.json").is_file() and not (probes[1] / "supervised_1.json").exists()
    results = json.loads((tmp_path / "table" / "results.json").read_text())
    assert results["seeds"] == [0, 1]
    assert set(results["linear"]) == {"cpc", "rotation", "jigsaw", "random_init", "pixels"}
    assert all(r["n"] == 2 for accs in results["linear"].values() for r in accs.values())
    first_cpc = results["linear"]["cpc"]
    assert results["supervised"]["1.0"]["n"] == 1 and results["supervised"]["0.5"]["n"] == 2
    md = (tmp_path / "table" / "results.md").read_text()
    assert "mean ± std over 2 seed(s)" in md and "| linear on jigsaw |" in md and "supervised from scratch" in md
    assert "(1 of 2 seeds)" in md and "probes per seed" in md
    assert (tmp_path / "table" / "label_efficiency.png").is_file()
    cached = sorted((tmp_path / "table" / "features").glob("*.npy"))
    assert len(cached) == 2 * 4 * 2  # seeds x models (3 runs and random weights) x splits

    again = run_script("recipes/image/table.py", config)
    assert "seed 0: done before" in again and "seed 1: done before" in again and "== pretraining" not in again
    assert json.loads((tmp_path / "table" / "results.json").read_text())["linear"] == results["linear"]

    # a seed whose probes were lost (killed) is probed again from its finished runs, which are not retrained, and
    # from its cached features; a row added later is pretrained and probed for every seed, the others' features,
    # seed 0's supervised baselines and the schedule read back
    shutil.rmtree(probes[1])
    table["runs"]["cpc_b"] = ["objective.predictor.scale=0.5"]
    config.write_text(yaml.safe_dump(table))
    third = run_script("recipes/image/table.py", config)
    assert "seed 0: probes" in third and "seed 1: probes" in third and "== pretraining: done before" in third
    assert "cpc train: features read from" in third and "cpc_b train: embedded" in third
    assert "choosing the budget" not in third
    assert len(list((tmp_path / "table" / "features").glob("*.npy"))) == len(cached) + 2 * 2
    results = json.loads((tmp_path / "table" / "results.json").read_text())
    assert results["seeds"] == [0, 1] and "cpc_b" in results["linear"]
    assert results["linear"]["cpc"] == first_cpc  # the same features, the same probes
