"""The image evaluation's supervised baseline (a budget chosen on a validation set by the first seed, then trained
by the others) and the summary over seeds."""
import numpy as np
import pytest
import torch

import seqcpc.image.supervised as image_supervised
from image_fixtures import toy_colour_store, toy_image_store
from seqcpc.config import resolve, to_dict, with_overrides
from seqcpc.errors import ConfigError
from seqcpc.eval.probes import balanced_subset, random_init
from seqcpc.image.store import load_split
from seqcpc.image.summary import mean_std, seed_summary, write_seed_report
from seqcpc.image.supervised import (cosine_with_warmup, select_budget, train_budget, train_supervised,
                                     validation_split)


def tiny_config(root, **probe):
    return resolve({
        "model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16}, "context": {"dim": 16},
                  "patches": {"widths": [8, 16]}},
        "objective": {"predictor": {"first": 1, "steps": 1}},
        "data": {"kind": "images", "images": str(root), "batch_size": 8},
        "probe": {"pool": 1, **probe},
    })


def test_validation_split_is_outside_the_subset_below_all_labels_and_held_out_of_it_at_all_labels():
    labels = np.repeat(np.arange(3), 20)
    small = np.arange(0, 60, 6)  # 10 labelled images
    train, val = validation_split(labels, small, 9, seed=0)
    assert np.array_equal(train, small) and len(val) == 9 and not set(val) & set(small)
    assert np.bincount(labels[val]).tolist() == [3, 3, 3]
    train, val = validation_split(labels, np.arange(60), 9, seed=0)  # every image labelled: held out of them
    assert len(val) == 9 and len(train) == 51 and not set(val) & set(train)


def test_cosine_with_warmup_rises_then_decays_to_zero():
    factor = cosine_with_warmup(105)  # 5 warm-up steps, then 100 of decay
    assert factor(0) == pytest.approx(0.2) and factor(4) == 1 and factor(5) == 1
    assert factor(55) == pytest.approx(0.5) and factor(105) == pytest.approx(0, abs=1e-9)


def test_the_budget_chosen_by_the_first_seed_is_trained_by_the_others_on_all_their_labels(tmp_path):
    """Seed 0 tries two budgets on a validation set outside its labelled subset and keeps the shorter when the
    longer buys no more than the tolerance; seed 1 trains that budget once, with no selection and no validation,
    on its whole subset; a schedule chosen under other settings is refused."""
    root = toy_image_store(tmp_path / "data", n_train=30, n_test=5)
    images, labels = load_split(root, "train")
    test_images, test_labels = load_split(root, "test")
    labels, test_labels = np.array(labels), np.array(test_labels)
    probe = dict(label_fractions=[0.5], supervised_epochs=[4], supervised_budgets=2, supervised_tolerance=1.0,
                 supervised_val_images=12, supervised_checks=2)
    schedule, logs = {}, []
    subset = balanced_subset(labels, 0.5, seed=0)
    first = train_supervised(tiny_config(root, **probe), 0.5, images, labels, subset, test_images, test_labels, 3,
                             schedule, logs.append)
    entry = schedule["0.5"]
    assert [r["budget"] for r in entry["runs"]] == [2, 4] and entry["epochs"] == 2 and entry["seed"] == 0
    assert first["selected"] and first["budget"] == 2 and first["train_images"] == len(subset)
    assert all(len(r["curve"]) == 2 and r["curve"][-1]["epoch"] == r["budget"] for r in entry["runs"])
    assert not entry["rising"] and 0 <= first["acc"] <= 1

    cfg1 = with_overrides(tiny_config(root, **probe), ["train.seed=1"])
    subset1 = balanced_subset(labels, 0.5, seed=1)
    logs.clear()
    second = train_supervised(cfg1, 0.5, images, labels, subset1, test_images, test_labels, 3, schedule, logs.append)
    assert not second["selected"] and second["budget"] == 2 and second["epochs"] == 2
    assert second["train_images"] == len(subset1) and "val_acc" not in second
    assert not any("validation" in line for line in logs) and "chosen on seed 0" in logs[0]

    other = tiny_config(root, **{**probe, "supervised_lr": 1e-2})
    with pytest.raises(ConfigError, match="chosen with other settings"):
        train_supervised(other, 0.5, images, labels, subset1, test_images, test_labels, 3, schedule, logs.append)


def test_a_longer_budget_that_gains_more_than_the_tolerance_is_chosen_and_flagged_rising(tmp_path, monkeypatch):
    root = toy_image_store(tmp_path / "data", n_train=30, n_test=5)
    images, labels = load_split(root, "train")
    labels = np.array(labels)
    scores = iter([0.5, 0.6, 0.7, 0.9])  # two checks per run: the 1-epoch run ends at 0.6, the 2-epoch one at 0.9
    monkeypatch.setattr(image_supervised, "accuracy", lambda *_: next(scores))
    cfg = tiny_config(root, label_fractions=[1.0], supervised_epochs=[2], supervised_tolerance=0.1,
                      supervised_val_images=9, supervised_checks=2)
    _, entry = select_budget(cfg, images, labels, np.arange(len(labels)), 1.0, 3, log=lambda *_: None)
    assert entry["epochs"] == 2 and entry["rising"] and [r["val_acc"] for r in entry["runs"]] == [0.6, 0.9]
    assert entry["runs"][0]["train_images"] == len(labels) - 9  # all labels: the validation set is held out


def test_supervised_steps_are_capped(tmp_path):
    root = toy_image_store(tmp_path / "data", n_train=20, n_test=5)
    images, labels = load_split(root, "train")
    cfg = tiny_config(root, supervised_max_steps=3)
    _, info = train_budget(cfg, images, np.array(labels), np.arange(60), 10, 3, log=lambda *_: None)
    assert info["steps"] == 3 and info["curve"] == []


def test_the_supervised_baseline_is_random_inits_encoder_for_cpc_and_the_rgb_encoder_for_any_objective(tmp_path):
    root = toy_colour_store(tmp_path / "colour", n_train=8, n_test=2)
    cpc = tiny_config(root)
    cpc.model.encoder.in_channels = 3
    baseline = image_supervised.baseline_features(cpc, 0).encoder.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(baseline.values(), random_init(cpc, 0).encoder.state_dict().values()))
    images, labels = load_split(root, "train")
    for objective in ("cmc", "colourise"):  # models with no RGB encoder of their own
        cfg = resolve({**to_dict(cpc), "objective": {"name": objective}})
        _, info = train_budget(cfg, images, np.array(labels), np.arange(len(labels)), 1, 3, log=lambda *_: None)
        assert info["steps"] > 0


def test_seed_summary_gives_mean_and_std_over_seeds_and_marks_a_column_fewer_seeds_reached(tmp_path):
    def seed_result(cpc, sup, full_labels=True):
        supervised = {"0.1": {"acc": sup, "epochs": 10, "train_images": 600, "seconds": 60}}
        if full_labels:
            supervised["1"] = {"acc": sup + 0.2, "epochs": 4, "train_images": 5500, "seconds": 120}
        return {"linear": {"cpc": {"0.1": cpc, "1": cpc + 0.1}, "pixels": {"0.1": 0.5, "1": 0.6}},
                "supervised": supervised, "few_shot": {"cpc": {"5way_1shot": {"mean": cpc, "ci95": 0.01}}},
                "embedding_seconds": {"cpc": 90}}

    summary = seed_summary({0: seed_result(0.70, 0.6), 1: seed_result(0.74, 0.6, full_labels=False),
                            2: seed_result(0.72, 0.6, full_labels=False)})
    cpc = summary["linear"]["cpc"]["0.1"]
    assert cpc["mean"] == pytest.approx(0.72) and cpc["std"] == pytest.approx(0.02) and cpc["n"] == 3
    assert summary["supervised"]["0.1"]["std"] == pytest.approx(0) and summary["supervised"]["0.1"]["n"] == 3
    assert summary["supervised"]["1"]["n"] == 1 and summary["supervised"]["1"]["minutes"]["mean"] == 2
    assert summary["few_shot"]["cpc"]["5way_1shot"]["mean"] == pytest.approx(0.72)
    assert summary["embedding_minutes"]["cpc"]["mean"] == pytest.approx(1.5)
    assert mean_std([0.5])["std"] == 0
    table = write_seed_report(summary, tmp_path, "facts", log=lambda *_: None)
    assert "| linear on cpc | 72.0 ± 2.0 | 82.0 ± 2.0 |" in table
    assert "60.0 ± 0.0, 10 epochs of 600 images, 1.0 min" in table
    assert "80.0 (1 of 3 seeds), 4 epochs of 5500 images, 2.0 min" in table
    assert (tmp_path / "results.md").is_file() and (tmp_path / "label_efficiency.png").is_file()
