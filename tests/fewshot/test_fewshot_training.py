"""Few-shot learners trained by the same loop as CPC (and started from a CPC checkpoint), then scored by
`seqcpc probe --episodic` on classes never trained on."""
import json

import numpy as np
import pytest
import torch

from conftest import cli
from image_fixtures import toy_class_store
from seqcpc.config import load_config
from seqcpc.fewshot.classifiers import CLASSIFIERS
from seqcpc.train.loop import pretrain

SMALL = ["model.size=image_small", "model.encoder.dim=32", "model.context.dim=32", "model.patches.widths=[16,32]",
         "model.augment.flip=false", "data.batch_size=16", "optim.lr=2e-3", "optim.warmup_steps=5",
         "train.log_every=10", "train.val_batches=10", "probe.ways=[5]", "probe.shots=[1,3]", "probe.n_query=3",
         "probe.episodes=40", "probe.pool=2"]
CPC = ["objective.predictor.first=1", "objective.predictor.steps=2"]  # a 3x3 grid: CPC v2's row 3 below does not exist
LEARNER = ["objective.n_way=5", "objective.k_shot=1", "objective.n_query=3", "objective.pool=2",
           "objective.episodes_per_epoch=20"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_class_store(tmp_path_factory.mktemp("fewshot") / "store")


@pytest.fixture(scope="module")
def cpc_run(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("cpc") / "run"
    pretrain(load_config(None, [*SMALL, *CPC, f"data.images={store}", f"train.out_dir={out}", "train.max_steps=30",
                                "train.val_every=30"]))
    return out


@pytest.mark.parametrize("method, extra", [("protonet", []), ("matching", ["objective.fce=true"]),
                                           ("maml", ["objective.inner=all", "objective.inner_steps=2"]),
                                           ("maml", ["objective.inner=head", "objective.inner_lr=0.1"])])
def test_each_learner_trains_through_the_loop_and_beats_chance_on_unseen_classes(store, tmp_path, method, extra):
    out = tmp_path / method
    summary = pretrain(load_config(None, [*SMALL, *LEARNER, *extra, f"objective.name={method}",
                                          f"data.images={store}", f"train.out_dir={out}", "train.max_steps=60",
                                          "train.val_every=60"]))
    assert summary["chance_loss"] == pytest.approx(np.log(5))
    train_losses = [float(line.split(",")[2]) for line in (out / "metrics.csv").read_text().splitlines()[1:]
                    if ",train," in line]
    assert len(train_losses) == 6 and train_losses[-1] < train_losses[0]
    assert summary["val_metrics"]["acc"] > 0.2 + 0.25, summary  # 5-way: chance is 0.2; val = the test classes


def test_a_learner_starts_from_the_cpc_encoder_and_probe_scores_its_episodes(store, cpc_run, tmp_path, capsys):
    ckpt = cpc_run / "checkpoints" / "last.ckpt"
    out = tmp_path / "proto"
    pretrain(load_config(None, [*SMALL, *LEARNER, "objective.name=protonet", f"data.images={store}",
                                f"train.out_dir={out}", f"train.init_from={ckpt}", "train.max_steps=1",
                                "optim.lr=1e-12"]))
    assert "started from" in capsys.readouterr().out
    learner = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["model"]
    cpc = torch.load(ckpt, weights_only=True)["model"]
    assert torch.allclose(learner["features.encoder.to_latent.weight"], cpc["encoder.to_latent.weight"], atol=1e-6)

    code, _, err = cli(capsys, "probe", "--checkpoint", out / "checkpoints" / "last.ckpt", "--out", tmp_path / "p")
    assert code == 0, err
    rows = json.loads((tmp_path / "p" / "results.json").read_text())
    assert set(rows["protonet"]) == {"5way_1shot", "5way_3shot"}
    assert rows["protonet"]["5way_3shot"]["mean"] > 0.45 and rows["protonet"]["5way_3shot"]["episodes"] == 40
    assert (tmp_path / "p" / "few_shot.png").is_file()


def test_probe_episodic_fits_classifiers_on_a_cpc_models_frozen_features(cpc_run, tmp_path, capsys):
    code, out, err = cli(capsys, "probe", "--episodic", "--checkpoint", cpc_run / "checkpoints" / "last.ckpt",
                         "--out", tmp_path / "p", "probe.ways=[5,20]")
    assert code == 0, err
    assert "20-way 1-shot left out" in out and "need 20 classes" in out  # only 8 evaluation classes
    rows = json.loads((tmp_path / "p" / "results.json").read_text())
    assert set(rows) == {f"{c} on {f}" for c in CLASSIFIERS for f in ("cpc", "random_init", "pixels")}
    for name, scores in rows.items():
        assert scores["5way_3shot"]["mean"] > 0.45, name  # block patterns: easy for any of them with 3 shots


def test_init_from_a_checkpoint_that_fits_nothing_is_refused(store, tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    torch.save({"model": {"something.else": torch.zeros(3)}}, bad)
    code, _, err = cli(capsys, "pretrain", *SMALL, *LEARNER, "objective.name=protonet", f"data.images={store}",
                       f"train.out_dir={tmp_path / 'r'}", f"train.init_from={bad}", "train.max_steps=1")
    assert code != 0 and "none of its weights fits this model" in err
    code, _, err = cli(capsys, "pretrain", *SMALL, "objective.name=protonet", f"data.images={store}",
                       f"train.out_dir={tmp_path / 'r2'}", f"train.init_from={tmp_path / 'missing.ckpt'}")
    assert code != 0 and "no such checkpoint file" in err


def test_more_ways_than_training_classes_stops_with_the_numbers(store, tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *SMALL, *LEARNER, "objective.n_way=15", "objective.name=protonet",
                       f"data.images={store}", f"train.out_dir={tmp_path / 'r'}")
    assert code != 0 and "the training split: 15-way episodes" in err and "only 12 of the 12 classes" in err


def test_extract_refuses_a_learner_checkpoint_and_says_what_to_run(store, tmp_path, capsys):
    out = tmp_path / "proto"
    pretrain(load_config(None, [*SMALL, *LEARNER, "objective.name=protonet", f"data.images={store}",
                                f"train.out_dir={out}", "train.max_steps=1"]))
    code, _, err = cli(capsys, "extract", "--checkpoint", out / "checkpoints" / "last.ckpt", "--out", tmp_path / "f")
    assert code != 0 and "few-shot learner" in err and "seqcpc probe" in err
