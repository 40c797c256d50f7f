"""A run's lifecycle through the real `seqcpc pretrain`: stopped in every way a run stops (SIGKILL, Ctrl-C, a
shorter train.max_steps) and resumed to the uninterrupted run's weights bit for bit, at an epoch boundary too;
refusals (and Ctrl-C) before the first step that leave the run folder as it was; a run that learned nothing
ends as an error."""
import json
import math
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, TINY, cli, run_cli
from image_fixtures import toy_class_store
from seqcpc.core.model import CPC
from seqcpc.train.checkpoint import read_checkpoint

PER_EPOCH, STEPS = 8, 24  # 64 sequences in batches of 8; three epochs
# deterministic on one thread, and a constant learning rate after warm-up, so that a run's steps do not depend on
# its train.max_steps: a run stopped by a shorter one can be resumed with a longer one
EXACT = [*TINY, "data.num_sequences=64", "train.deterministic=true", "optim.min_lr_ratio=1.0", "train.val_every=8"]
QUICK = [*TINY, "train.max_steps=2", "train.val_every=2", "train.log_every=1"]


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    out = tmp_path_factory.mktemp("straight") / "run"
    run_cli("pretrain", *EXACT, f"train.max_steps={STEPS}", f"train.out_dir={out}")
    return read_checkpoint(out / "checkpoints" / "last.ckpt")


def stop_run(how: str, args: list, ckpt, capsys) -> None:
    """Stop a run of `args` before its last step: SIGKILL or SIGINT once it wrote a checkpoint, or a shorter
    train.max_steps (the last step of the first epoch)."""
    if how == "max_steps":
        code, _, err = cli(capsys, "pretrain", *args, f"train.max_steps={PER_EPOCH}")
        assert code == 0, err
        return
    proc = subprocess.Popen([sys.executable, "-m", "seqcpc", "pretrain", *args], cwd=ROOT, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL if how == "kill" else signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if how == "kill":
        assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
        return
    # Ctrl-C: the step under way ends and is saved, and one line says where the run stopped and how to go on
    resume = " ".join(["seqcpc pretrain", *args, "--resume"])
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == f"seqcpc: stopped at step {read_checkpoint(ckpt)['step']}; resume with: " \
                                           f"{resume}", err


@pytest.mark.parametrize("how, ckpt_every", [("kill", PER_EPOCH), ("kill", 5), ("interrupt", PER_EPOCH),
                                             ("max_steps", PER_EPOCH)])
def test_a_stopped_run_resumes_to_the_uninterrupted_weights_bit_for_bit(straight, tmp_path, capsys, how, ckpt_every):
    out = tmp_path / "run"
    ckpt = out / "checkpoints" / "last.ckpt"
    args = [*EXACT, f"train.ckpt_every={ckpt_every}", f"train.out_dir={out}", f"train.max_steps={STEPS}"]
    stop_run(how, args, ckpt, capsys)
    stopped = read_checkpoint(ckpt)
    assert 0 < stopped["step"] < STEPS
    if how != "interrupt":  # at the end of an epoch, or (a checkpoint every 5 steps) inside one
        assert (stopped["step"] % PER_EPOCH == 0) == (ckpt_every == PER_EPOCH), stopped["step"]

    code, captured, err = cli(capsys, "pretrain", *args, "--resume")
    assert code == 0 and f"at step {stopped['step']}" in captured, err
    resumed = read_checkpoint(ckpt)
    assert resumed["step"] == straight["step"] == STEPS
    for name, tensor in straight["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name  # bit-identical, not merely close
    # the run's time counts its part before the stop (up to its checkpoint) and the resumed part
    assert json.loads((out / "summary.json").read_text())["elapsed_s"] >= resumed["elapsed_s"] > stopped["elapsed_s"]
    steps = [int(line.split(",")[0]) for line in (out / "metrics.csv").read_text().splitlines()[1:]
             if ",train," in line]
    assert steps == sorted(set(steps)) and steps[-1] == STEPS  # no row repeated after the resume


def test_overwrite_refuses_a_run_started_from_a_checkpoint_it_would_delete(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli(capsys, "pretrain", *QUICK, "train.out_dir=run")[0] == 0
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    kept, entries = ckpt.read_bytes(), sorted(p.name for p in (tmp_path / "run").iterdir())
    code, _, err = cli(capsys, "pretrain", *QUICK, "train.out_dir=run", "train.init_from=run/checkpoints/last.ckpt",
                       "--overwrite")
    assert code == 1 and "train.init_from" in err and "copy it" in err and len(err.strip().splitlines()) == 1, err
    assert ckpt.read_bytes() == kept and sorted(p.name for p in (tmp_path / "run").iterdir()) == entries


def poison_training(monkeypatch, first: int) -> None:
    """From the `first`-th training forward on (counting from 1), CPC's loss is NaN."""
    calls, forward = [0], CPC.forward

    def poisoned(self, x, groups=None):
        loss, metrics = forward(self, x, groups)
        calls[0] += self.training
        return (loss * math.nan if self.training and calls[0] >= first else loss), metrics

    monkeypatch.setattr(CPC, "forward", poisoned)


def strict_json(path):
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_run_whose_every_step_was_skipped_is_an_error(tmp_path, capsys, monkeypatch):
    poison_training(monkeypatch, first=1)
    code, out, err = cli(capsys, "pretrain", *QUICK, "train.max_bad_steps=10", f"train.out_dir={tmp_path}")
    assert code == 1 and "no training step was taken" in err and "all 2 steps" in err, err
    assert "done" not in out and "plateau" not in out
    assert not (tmp_path / "summary.json").exists() or strict_json(tmp_path / "summary.json")


def test_summary_json_is_json_when_the_last_logged_steps_were_skipped(tmp_path, capsys, monkeypatch):
    poison_training(monkeypatch, first=3)
    code, _, err = cli(capsys, "pretrain", *TINY, "train.max_steps=4", "train.log_every=2", "train.val_every=4",
                       f"train.out_dir={tmp_path}")
    assert code == 0, err
    summary = strict_json(tmp_path / "summary.json")
    assert summary["bad_steps"] == 2 and summary["train_loss"] is None and math.isfinite(summary["val_loss"])


def refusal(case: str, tmp_path) -> tuple[list, list, str]:
    """(a command refused by a check that needs the data, the corrected command, the refusal's words)"""
    if case == "episodes":
        store = toy_class_store(tmp_path / "store")
        learner = ["model.size=image_small", "model.encoder.dim=32", "model.context.dim=32",
                   "model.patches.widths=[16,32]", "data.batch_size=16", f"data.images={store}",
                   "objective.name=protonet", "objective.k_shot=1", "objective.n_query=3",
                   "objective.episodes_per_epoch=2", "train.max_steps=2", "train.val_batches=2"]
        return [*learner, "objective.n_way=15"], [*learner, "objective.n_way=5"], "15-way episodes"
    if case == "batch":
        return [*QUICK, "data.num_sequences=4"], QUICK, "fewer items than one batch"
    (tmp_path / "pretrained.ckpt").write_bytes(b"not a checkpoint")
    return [*QUICK, f"train.init_from={tmp_path / 'pretrained.ckpt'}"], QUICK, "could not be read"


@pytest.mark.parametrize("case", ["batch", "episodes", "init_from"])
def test_a_refused_run_leaves_the_folder_as_it_was(tmp_path, capsys, case):
    refused, corrected, words = refusal(case, tmp_path)
    out = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", *refused, f"train.out_dir={out}")
    assert code == 1 and words in err, err
    assert not out.exists()  # no marker, no lock, no empty checkpoints folder
    code, _, err = cli(capsys, "pretrain", *corrected, f"train.out_dir={out}")
    assert code == 0, err
    # refused with --overwrite, the run already there is kept whole
    kept = (out / "checkpoints" / "last.ckpt").read_bytes()
    code, _, err = cli(capsys, "pretrain", *refused, f"train.out_dir={out}", "--overwrite")
    assert code == 1 and words in err, err
    assert (out / "checkpoints" / "last.ckpt").read_bytes() == kept and (out / "summary.json").is_file()
    code, _, err = cli(capsys, "pretrain", *corrected, "train.max_steps=3", f"train.out_dir={out}", "--resume")
    assert code == 0, err


def test_ctrl_c_before_the_first_step_leaves_the_folder_as_it_was(tmp_path, capsys, monkeypatch):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("seqcpc.train.loop.MetricsLog", ctrl_c)  # while the run sets up in the folder it took
    code, _, err = cli(capsys, "pretrain", *QUICK, f"train.out_dir={tmp_path / 'runs' / 'run'}")
    assert code == 130 and err.strip() == "seqcpc: interrupted", err
    assert not (tmp_path / "runs").exists()  # the folders made for the run are gone too


def test_a_run_in_parts_stops_at_train_stop_at_and_keeps_the_checkpoints_asked_for(straight, tmp_path, capsys):
    """train.stop_at ends a part of the run without changing its schedule: parts resumed up to train.max_steps
    give the uninterrupted weights; train.keep_steps keeps those checkpoints; nothing left to train is refused."""
    out = tmp_path / "run"
    args = [*EXACT, f"train.max_steps={STEPS}", "train.keep_steps=[5,16]", f"train.out_dir={out}"]
    for stop, resume in ((5, []), (13, ["--resume"]), (0, ["--resume"])):
        code, _, err = cli(capsys, "pretrain", *args, f"train.stop_at={stop}", *resume)
        assert code == 0, err
        assert read_checkpoint(out / "checkpoints" / "last.ckpt")["step"] == (stop or STEPS)
    resumed, kept = read_checkpoint(out / "checkpoints" / "last.ckpt"), read_checkpoint(out / "checkpoints" / "step-5.ckpt")
    for name, tensor in straight["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    assert kept["step"] == 5 and read_checkpoint(out / "checkpoints" / "step-16.ckpt")["step"] == 16
    code, _, err = cli(capsys, "pretrain", *args, "--resume")
    assert code != 0 and "nothing is left to train" in err
    code, _, err = cli(capsys, "pretrain", *EXACT, "train.max_steps=8", "train.keep_steps=[9]",
                       f"train.out_dir={tmp_path / 'other'}")
    assert code != 0 and "train.keep_steps [9] lie beyond train.max_steps=8" in err
