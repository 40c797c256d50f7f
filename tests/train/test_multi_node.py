"""Several nodes, played by processes on this machine: each `seqcpc pretrain` process stands for one node
(fabric.num_nodes=2, fabric.devices=1), started as a cluster launcher would start it, with the address and port of
node 0 and its own NODE_RANK (what Fabric's LightningEnvironment reads), talking gloo over loopback. A run on two
nodes keeps the ranks in step and writes its files once; a run that loses a node fails in bounded time, keeps a
loadable checkpoint and resumes on both nodes; a node that never joins fails the others after fabric.timeout_s
instead of Fabric's default half hour."""
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

from audio_fixtures import toy_speech_corpus
from conftest import ROOT, TINY, TINY_ANY, cli
from data_prep.shards import pack
from seqcpc.train.checkpoint import read_checkpoint

NODES = ["fabric.accelerator=cpu", "fabric.devices=1", "fabric.num_nodes=2", "fabric.strategy=ddp"]
# what would make Fabric take this machine for a SLURM or torchrun job, or a process it did not start for one
LAUNCHERS = ("SLURM_", "TORCHELASTIC_", "LOCAL_RANK", "RANK", "WORLD_SIZE", "GROUP_RANK", "LOCAL_WORLD_SIZE")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nodes(args: list, logs, nodes=(0, 1)) -> list:
    """Start the `nodes` of a two-node run of `args`, each printing to its own file under `logs`; returns the
    processes. Each is the leader of its own process group, so that one node can be killed with its ranks."""
    port = free_port()
    procs = []
    for node in nodes:
        env = {k: v for k, v in os.environ.items() if not k.startswith(LAUNCHERS)}
        # one thread each: the two "nodes" share this machine's cores, where real nodes would have their own
        env.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), NODE_RANK=str(node), OMP_NUM_THREADS="1",
                   PYTHONUNBUFFERED="1", PYTHONFAULTHANDLER="1")
        with open(logs / f"node{node}.out", "w") as out, open(logs / f"node{node}.err", "w") as err:
            procs.append(subprocess.Popen([sys.executable, "-m", "seqcpc", "pretrain", *args], cwd=ROOT, env=env,
                                          stdout=out, stderr=err, start_new_session=True))
    return procs


def wait_all(procs: list, logs, timeout: float = 120) -> list:
    """The nodes' exit codes. A node still running after `timeout` seconds fails the test with every node's
    output, which ends with the Python stacks of the nodes that were still running (SIGABRT, faulthandler)."""
    deadline = time.time() + timeout
    try:
        return [p.wait(timeout=max(deadline - time.time(), 0.1)) for p in procs]
    except subprocess.TimeoutExpired:
        for p in procs:
            stop(p, dump=True)
        raise AssertionError(f"a node did not finish in {timeout} s:\n{outputs(logs)}") from None
    finally:
        for p in procs:
            stop(p, dump=False)


def stop(proc, dump: bool) -> None:
    """Kill a node that still runs, and the processes it started; with `dump`, SIGABRT first, on which
    faulthandler prints each process's Python stacks to its node's error file."""
    for sig in [signal.SIGABRT] * dump + [signal.SIGKILL]:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)


def outputs(logs) -> str:
    return "\n".join(f"--- {f.name}\n{f.read_text()}" for f in sorted(logs.glob("node*")))


def run_nodes(args: list, logs) -> None:
    codes = wait_all(start_nodes(args, logs), logs)
    assert codes == [0, 0], outputs(logs)


def test_a_run_on_two_nodes_keeps_them_in_step_and_writes_once(tmp_path):
    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    run_nodes([*TINY, *NODES, "fabric.timeout_s=60", "train.max_steps=10", "train.val_every=10",
               f"train.out_dir={out}"], logs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == 10
    assert summary["ranks_param_spread"] == 0.0  # gradients averaged across the nodes
    # node 1 writes nothing: each file once, each metrics row once (Fabric prints the progress lines on each
    # node's first process; the closing line comes from rank 0 alone)
    assert "done: step 10" in (logs / "node0.out").read_text()
    assert "done:" not in (logs / "node1.out").read_text()
    assert sorted(p.name for p in out.iterdir()) == [".seqcpc_run", "checkpoints", "config.yaml", "curves.png",
                                                     "metrics.csv", "summary.json"]
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["last.ckpt"]
    rows = (out / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["5", "10", "10"]  # train 5, train 10, val 10


def test_a_run_that_loses_a_node_fails_and_resumes_on_both_nodes(tmp_path):
    """SIGKILL node 1 once a checkpoint exists: node 0 fails by itself (gloo raises when its peer's connection
    drops, or fabric.timeout_s runs out) and keeps a checkpoint that loads; both nodes restarted with --resume go
    on from its step and end in step with each other."""
    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    ckpt = out / "checkpoints" / "last.ckpt"
    args = [*TINY, *NODES, "fabric.timeout_s=20", "train.val_every=1000", "train.ckpt_every=5",
            f"train.out_dir={out}"]
    node0, node1 = start_nodes([*args, "train.max_steps=100000"], logs)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and node0.poll() is None:
        time.sleep(0.05)
    assert ckpt.exists(), outputs(logs)
    os.killpg(node1.pid, signal.SIGKILL)
    code0, code1 = wait_all([node0, node1], logs, timeout=60)
    assert code1 == -signal.SIGKILL and code0 not in (0, -signal.SIGKILL), outputs(logs)
    saved = read_checkpoint(ckpt)["step"]
    assert saved > 0 and saved % 5 == 0

    logs_resumed = tmp_path / "logs_resumed"
    logs_resumed.mkdir()
    run_nodes([*args, f"train.max_steps={saved + 10}", "--resume"], logs_resumed)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["step"] == saved + 10
    assert summary["ranks_param_spread"] == 0.0
    assert f"resumed from {ckpt} at step {saved}" in (logs_resumed / "node0.out").read_text()
    assert read_checkpoint(ckpt)["step"] == saved + 10


def test_a_node_that_never_joins_fails_the_others_after_fabric_timeout_s(tmp_path):
    """Node 1 never starts: node 0 waits fabric.timeout_s for it (not Fabric's default half hour), then fails
    before the run folder is touched. A collective that a live rank never enters ends the same way."""
    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    (node0,) = start_nodes([*TINY, *NODES, "fabric.timeout_s=2", f"train.out_dir={out}"], logs, nodes=[0])
    assert wait_all([node0], logs) != [0]  # with Fabric's default it would still wait when wait_all gives up
    assert re.search(r"Timed out after \d+ seconds waiting for clients\. 1/2 clients joined", outputs(logs))
    assert not out.exists()


def test_fabric_timeout_s_is_refused_without_a_ddp_strategy(tmp_path, capsys):
    code, _, err = cli(capsys, "pretrain", *TINY, "fabric.timeout_s=60", f"train.out_dir={tmp_path}")
    assert code == 1 and "fabric.timeout_s=60.0 does nothing without fabric.strategy=ddp" in err
    assert not any(tmp_path.iterdir())


def test_two_nodes_train_on_shards_each_reading_its_own(tmp_path):
    """Shards split between nodes: each node's rank says which loader slot it reads (slots hold disjoint shards:
    tests/audio/test_shards.py), and the run trains in step on both."""
    corpus = toy_speech_corpus(tmp_path / "corpus", speakers=4, heldout=1, utts=8).parent
    pack(corpus, tmp_path / "shards", 0.1, "shuffled", 0, ["train", "test"], "stop", log=lambda m: None)
    out, logs = tmp_path / "run", tmp_path / "logs"
    logs.mkdir()
    run_nodes([*TINY_ANY, *NODES, "data.kind=shards", f"data.shards={tmp_path / 'shards'}", "data.batch_size=2",
               "objective.predictor.steps=4", "objective.loss.num_negatives=8", "fabric.timeout_s=60",
               "train.max_steps=6", "train.val_every=6", f"train.out_dir={out}"], logs)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["ranks_param_spread"] == 0.0
    assert "training data: " in (logs / "node0.out").read_text()
    for node in (0, 1):
        assert f"this rank reads slot {node} of 2" in (logs / f"node{node}.out").read_text(), outputs(logs)
