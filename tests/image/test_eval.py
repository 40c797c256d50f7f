"""The image evaluation's supervised baseline (early stopping on a held-out part, best weights restored) and
the summary over seeds."""
import numpy as np
import pytest
import torch
from torch import nn

import seqcpc.image.supervised as image_supervised
from image_fixtures import toy_colour_store, toy_image_store
from seqcpc.config import resolve, to_dict
from seqcpc.eval.probes import BestWeights, random_init
from seqcpc.image.eval import mean_std, seed_summary, write_seed_report
from seqcpc.image.store import load_split
from seqcpc.image.supervised import fit_supervised, predict


def test_best_weights_keeps_the_best_copy_and_stops_after_patience():
    net, best = nn.Linear(2, 1), BestWeights(patience=2)
    states = []
    for score in (0.1, 0.5, 0.4, 0.5):  # equal to the best is no gain
        with torch.no_grad():
            net.weight.add_(1.0)  # the weights change between checks, as in training
        states.append(net.weight.clone())
        best.update(score, net)
        assert best.stop == (len(states) == 4)
    best.restore(net)
    assert torch.equal(net.weight, states[1]) and best.best == 0.5


def tiny_config(root, **probe):
    return resolve({
        "model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16}, "context": {"dim": 16},
                  "patches": {"widths": [8, 16]}},
        "objective": {"predictor": {"first": 1, "steps": 1}},
        "data": {"kind": "images", "images": str(root), "batch_size": 8},
        "probe": {"pool": 1, **probe},
    })


def test_supervised_baseline_stops_early_and_returns_the_weights_of_its_best_check(tmp_path, monkeypatch):
    """Every check's weights are recorded; training stops once `patience` checks bring no gain, and the network
    it returns holds the best check's weights, not the last ones, scoring the best held-out accuracy again."""
    root = toy_image_store(tmp_path / "data", n_train=30, n_test=5)
    images, labels = load_split(root, "train")
    labels = np.array(labels)
    cfg = tiny_config(root, supervised_epochs=60, supervised_patience=3, supervised_check_every=3,
                      supervised_holdout=0.2, supervised_lr=5e-3)
    checks = []

    class Recording(BestWeights):
        def update(self, score, module):
            checks.append((score, {k: v.clone() for k, v in module.state_dict().items()}))
            return super().update(score, module)

    monkeypatch.setattr(image_supervised, "BestWeights", Recording)
    net, info = fit_supervised(cfg, images, labels, 3, log=lambda *_: None)
    scores = [score for score, _ in checks]
    best = int(np.argmax(scores))  # the first of the best scores: later equal ones are no gain
    assert info["stopped"] == "early" and len(checks) - 1 - best == 3  # patience 3: three checks without a gain
    assert info["steps"] == 3 * len(checks) and info["best_step"] == 3 * (best + 1)
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in checks[best][1].items())
    assert not all(torch.equal(state[k], v) for k, v in checks[-1][1].items())
    assert info["holdout_acc"] == pytest.approx(scores[best])
    assert max(scores) > 0.6  # three stripe orientations: well above chance (1/3)
    assert predict(net, images[:4]).shape == (4,)


def test_supervised_baseline_reports_a_step_cap(tmp_path):
    root = toy_image_store(tmp_path / "data", n_train=20, n_test=5)
    images, labels = load_split(root, "train")
    cfg = tiny_config(root, supervised_max_steps=3, supervised_check_every=50)
    _, info = fit_supervised(cfg, images, np.array(labels), 3, log=lambda *_: None)
    assert info["steps"] == 3 and info["stopped"] == "max_steps"


def test_the_supervised_baseline_is_random_inits_encoder_for_cpc_and_the_rgb_encoder_for_any_objective(tmp_path):
    root = toy_colour_store(tmp_path / "colour", n_train=8, n_test=2)
    cpc = tiny_config(root)
    cpc.model.encoder.in_channels = 3
    baseline = image_supervised.baseline_features(cpc, 0).encoder.state_dict()
    assert all(torch.equal(a, b) for a, b in zip(baseline.values(), random_init(cpc, 0).encoder.state_dict().values()))
    images, labels = load_split(root, "train")
    for objective in ("cmc", "colourise"):  # models with no RGB encoder of their own
        cfg = resolve({**to_dict(cpc), "objective": {"name": objective}})
        _, info = fit_supervised(cfg, images, np.array(labels), 3, log=lambda *_: None)
        assert info["steps"] > 0


def test_seed_summary_gives_mean_and_std_over_seeds(tmp_path):
    def seed_result(cpc, sup):
        return {"linear": {"cpc": {"0.1": cpc, "1": cpc + 0.1}, "pixels": {"0.1": 0.5, "1": 0.6}},
                "supervised": {"0.1": {"acc": sup, "epochs": 10, "seconds": 60, "stopped": "early"},
                               "1": {"acc": sup + 0.2, "epochs": 4, "seconds": 120, "stopped": "early"}},
                "few_shot": {"cpc": {"5way_1shot": {"mean": cpc, "ci95": 0.01}}}}

    summary = seed_summary({0: seed_result(0.70, 0.6), 1: seed_result(0.74, 0.6), 2: seed_result(0.72, 0.6)})
    cpc = summary["linear"]["cpc"]["0.1"]
    assert cpc["mean"] == pytest.approx(0.72) and cpc["std"] == pytest.approx(0.02) and cpc["n"] == 3
    assert summary["supervised"]["1"]["std"] == pytest.approx(0) and summary["supervised"]["1"]["minutes"]["mean"] == 2
    assert summary["few_shot"]["cpc"]["5way_1shot"]["mean"] == pytest.approx(0.72)
    assert mean_std([0.5])["std"] == 0
    table = write_seed_report(summary, tmp_path, "facts", log=lambda *_: None)
    assert "| linear on cpc | 72.0 ± 2.0 | 82.0 ± 2.0 |" in table
    assert "60.0 ± 0.0 (10 epochs, 1.0 min)" in table
    assert (tmp_path / "results.md").is_file() and (tmp_path / "label_efficiency.png").is_file()
