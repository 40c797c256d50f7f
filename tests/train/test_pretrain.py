"""The real `seqcpc pretrain` entry point on tiny synthetic runs: learning, resume, faults, DDP."""
import csv
import json
import math

import pytest
import torch

from seqcpc.train.checkpoint import load_model, read_checkpoint
from seqcpc.config import load_config
from seqcpc.errors import TrainingError
from seqcpc.core.model import CPC
from seqcpc.train.loop import lr_factor, pretrain

from conftest import DDP2, TINY, TINY_ANY, cli, run_cli


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    proc = run_cli("pretrain", *TINY, "train.max_steps=80", "train.val_every=40", "train.ckpt_every=40",
                   f"train.out_dir={out}")
    return out, proc


def test_tiny_run_learns(trained):
    out, proc = trained
    summary = json.loads((out / "summary.json").read_text())
    rows = [r for r in read_csv(out / "metrics.csv") if r["split"] == "train"]
    assert summary["step"] == 80 and summary["chance_loss"] == pytest.approx(math.log(33))
    assert float(rows[0]["loss"]) > summary["chance_loss"] - 0.1  # starts on the plateau
    assert summary["val_loss"] < summary["chance_loss"] - 0.5  # and leaves it
    assert summary["val_metrics"]["acc/k1"] > 5 / 33  # next-step accuracy far above chance (1/33)
    assert "samples/s" in proc.stdout and "eta" in proc.stdout
    for name in ("config.yaml", "curves.png", "checkpoints/last.ckpt"):
        assert (out / name).is_file(), name


def test_existing_run_folder_is_refused(trained, capsys):
    out, _ = trained
    code, _, err = cli(capsys, "pretrain", *TINY, "train.max_steps=5", f"train.out_dir={out}")
    assert code == 1 and "already holds a run" in err and "--resume" in err


def test_cli_reports_a_bad_config_key_in_one_line(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", "optim.lrr=1", f"train.out_dir={tmp_path}")
    assert code == 1 and "unknown config key 'optim.lrr'" in err and "Traceback" not in err
    code, _, err = cli(capsys, "pretrain", "--config", tmp_path / "missing.yaml")
    assert code == 1 and "missing.yaml does not exist" in err
    code, _, err = cli(capsys, "pretrain", "model.size=image_small", "model.encoder.kernels=[4]")
    assert code == 1 and "'model.encoder.kernels' applies only to audio models" in err


def test_resume_without_a_checkpoint_is_refused(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY, f"train.out_dir={tmp_path}", "--resume")
    assert code == 1 and "no checkpoint" in err


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = load_config(None, [*TINY, "train.max_steps=30", "train.ckpt_every=5", "train.max_bad_steps=2",
                             f"train.out_dir={tmp_path}"])
    calls, forward = [0], CPC.forward

    def poisoned(self, x, groups=None):  # from the 8th training forward on, the loss is NaN
        loss, metrics = forward(self, x, groups)
        calls[0] += self.training
        return (loss * math.nan if calls[0] >= 8 else loss), metrics

    monkeypatch.setattr(CPC, "forward", poisoned)
    with pytest.raises(TrainingError, match=r"max_bad_steps=2.*last good checkpoint"):
        pretrain(cfg)
    ckpt = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["step"] == 5
    assert all(torch.isfinite(t).all() for t in ckpt["model"].values())


def test_lr_warms_up_then_decays():
    lrs = [lr_factor(s, warmup=10, max_steps=100, min_ratio=0.1) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[10:] == sorted(lrs[10:], reverse=True) and lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_two_process_ddp_run_keeps_ranks_in_sync_and_writes_once(tmp_path):
    proc = run_cli("pretrain", *TINY, "train.max_steps=20", "train.val_every=10", "train.ckpt_every=10",
                   *DDP2, f"train.out_dir={tmp_path}")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 20
    # each rank trains on its own half of every batch; equal weights at the end mean gradients were averaged
    assert summary["ranks_param_spread"] == 0.0
    assert summary["val_loss"] < summary["chance_loss"]
    assert proc.stdout.count("step 20/20") == 1 and proc.stdout.count("done: step 20") == 1
    steps = [r["step"] for r in read_csv(tmp_path / "metrics.csv") if r["split"] == "train"]
    assert steps == ["5", "10", "15", "20"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".seqcpc_run", "checkpoints", "config.yaml", "curves.png",
                                                          "metrics.csv", "summary.json"]
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["last.ckpt"]


def test_a_compiled_run_trains_and_saves_a_plain_checkpoint(tmp_path):
    run_cli("pretrain", *TINY, "train.max_steps=6", "train.compile=true", f"train.out_dir={tmp_path}")
    ckpt = read_checkpoint(tmp_path / "checkpoints" / "last.ckpt")
    assert ckpt["step"] == 6 and not any("_orig_mod" in k for k in ckpt["model"])
    model = load_model(tmp_path / "checkpoints" / "last.ckpt")
    loss, _ = model(torch.randn(2, 1, 2048))
    assert torch.isfinite(loss)


def test_tensorboard_event_files_are_written_when_asked(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY, "train.max_steps=4", "train.log_every=2", "train.val_every=4",
                       "train.tensorboard=true", f"train.out_dir={tmp_path}")
    assert code == 0, err
    events = list((tmp_path / "tensorboard").rglob("events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


def test_two_process_simclr_scores_each_view_against_the_views_of_both_ranks(tmp_path):
    """Fabric's all_gather with gradients: every rank's queries see 2 x 2 x 8 - 1 candidates, and the gathered
    gradients keep the ranks' weights equal."""
    run_cli("pretrain", *TINY_ANY, "objective.name=simclr", "train.max_steps=6", "train.val_every=6",
            "train.ckpt_every=6", *DDP2, f"train.out_dir={tmp_path}")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 6
    assert summary["chance_loss"] == pytest.approx(math.log(2 * 2 * 8 - 1))
    assert summary["ranks_param_spread"] == 0.0 and math.isfinite(summary["val_loss"])
