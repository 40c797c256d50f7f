import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# CPC's task for the tiny model: a short horizon and few negatives
TINY_TASK = {"predictor": {"steps": 6}, "loss": {"num_negatives": 32}}
# a tiny synthetic run that takes a few seconds on 2 CPU cores, with any objective (TINY: with CPC's tiny task)
TINY_ANY = ["model.size=synthetic_tiny", "data.window=2048", "data.batch_size=8", "data.num_sequences=256",
        "data.val_sequences=32", "optim.lr=2e-3", "optim.warmup_steps=5", "train.log_every=5"]
TINY = [*TINY_ANY, "objective.predictor.steps=6", "objective.loss.num_negatives=32"]
# two CPU processes over gloo; a collective that waits two minutes for the other rank fails the run with a message
# (a rank that stopped, or never entered it) instead of hanging for Fabric's default half hour
DDP2 = ["fabric.accelerator=cpu", "fabric.devices=2", "fabric.strategy=ddp", "fabric.timeout_s=120"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def run_cli(*args, check=True, timeout=300, **popen):
    """Run the real `seqcpc` entry point in a fresh interpreter; returns the CompletedProcess. A run that takes
    longer than `timeout` seconds is stopped with the ranks it started (its own process group) and fails the test
    with what it printed, ending with the Python stack of every thread of every process (faulthandler), which
    says where each one waited."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1"}
    command = [sys.executable, "-m", "seqcpc", *map(str, args)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=env,
                          start_new_session=True, **popen) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except BaseException as stop:  # the timeout, or Ctrl-C in pytest (which the run's own session does not get)
            out, err = stop_group(proc, dump=isinstance(stop, subprocess.TimeoutExpired))
            if not isinstance(stop, subprocess.TimeoutExpired):
                raise
            raise AssertionError(f"seqcpc {' '.join(map(str, args))} did not finish in {timeout} s; its output:\n"
                                 f"{out}\n{err}") from None
    if check and proc.returncode != 0:
        raise AssertionError(f"seqcpc {' '.join(map(str, args))} failed ({proc.returncode}):\n{out}\n{err}")
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def stop_group(proc, dump: bool) -> tuple:
    """Kill the process group that `proc` leads (a run and the ranks it started); with `dump`, SIGABRT first, on
    which faulthandler (PYTHONFAULTHANDLER=1) prints each process's Python stacks. Returns the rest of its output."""
    for sig in [signal.SIGABRT] * dump + [signal.SIGKILL]:
        with contextlib.suppress(ProcessLookupError):  # all of them gone already
            os.killpg(proc.pid, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.communicate(timeout=10)
    return proc.communicate()


def cli(capsys, *args):
    """Run `seqcpc ...` in this process (for refusals that stop before any training step); returns
    (exit code, stdout, stderr)."""
    from seqcpc.cli import main

    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_recipe(name: str, config):
    """Run recipes/<name>/run.py on a config file in a fresh interpreter; returns its stdout."""
    return run_script(f"recipes/{name}/run.py", config)


def run_script(script: str, config):
    """Run a recipe script (e.g. recipes/image/table.py) on a config file in a fresh interpreter; returns its
    stdout."""
    proc = subprocess.run([sys.executable, script, "--config", str(config)], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout
