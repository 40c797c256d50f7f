"""recipes/long_tail/images.py end to end on a tiny generated image folder: long-tailed and balanced subsets of two
draws, CPC v2 / SimCLR / SDCLR pretraining, probes on the full training split, the grouped table and the plot;
then every step skipped."""
import json

import pytest
import yaml

from conftest import run_script
from image_fixtures import toy_image_folder


HEAD = ["objective.hidden=16", "objective.projection=8"]  # small projection heads of the two-view methods


def test_long_tail_table_runs_every_method_draw_and_subset_then_skips_what_is_done(tmp_path):
    toy_image_folder(tmp_path / "folder", n_per_class=40, size=28)
    pretrain = {
        "prepare": {"script": "image_folder",
                    "options": {"root": str(tmp_path / "folder"), "out": str(tmp_path / "data"), "size": 28}},
        "model": {"size": "image_small", "encoder": {"dim": 16}, "context": {"dim": 16},
                  "patches": {"widths": [8, 16]}},
        "data": {"kind": "images", "images": str(tmp_path / "data"), "batch_size": 8},
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "train": {"max_steps": 4, "log_every": 2, "val_every": 4, "val_batches": 1, "ckpt_every": 4},
        "probe": {"pool": 1, "l2_grid": []},
    }
    (tmp_path / "pretrain.yaml").write_text(yaml.safe_dump(pretrain))
    table = {"pretrain": str(tmp_path / "pretrain.yaml"), "out_dir": str(tmp_path / "table"),
             "data_dir": str(tmp_path / "subsets"), "imbalance": 10, "draws": [0, 1],
             "methods": {"cpc_v2": {"overrides": [], "subsets": ["long_tail"]},
                         "simclr": {"overrides": ["objective.name=simclr", *HEAD]},
                         "sdclr": {"overrides": ["objective.name=sdclr", *HEAD], "draws": [1]}}}
    config = tmp_path / "table.yaml"
    config.write_text(yaml.safe_dump(table))

    run_script("recipes/long_tail/images.py", config)
    runs = {p.parent.relative_to(tmp_path / "table").as_posix() for p in (tmp_path / "table").glob("*/*/probe.json")}
    assert runs == {"cpc_v2/draw0_long_tail", "cpc_v2/draw1_long_tail", "simclr/draw0_long_tail",
                    "simclr/draw0_balanced", "simclr/draw1_long_tail", "simclr/draw1_balanced",
                    "sdclr/draw1_long_tail", "sdclr/draw1_balanced"}
    lt_counts = {}
    for draw in (0, 1):  # the two subsets of a draw: a long tail n -> n / 10 and a balanced twin of the same size
        lt = json.loads((tmp_path / "subsets" / f"draw{draw}_long_tail" / "dataset.json").read_text())
        bal = json.loads((tmp_path / "subsets" / f"draw{draw}_balanced" / "dataset.json").read_text())
        lt_counts[draw] = lt["class_counts"]
        largest = max(lt["class_counts"])
        assert largest >= 20 and sorted(lt["class_counts"]) == [round(largest / 10), round(largest / 10 ** 0.5), largest]
        assert sum(bal["class_counts"]) == sum(lt["class_counts"]) and max(bal["class_counts"]) - min(bal["class_counts"]) <= 1
    saved = yaml.safe_load((tmp_path / "table" / "sdclr" / "draw1_balanced" / "config.yaml").read_text())
    assert saved["objective"]["name"] == "sdclr" and saved["data"]["images"].endswith("draw1_balanced")
    results = json.loads((tmp_path / "table" / "results.json").read_text())
    rows = results["rows"]
    assert set(rows) == {"random_init (long-tail)", "cpc_v2 (long-tail)", "simclr (long-tail)", "simclr (balanced)",
                         "sdclr (long-tail)", "sdclr (balanced)"}
    assert rows["simclr (long-tail)"]["draws"] == 2 and rows["simclr (long-tail)"]["acc"]["std"] is not None
    assert rows["sdclr (balanced)"]["draws"] == 1 and rows["sdclr (balanced)"]["acc"]["std"] is None
    for row in rows.values():
        assert 0 <= row["few"]["mean"] <= 1 and row["balancedness"]["mean"] >= 0
    assert [c for c, _ in results["curves"]["simclr"]] == sorted(lt_counts[0], reverse=True)
    # differences to SimCLR draw by draw: CPC v2 on both draws, SDCLR on the one it ran
    paired = results["paired"]
    assert set(paired) == {"random_init (long-tail)", "cpc_v2 (long-tail)", "sdclr (long-tail)", "sdclr (balanced)"}
    assert paired["cpc_v2 (long-tail)"]["draw_ids"] == [0, 1] and paired["sdclr (long-tail)"]["draw_ids"] == [1]
    assert paired["cpc_v2 (long-tail)"]["few"]["mean"] == pytest.approx(
        rows["cpc_v2 (long-tail)"]["few"]["mean"] - rows["simclr (long-tail)"]["few"]["mean"])
    md = (tmp_path / "table" / "results.md").read_text()
    assert "| simclr (balanced) |" in md and "few %" in md
    assert (tmp_path / "table" / "per_class.png").is_file()

    again = run_script("recipes/long_tail/images.py", config)
    assert "== pretraining\n" not in again and again.count("== pretraining: done before") == 8
    assert json.loads((tmp_path / "table" / "results.json").read_text())["rows"] == rows
