"""recipes/speech/curves.py on a tiny eSpeak corpus: a run probed at two points, killed mid-curve and run again:
the point already probed is kept, the run resumes, and its kept checkpoints equal an uninterrupted run's bit for
bit. (Several runs take turns point by point; the same code, so one run is tested.)"""
import json
import signal
import subprocess
import sys
import time

import torch
import yaml

from conftest import ROOT, run_cli, run_script
from test_recipe_speech import TINY
from seqcpc.train.checkpoint import read_checkpoint

STEPS = [8, 16]
QUICK_PROBES = {"episodes": 20, "phone_frames": 2000, "units": 4, "knn": 3, "abx_files_per_speaker": 1,
                "utterances_per_speaker": 3, "phone_utterances_per_speaker": 2, "windows_per_utterance": 1,
                "cpc_z": False}


def test_curves_survive_a_kill_and_give_every_point_once(tmp_path):
    options = {**TINY["prepare"]["options"], "out": str(tmp_path / "c")}
    base = {**TINY, "prepare": {**TINY["prepare"], "options": options},
            "data": {**TINY["data"], "manifest": str(tmp_path / "c" / "manifest.tsv")},
            "train": {**TINY["train"], "deterministic": True, "log_every": 4, "val_every": 8, "ckpt_every": 4},
            "probe": {**TINY["probe"], **QUICK_PROBES, "ceiling_steps": 0}}
    (tmp_path / "base.yaml").write_text(yaml.safe_dump(base))
    out = tmp_path / "curves"
    curves = {"pretrain": str(tmp_path / "base.yaml"), "steps": STEPS, "out_dir": str(out),
              "runs": {"plain": []}}
    config = tmp_path / "curves.yaml"
    config.write_text(yaml.safe_dump(curves, sort_keys=False))

    proc = subprocess.Popen([sys.executable, "recipes/speech/curves.py", "--config", str(config)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first = out / "plain" / "point-8.json"
    deadline = time.time() + 300
    while not first.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    kept = first.read_text()

    log = run_script("recipes/speech/curves.py", config)
    assert "plain: pretraining to step 8" not in log and first.read_text() == kept  # not probed twice
    rows = json.loads((out / "curves.json").read_text())
    trained = [(r["run"], r["step"]) for r in rows if r["features"] == "cpc"]
    assert trained == [("plain", 8), ("plain", 16)]
    # the baselines once, at the first point; the training minutes grow, the run's own
    assert sorted(r["features"] for r in rows if r["step"] is None) == ["mfcc13", "random_init"]
    minutes = [r["train_min"] for r in rows if r["features"] == "cpc"]
    assert 0 < minutes[0] < minutes[1]
    assert all(0 <= r["speaker"] <= 1 for r in rows)
    assert (out / "curve_speaker.png").is_file() and (out / "curve_phone.png").is_file()
    assert "| plain | cpc | 16 |" in (out / "curves.md").read_text()

    straight = tmp_path / "straight"  # the same run, uninterrupted
    run_cli("pretrain", "--config", tmp_path / "base.yaml", "train.max_steps=16", f"train.out_dir={straight}")
    a = read_checkpoint(straight / "checkpoints" / "last.ckpt")
    b = read_checkpoint(out / "plain" / "checkpoints" / "step-16.ckpt")
    for name, tensor in a["model"].items():
        assert torch.equal(b["model"][name], tensor), name
