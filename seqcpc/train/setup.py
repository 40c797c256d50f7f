"""What the loop needs of Fabric and the run folder around its steps: the Fabric of a config, deterministic mode,
the run folder's lock, reports of the data used, summary.json, and the checks and teardown of several ranks."""
import gc
import json
import math
import os
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import torch
from lightning_fabric import Fabric
from lightning_fabric.strategies import STRATEGY_REGISTRY, DDPStrategy

from seqcpc.config import Config, FabricConfig
from seqcpc.errors import ConfigError, RunDirError
from seqcpc.fields import refuse_idle
from seqcpc.files import atomic_write_text
from seqcpc.train.run_dir import RunFolder, open_run_dir


def resolve_precision(cfg: FabricConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    gpu = torch.cuda.is_available() and cfg.accelerator in ("auto", "cuda", "gpu")
    # on CPUs bf16 is much slower than fp32 without bf16 instructions, faster with them (AVX512-BF16, AMX;
    # benchmarks/results/step_time_cpu_bf16.md): fp32 is the safe default, bf16-mixed can be asked for
    return "bf16-mixed" if gpu else "32-true"


def strategy(cfg: FabricConfig):
    """What Fabric is given as its strategy: a ddp strategy (ddp, ddp_spawn, ddp_fork, ...) built with
    fabric.timeout_s as its collectives' timeout, or any other name as it is (fabric.timeout_s left at its
    default: those strategies are not given it)."""
    entry = STRATEGY_REGISTRY[cfg.strategy] if cfg.strategy in STRATEGY_REGISTRY else None
    if entry is not None and entry["strategy"] is DDPStrategy:
        return DDPStrategy(**entry["init_params"], timeout=timedelta(seconds=cfg.timeout_s))
    refuse_idle(cfg, "fabric", {"timeout_s": (False, "fabric.strategy=ddp (or ddp_spawn, ddp_fork)")})
    return cfg.strategy


def make_fabric(cfg: FabricConfig, loggers=None) -> Fabric:
    return Fabric(accelerator=cfg.accelerator, devices=cfg.devices, strategy=strategy(cfg),
                  num_nodes=cfg.num_nodes, precision=resolve_precision(cfg), loggers=loggers)


@contextmanager
def deterministic_mode(on: bool):
    """With `on` (train.deterministic): one thread and torch's deterministic algorithms inside the block; the
    settings before it are restored after."""
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        if on:
            # multi-threaded CPU kernels sum in an order that varies from run to run; one thread does not
            torch.set_num_threads(1)
            torch.use_deterministic_algorithms(True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what cuBLAS needs to be deterministic
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def tensorboard_loggers(cfg: Config) -> list:
    """A TensorBoard logger writing to <out_dir>/tensorboard when train.tensorboard is set."""
    if not cfg.train.tensorboard:
        return []
    from lightning_fabric.loggers import TensorBoardLogger

    try:
        return [TensorBoardLogger(root_dir=cfg.train.out_dir, name="tensorboard", version="")]
    except ModuleNotFoundError as err:
        raise ConfigError("train.tensorboard=true needs the tensorboard (or tensorboardX) package: "
                          "pip install tensorboard") from err


def prepare_run_dir(fabric, out: Path, resume: bool, overwrite: bool) -> RunFolder | None:
    """Check, lock and (for --overwrite) clear the run folder on rank 0; every rank raises the same refusal.
    Returns the folder held (None on other ranks)."""
    folder, refusal = None, None
    if fabric.is_global_zero:
        try:
            folder = open_run_dir(out, resume, overwrite, log=lambda m: fabric.print(m, flush=True))
        except RunDirError as err:
            refusal = str(err)
    refusal = fabric.broadcast(refusal, src=0)
    if refusal:
        raise RunDirError(refusal)
    return folder


def ranks_param_spread(fabric, model) -> float:
    """Largest difference, across ranks, of the parameters' sum and sum of squares (0 when DDP kept them equal)."""
    flat = torch.cat([p.detach().double().flatten() for p in model.parameters()])
    stats = torch.stack([flat.sum(), flat.square().sum()])
    high = fabric.all_reduce(stats.clone(), reduce_op="max")  # all_reduce works in place: one copy each
    low = fabric.all_reduce(stats.clone(), reduce_op="min")
    return (high - low).abs().max().item()


def report_skipped(fabric, out: Path, datasets: dict) -> None:
    """Log what share of its corpus each dataset uses (`usage()`, e.g. short clips left out) and list unreadable
    files (bad_files.txt)."""
    bad = []
    for name, ds in datasets.items():
        if hasattr(ds, "usage"):  # e.g. "using 812 of 1000 clips (93% of the audio); 188 shorter than ..."
            fabric.print(f"{name} data: {ds.usage()}", flush=True)
        bad += [f"{name}\t{b}\n" for b in getattr(ds, "bad_files", [])]
    if bad:
        fabric.print(f"skipped {len(bad)} unreadable files (listed in bad_files.txt), e.g. {bad[0].strip()}",
                     flush=True)
        if fabric.is_global_zero:
            atomic_write_text(out / "bad_files.txt", "".join(bad))


def summary_json(summary: dict) -> str:
    """The text of summary.json: a number that is not finite (e.g. the mean loss of logged steps that were all
    skipped) is written as null, so that the file is JSON for every reader."""
    def finite(value):
        if isinstance(value, dict):
            return {k: finite(v) for k, v in value.items()}
        return None if isinstance(value, float) and not math.isfinite(value) else value

    return json.dumps(finite(summary), indent=2, allow_nan=False)


def close_distributed(fabric, state: dict) -> None:
    """Let every rank finish, then take the process group down: a rank that reaches interpreter exit while
    another still writes its files can abort in the communication library's teardown, which kills the run.

    The set-up model in `state` is unwrapped first. DDP's reducer holds the process group, and when the reducer
    is the last to let go, the group's destructor joins gloo's worker threads while Python's lock is held;
    a worker still freeing a finished collective's tensors waits for that lock, and the rank hangs for ever
    (seen here once in a few hundred two-process runs; pytorch/pytorch#56297). Freed while the process group
    is still registered, the reducer only drops a reference; destroy_process_group then frees the group with
    the lock released."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        state["model"] = state["model"].module  # the plain module, without DDP's wrapper and reducer
        gc.collect()  # the wrapper's reference cycles, if any, go now, not later under the lock
        fabric.barrier()
        torch.distributed.destroy_process_group()
