"""recipes/fewshot/run.py end to end on a tiny glyph set: data, CPC, every learner from scratch and from CPC,
the frozen-feature classifiers, one table; then every step skipped."""
import json

import yaml

from conftest import run_recipe


def test_fewshot_recipe_runs_end_to_end_then_skips_what_is_done(tmp_path):
    pretrain = {
        "prepare": {"script": "glyphs", "options": {"out": str(tmp_path / "glyphs"), "size": 16, "instances": 6,
                                                    "max_classes_per_alphabet": 2}},
        "model": {"size": "image_small", "encoder": {"dim": 16}, "context": {"dim": 16},
                  "patches": {"widths": [8, 16]}, "augment": {"flip": False}},
        "objective": {"predictor": {"first": 1, "steps": 1}},  # 16 px images: a 3x3 grid, no row 3 below
        "data": {"kind": "images", "images": str(tmp_path / "glyphs"), "batch_size": 8},
        "train": {"out_dir": str(tmp_path / "table" / "cpc"), "max_steps": 6, "log_every": 3, "val_every": 6,
                  "val_batches": 2},
        "probe": {"ways": [5], "shots": [1, 2], "n_query": 3, "episodes": 20, "pool": 2},
    }
    (tmp_path / "cpc.yaml").write_text(yaml.safe_dump(pretrain))
    table = {"pretrain": str(tmp_path / "cpc.yaml"), "out_dir": str(tmp_path / "table"),
             "learner": ["objective.n_query=3", "objective.pool=2", "train.max_steps=4", "train.val_every=4",
                         "train.val_batches=2"],
             "per_method": {"maml": ["objective.inner_steps=1", "objective.eval_inner_steps=1"]}}
    (tmp_path / "table.yaml").write_text(yaml.safe_dump(table))
    out = run_recipe("fewshot", tmp_path / "table.yaml")
    assert "== data" in out and out.count("== meta-training") == 6 and "== episodic evaluation" in out
    rows = json.loads((tmp_path / "table" / "results.json").read_text())
    learners = [f"{m} (from {i})" for m in ("protonet", "matching", "maml") for i in ("scratch", "CPC")]
    assert set(rows) == set(learners) | {f"{c} on {f}" for c in ("prototypes", "linear", "cosine")
                                         for f in ("cpc", "random_init", "pixels")}
    for name, scores in rows.items():
        assert set(scores) == {"5way_1shot", "5way_2shot"} and scores["5way_1shot"]["episodes"] == 20, name
    assert "started from" in out  # the "from CPC" runs start from the CPC encoder
    assert (tmp_path / "table" / "few_shot.png").is_file() and (tmp_path / "table" / "results.md").is_file()

    again = run_recipe("fewshot", tmp_path / "table.yaml")
    assert again.count("done before") == 7 and "started from" not in again
