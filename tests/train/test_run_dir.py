"""The run folder through the real `seqcpc pretrain` entry point: --overwrite removes only what a run wrote, in
a folder recognised as a run, and a folder in use by another run is refused while a killed run's lock is not."""
import json
import os
import socket
import subprocess
import sys

import pytest

from conftest import TINY, cli
from seqcpc.train.run_dir import LOCK, MARKER, RUN_ENTRIES, process_start

QUICK = [*TINY, "train.max_steps=2", "train.val_every=2", "train.ckpt_every=2", "train.log_every=1"]


def user_files(folder):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "notes.txt").write_text("mine")
    (folder / "corpus").mkdir(exist_ok=True)
    (folder / "corpus" / "a.wav").write_bytes(b"RIFF")


@pytest.mark.parametrize("target", ["folder", "parent", "cwd", "empty"])
def test_overwrite_refuses_a_folder_that_is_not_a_run_and_removes_nothing(tmp_path, capsys, monkeypatch, target):
    user_files(tmp_path / "data")
    (tmp_path / "runs" / "old" / "checkpoints").mkdir(parents=True)  # a run inside a parent folder
    (tmp_path / "runs" / "old" / MARKER).write_text("{}")
    monkeypatch.chdir(tmp_path / "data")
    out = {"folder": tmp_path / "data", "parent": tmp_path / "runs", "cwd": ".", "empty": "''"}[target]
    code, _, err = cli(capsys, "pretrain", *QUICK, f"train.out_dir={out}", "--overwrite")
    assert code == 1 and "Traceback" not in err
    assert ("not a seqcpc run folder" in err and str(out) in err) if target in ("folder", "parent") else \
        "must name a folder for this run" in err
    assert (tmp_path / "data" / "notes.txt").read_text() == "mine" and (tmp_path / "data" / "corpus" / "a.wav").exists()
    assert (tmp_path / "runs" / "old" / MARKER).exists()


def test_overwrite_replaces_a_run_and_keeps_what_the_run_did_not_write(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(capsys, "pretrain", *QUICK, f"train.out_dir={out}")[0] == 0
    assert (out / MARKER).is_file() and not (out / LOCK).exists()  # marked as a run, unlocked at the end
    (out / "notes.txt").write_text("mine")
    (out / "summary.json").write_text("stale")
    code, captured, err = cli(capsys, "pretrain", *QUICK, f"train.out_dir={out}", "--overwrite")
    assert code == 0, err
    assert (out / "notes.txt").read_text() == "mine" and "kept 1 entries" in captured
    assert json.loads((out / "summary.json").read_text())["step"] == 2
    assert set(RUN_ENTRIES) >= {p.name for p in out.iterdir()} - {"notes.txt"}


def test_a_folder_in_use_is_refused_with_the_holders_process_id(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(capsys, "pretrain", *QUICK, f"train.out_dir={out}")[0] == 0
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / LOCK).write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(),
                                            "started": process_start(holder.pid)}))
        for flag in ("--resume", "--overwrite"):
            code, _, err = cli(capsys, "pretrain", *QUICK, "train.max_steps=4", f"train.out_dir={out}", flag)
            assert code == 1 and f"in use by process {holder.pid}" in err, err
        assert (out / "checkpoints" / "last.ckpt").is_file()  # the refused --overwrite removed nothing
    finally:
        holder.kill()
        holder.wait()
    # the holder is gone: its lock is stale, and the resumed run takes it over
    code, captured, err = cli(capsys, "pretrain", *QUICK, "train.max_steps=4", f"train.out_dir={out}", "--resume")
    assert code == 0, err
    assert f"stale lock of process {holder.pid}" in captured and not (out / LOCK).exists()


def test_a_lock_whose_process_id_was_reused_is_stale(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(capsys, "pretrain", *QUICK, f"train.out_dir={out}")[0] == 0
    # this very process is alive, but it started at another time than the lock says: not the holder
    (out / LOCK).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": "1"}))
    code, captured, err = cli(capsys, "pretrain", *QUICK, "train.max_steps=3", f"train.out_dir={out}", "--resume")
    assert code == 0, err
    assert "stale lock" in captured


@pytest.mark.parametrize("override", ["optim.grad_clip=-1", "train.val_every=0", "data.num_workers=-1", "optim.lr=-1"])
def test_a_number_out_of_range_is_refused_before_anything_is_written(tmp_path, capsys, override):
    out = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", *QUICK, override, f"train.out_dir={out}")
    assert code == 1 and override.split("=")[0] in err and "must be" in err and "Traceback" not in err
    assert not out.exists()


def test_resume_from_a_checkpoint_that_is_not_one_or_holds_another_model_is_refused(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli(capsys, "pretrain", *QUICK, f"train.out_dir={out}")[0] == 0
    code, _, err = cli(capsys, "pretrain", *QUICK, "model.encoder.dim=32", "model.encoder.norm=batch",
                       "train.max_steps=4", f"train.out_dir={out}", "--resume")
    assert code == 1 and "holds another model" in err and "model.encoder.dim: 64 in the checkpoint, 32 now" in err
    ckpt = out / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated
    code, _, err = cli(capsys, "pretrain", *QUICK, "train.max_steps=4", f"train.out_dir={out}", "--resume")
    assert code == 1 and "could not be read as a seqcpc checkpoint" in err and "Traceback" not in err


def test_an_out_dir_under_a_file_is_one_line_and_debug_shows_the_traceback(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = cli(capsys, "pretrain", *QUICK, f"train.out_dir={tmp_path / 'file' / 'run'}")
    assert code == 1 and "Traceback" not in err and "SEQCPC_DEBUG=1" in err
    with pytest.raises(Exception):  # --debug lets the error through, traceback and all, for a bug report
        cli(capsys, "--debug", "pretrain", *QUICK, f"train.out_dir={tmp_path / 'file' / 'run'}")
