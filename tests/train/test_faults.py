"""Faults injected on purpose: bad audio in a corpus, a crash or a full disk while a checkpoint or any other file
is written."""
import errno
import os
import pathlib
import time
from contextlib import nullcontext

import numpy as np
import pytest
import soundfile as sf
import torch
from lightning_fabric import Fabric

from audio_fixtures import tone, toy_speech_corpus, write
from seqcpc.train.checkpoint import load_model, read_checkpoint, save_checkpoint
from seqcpc.builders import build_model
from seqcpc.config import load_config, to_dict
from seqcpc.errors import CheckpointError
from seqcpc.audio.manifest import Utterance, read_manifest, write_manifest
from seqcpc.errors import DataError
from seqcpc.audio.windows import WindowDataset

from conftest import TINY, cli, run_cli
from seqcpc.files import atomic_write_text

SPEECH = ["data.kind=manifest", "model.size=audio_paper", "model.encoder.dim=16", "model.context.dim=16",
          "objective.predictor.steps=4", "objective.loss.num_negatives=16", "data.window=8000", "data.batch_size=4",
          "train.max_steps=6", "train.val_batches=2", "train.log_every=2"]


def corrupt(manifest, damage: dict):
    """Damage some files of a toy corpus: {utterance id: kind}."""
    root = manifest.parent
    rows = {r.id: r for r in read_manifest(manifest)}
    for uid, kind in damage.items():
        path = root / rows[uid].path
        if kind == "missing":
            path.unlink()
        elif kind == "empty":
            path.write_bytes(b"")
        elif kind == "not_audio":
            path.write_bytes(b"<html>this is not audio</html>" * 50)
        elif kind == "truncated":
            data = path.read_bytes()
            path.write_bytes(data[: len(data) // 3])
        elif kind == "nan":
            x = tone(rows[uid].duration)
            x[::100] = np.nan
            sf.write(str(path), x, 16000, format="WAV", subtype="FLOAT")  # float NaNs behind a .flac name
    return manifest


@pytest.fixture
def damaged(tmp_path):
    manifest = toy_speech_corpus(tmp_path / "c", speakers=4, heldout=0, utts=6, seconds=1.0)
    # a stereo 44.1 kHz file mixed into the 16 kHz corpus is fine, not a fault
    write(tmp_path / "c" / "s0" / "s0_u5.flac", tone(1.0, rate=44100, channels=2), rate=44100)
    rows = [r if r.id != "s0_u5" else Utterance(r.id, r.path, r.speaker, r.split, 1.0, 44100, 2, 44100)
            for r in read_manifest(manifest)]
    write_manifest(manifest, rows)
    return corrupt(manifest, {"s0_u2": "missing", "s1_u2": "empty", "s1_u3": "not_audio", "s2_u2": "truncated",
                              "s3_u3": "nan"})


def test_the_loader_skips_bad_files_and_names_them(damaged, capfd):
    ds = WindowDataset(damaged, ["train"], window=8000, sample_rate=16000)
    listed = "\n".join(ds.bad_files)
    assert len(ds.bad_files) == 3 and all(u in listed for u in ("s0_u2", "s1_u2", "s1_u3"))
    assert len(ds) == 16 - 3
    items = [ds[i] for i in range(len(ds))]
    assert all(x.shape == (1, 8000) and torch.isfinite(x).all() for x, _ in items)
    warned = capfd.readouterr().err
    assert "s2_u2.flac" in warned and "s3_u3.flac" in warned and "skipping a window" in warned


def test_the_loader_stops_at_a_bad_file_when_asked(damaged):
    with pytest.raises(DataError, match="s0_u2.flac"):
        WindowDataset(damaged, ["train"], window=8000, sample_rate=16000, on_bad_file="stop")


def test_pretraining_on_a_damaged_corpus_skips_and_reports(damaged, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("pretrain", *SPEECH, f"data.manifest={damaged}", f"train.out_dir={out}")
    assert "skipped 3 unreadable files" in proc.stdout
    report = (out / "bad_files.txt").read_text()
    assert "s0_u2" in report and "s1_u3" in report
    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["step"] == 6


def test_a_bad_file_met_in_a_worker_stops_with_its_name_not_a_traceback(tmp_path):
    manifest = toy_speech_corpus(tmp_path / "c", speakers=2, heldout=0, utts=6, seconds=1.0)
    corrupt(manifest, {"s0_u3": "truncated"})
    proc = run_cli("pretrain", *SPEECH, f"data.manifest={manifest}", f"train.out_dir={tmp_path / 'run'}",
                   "data.on_bad_file=stop", "data.num_workers=1", "data.batch_size=2", check=False)
    assert proc.returncode == 1 and "s0_u3.flac" in proc.stderr
    assert "Traceback" not in proc.stderr


def saved_state(tmp_path):
    cfg = load_config(None, TINY)
    model = build_model(cfg)
    fabric = Fabric(accelerator="cpu", devices=1)
    path = tmp_path / "last.ckpt"
    save_checkpoint(fabric, path, {"model": model, "step": 1, "config": to_dict(cfg)})
    return fabric, model, path


def test_a_crash_between_write_and_rename_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    fabric, model, path = saved_state(tmp_path)
    before = path.read_bytes()

    def crash(*_):
        raise OSError(errno.EIO, "simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(CheckpointError, match="previous checkpoint is kept"):
        save_checkpoint(fabric, path, {"model": model, "step": 2, "config": {}})
    assert path.read_bytes() == before and not list(tmp_path.glob("*.tmp"))
    assert read_checkpoint(path)["step"] == 1 and load_model(path) is not None


def test_a_full_disk_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    fabric, model, path = saved_state(tmp_path)

    def disk_full(self, target, state):  # a part of the file reaches the disk, then the write fails
        with open(target, "wb") as f:
            f.write(b"PK\x03\x04 partial checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Fabric, "save", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device.*previous checkpoint is kept"):
        save_checkpoint(fabric, path, {"model": model, "step": 2, "config": {}})
    monkeypatch.undo()
    assert read_checkpoint(path)["step"] == 1 and not list(tmp_path.glob("*.tmp"))


def disk_full(target, *_, **__):
    """A write (np.save's, Path.write_text's) that puts a part of its bytes on disk, then finds the disk full."""
    with open(target, "wb") if isinstance(target, (str, os.PathLike)) else nullcontext(target) as f:
        f.write(b"partial")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_during_extract_names_the_file_and_keeps_the_previous_one(tmp_path, capsys, monkeypatch):
    _, _, ckpt = saved_state(tmp_path)
    out = tmp_path / "feats"
    assert cli(capsys, "extract", "--checkpoint", ckpt, "--out", out)[0] == 0
    before = (out / "z.npy").read_bytes()
    monkeypatch.setattr(np, "save", disk_full)
    code, _, err = cli(capsys, "extract", "--checkpoint", ckpt, "--out", out)
    assert code == 1 and f"could not write file {out / 'z.npy'} (No space left on device)" in err
    assert "the previous file is kept" in err and "Traceback" not in err
    monkeypatch.undo()
    assert (out / "z.npy").read_bytes() == before and not list(out.glob("*.tmp"))


def test_a_full_disk_during_a_text_write_names_the_file_and_keeps_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "summary.json"
    atomic_write_text(path, "old")
    monkeypatch.setattr(pathlib.Path, "write_text", disk_full)
    with pytest.raises(OSError, match=f"could not write file {path} .No space left on device.; the previous file is "
                                      f"kept") as caught:
        atomic_write_text(path, "new")
    monkeypatch.undo()
    assert caught.value.errno == errno.ENOSPC and path.read_text() == "old" and not list(tmp_path.glob("*.tmp"))


WRITER = """
import sys, torch
from lightning_fabric import Fabric
from seqcpc.train.checkpoint import save_checkpoint
fabric = Fabric(accelerator="cpu", devices=1)
weights = {"w": torch.zeros(20_000_000)}  # 80 MB: each write takes long enough to be killed in the middle
for step in range(1, 1000):
    weights["w"].fill_(step)
    print(f"writing {step}", flush=True)
    save_checkpoint(fabric, sys.argv[1], {"model": weights, "step": step})
"""


def test_a_real_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
                            cwd=os.path.dirname(os.path.dirname(__file__)))
    partial = path.with_name("last.ckpt.tmp")
    for line in proc.stdout:  # the third checkpoint has started ...
        if line.strip() == "writing 3":
            break
    deadline = time.time() + 30
    while not (partial.exists() and partial.stat().st_size > 0) and time.time() < deadline:
        time.sleep(0.001)  # ... and its bytes are reaching the disk, not yet renamed: kill it now
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL and partial.exists()  # it died with a torn file on disk
    ckpt = read_checkpoint(path)
    assert ckpt["step"] == 2 and bool((ckpt["model"]["w"] == 2).all())  # the last complete one, whole
