"""Pretraining with lightning-fabric: setup, train, validate, checkpoint.

The same code runs on a CPU, one GPU, or many GPUs and nodes: `fabric.*` in the config goes straight to
Fabric. The loop knows no modality and no objective: the modality's registry entry (seqcpc.modalities) checks
the config and gives the model, the datasets and the batch sampler; the model (a seqcpc.core.model.Pretrainable)
returns (loss, metrics), says its chance-level loss and gets its per-step and per-epoch hooks. Randomness is
reseeded at every step from (seed, step, rank), so a resumed run draws the same negatives as an uninterrupted
one on any number of devices.
"""
import itertools
import json
import math
import os
import time
from functools import partial
from pathlib import Path

import torch
import yaml
from lightning_fabric import Fabric

from seqcpc import modalities
from seqcpc.config import Config, FabricConfig, to_dict
from seqcpc.errors import CheckpointError, ConfigError, RunDirError, TrainingError
from seqcpc.files import atomic_write_text
from seqcpc.train.checkpoint import check_resumable, load_matching_weights, save_checkpoint
from seqcpc.train.loaders import make_loader
from seqcpc.train.progress import MetricsLog, Progress, headline, metrics_row, plot_curves, with_flops
from seqcpc.train.run_dir import check_run_dir, open_run_dir


def lr_factor(step: int, warmup: int, max_steps: int, min_ratio: float) -> float:
    """Linear warm-up to the peak, then cosine decay to min_ratio of it."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(max_steps - warmup, 1), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 1009 + rank


def resolve_precision(cfg: FabricConfig) -> str:
    if cfg.precision != "auto":
        return cfg.precision
    gpu = torch.cuda.is_available() and cfg.accelerator in ("auto", "cuda", "gpu")
    # on CPUs bf16 is much slower than fp32 without bf16 instructions, faster with them (AVX512-BF16, AMX;
    # benchmarks/results/step_time_cpu_bf16.md): fp32 is the safe default, bf16-mixed can be asked for
    return "bf16-mixed" if gpu else "32-true"


def make_fabric(cfg: FabricConfig, loggers=None) -> Fabric:
    return Fabric(accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
                  num_nodes=cfg.num_nodes, precision=resolve_precision(cfg), loggers=loggers)


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


def prepare_run_dir(fabric, out: Path, resume: bool, overwrite: bool):
    """Check, lock and (for --overwrite) clear the run folder on rank 0; every rank raises the same refusal.
    Returns (checkpoint path, the lock or None on other ranks)."""
    lock, refusal = None, None
    if fabric.is_global_zero:
        try:
            lock = open_run_dir(out, resume, overwrite, log=lambda m: fabric.print(m, flush=True))
        except RunDirError as err:
            refusal = str(err)
    refusal = fabric.broadcast(refusal, src=0)
    if refusal:
        raise RunDirError(refusal)
    return out / "checkpoints" / "last.ckpt", lock


def mean_metrics(fabric, rows: list[dict]) -> dict:
    """The mean of each metric over `rows` (dicts of scalar tensors), averaged over the ranks."""
    if not rows:
        return {}
    keys = list(rows[0])  # the objective's order; every rank reports the same keys
    mean = torch.stack([torch.stack([r[k].float() for k in keys]) for r in rows]).mean(0)
    mean = fabric.all_reduce(mean.to(fabric.device), reduce_op="mean").cpu()
    return dict(zip(keys, mean.tolist()))


@torch.no_grad()
def validate(fabric, model, loader, seed: int, max_batches: int = 0) -> dict:
    """{"loss": ..., metric: ...} over the validation batches (all, or the first max_batches), on all ranks."""
    model.eval()
    torch.manual_seed(seed)  # the same negatives at every validation
    rows = []
    for batch in itertools.islice(loader, max_batches or None):
        loss, metrics = model(*batch)
        rows.append({"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}})
    model.train()
    return mean_metrics(fabric, rows)


def clip_gradients(fabric, model, opt, max_norm: float, side: list) -> torch.Tensor:
    """Clip the gradients to max_norm; returns their total norm (before clipping, all parameters). The `side`
    parameters (online probes on detached features) are clipped as a group of their own, so a probe's gradient
    never shrinks the objective's step."""
    if not side:
        return fabric.clip_gradients(model, opt, max_norm=max_norm, error_if_nonfinite=False)
    norm = fabric.clip_gradients(model, opt, max_norm=math.inf, error_if_nonfinite=False)  # unscales (fp16)
    apart = {id(p) for p in side}
    main = [p for p in model.parameters() if id(p) not in apart and p.grad is not None]
    for group in (main, [p for p in side if p.grad is not None]):
        if group:
            torch.nn.utils.clip_grad_norm_(group, max_norm, error_if_nonfinite=False)
    return norm


def train(fabric, cfg: Config, state: dict, loaders: dict, log: MetricsLog, ckpt_path: Path, hooks, clock) -> dict:
    """Run steps until train.max_steps; returns the last logged train and validation numbers. `clock()` gives the
    run's seconds so far (earlier parts of a resumed run included), which every checkpoint keeps."""
    model, opt, sched = state["model"], state["optimizer"], state["scheduler"]
    tc, sampler = cfg.train, loaders["sampler"]
    sampler.set_position(0)
    per_epoch = len(loaders["train"])
    progress = Progress(fabric, state["step"], tc.max_steps)
    flops_per_step = None
    running, last = [], {}
    while state["step"] < tc.max_steps:
        epoch, done = divmod(state["step"], per_epoch)
        sampler.set_position(epoch, done)
        hooks.on_epoch_start(epoch)
        for batch in loaders["train"]:
            step = state["step"]
            torch.manual_seed(step_seed(tc.seed, step, fabric.global_rank))

            def forward_backward():
                loss, metrics = model(*batch)  # (x, groups[, lengths]): x as the encoder reads it
                fabric.backward(loss)
                return loss, metrics

            if flops_per_step is None and not tc.compile:  # count the FLOPs of the first step, then just run
                (loss, metrics), flops_per_step = with_flops(forward_backward)
            else:
                loss, metrics = forward_backward()
            norm = clip_gradients(fabric, model, opt, cfg.optim.grad_clip or math.inf, hooks.side_parameters())
            bad = ~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)
            if fabric.all_reduce(bad.float(), reduce_op="sum") > 0:  # every rank skips together
                state["bad_steps"] += 1
                fabric.print(f"warning: step {step}: non-finite loss or gradients, step skipped "
                             f"({state['bad_steps']} so far, limit {tc.max_bad_steps})", flush=True)
                if state["bad_steps"] > tc.max_bad_steps:
                    kept = f"the last good checkpoint is {ckpt_path}" if ckpt_path.exists() else "no checkpoint was written"
                    raise TrainingError(f"training stopped at step {step}: more than train.max_bad_steps="
                                        f"{tc.max_bad_steps} steps had non-finite loss or gradients; {kept}")
            else:
                opt.step()
                running.append({"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}})
            opt.zero_grad(set_to_none=True)
            sched.step()
            progress.count(len(batch[0]))
            state["step"] = step = step + 1
            hooks.on_step_end(step)

            if step % tc.log_every == 0 or step == tc.max_steps:
                mean = mean_metrics(fabric, running) or {"loss": math.nan}
                running = []
                rates, lr = progress.update(step, flops_per_step), sched.get_last_lr()[0]
                loss_mean = mean.pop("loss")
                fabric.print(f"step {step}/{tc.max_steps} | loss {loss_mean:.4f} | {headline(mean)} | lr {lr:.2e} | "
                             f"{progress.describe(rates)}", flush=True)
                log.write(metrics_row(step, "train", loss_mean, mean, lr=f"{lr:.3e}",
                                      samples_per_s=f"{rates['samples_per_s']:.2f}",
                                      elapsed_s=f"{rates['elapsed_s']:.1f}"))
                fabric.log_dict({"train/loss": loss_mean, **{f"train/{k}": v for k, v in mean.items()}, "lr": lr}, step)
                last["train_loss"] = loss_mean
            if step % tc.val_every == 0 or step == tc.max_steps:
                val = validate(fabric, model, loaders["val"], tc.seed, tc.val_batches)
                val_loss = val.pop("loss")
                fabric.print(f"step {step} | validation loss {val_loss:.4f} | {headline(val)}", flush=True)
                log.write(metrics_row(step, "val", val_loss, val))
                fabric.log_dict({"val/loss": val_loss, **{f"val/{k}": v for k, v in val.items()}}, step)
                last.update(val_loss=val_loss, val_metrics=val)
            if step % tc.ckpt_every == 0 or step == tc.max_steps:
                save_checkpoint(fabric, ckpt_path, {**state, "elapsed_s": clock()})  # the run's seconds so far
            if step >= tc.max_steps:
                break
    return last


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


def close_distributed(fabric) -> None:
    """Let every rank finish, then take the process group down: a rank that reaches interpreter exit while
    another still writes its files can abort in the communication library's teardown, which kills the run."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        fabric.barrier()
        torch.distributed.destroy_process_group()


def pretrain(cfg: Config, resume: bool = False, overwrite: bool = False) -> dict:
    entry = modalities.get(cfg.model.modality)
    positions = entry.check(cfg)
    out = Path(cfg.train.out_dir)
    check_run_dir(out, resume, overwrite)  # before Fabric starts processes or anything is written
    if cfg.train.init_from and not Path(cfg.train.init_from).is_file():
        raise ConfigError(f"train.init_from={cfg.train.init_from}: no such checkpoint file")
    if resume:
        check_resumable(out / "checkpoints" / "last.ckpt", cfg)
    fabric = make_fabric(cfg.fabric, tensorboard_loggers(cfg))
    fabric.launch()
    ckpt_path, lock = prepare_run_dir(fabric, out, resume, overwrite)
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        if cfg.train.deterministic:
            # multi-threaded CPU kernels sum in an order that varies from run to run; one thread does not
            torch.set_num_threads(1)
            torch.use_deterministic_algorithms(True)
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # what cuBLAS needs to be deterministic
        summary = run_training(fabric, cfg, out, ckpt_path, resume, entry, positions)
        close_distributed(fabric)
        return summary
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if lock is not None:
            lock.release()


def run_training(fabric, cfg: Config, out: Path, ckpt_path: Path, resume: bool, entry, positions: int) -> dict:
    t0 = time.time()
    fabric.seed_everything(cfg.train.seed, verbose=False)  # identical initial weights on every rank
    model = entry.build(cfg.model)
    train_ds, val_ds = entry.datasets(cfg.data, cfg.train.seed)
    report_skipped(fabric, out, {"training": train_ds, "validation": val_ds})
    loader = partial(make_loader, batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers,
                     world_size=fabric.world_size, rank=fabric.global_rank, seed=cfg.train.seed)
    samplers = [entry.batch_sampler(ds, cfg, fabric.world_size, fabric.global_rank, cfg.train.seed, train)
                if entry.batch_sampler else None for ds, train in ((train_ds, True), (val_ds, False))]
    train_loader, sampler = loader(train_ds, train=True, batch_sampler=samplers[0])
    val_loader, _ = loader(val_ds, train=False, batch_sampler=samplers[1])
    for name, dl in (("training", train_loader), ("validation", val_loader)):
        if len(dl) == 0:
            raise TrainingError(f"the {name} set has fewer items than one batch of {cfg.data.batch_size} "
                                f"on each of {fabric.world_size} devices")

    if cfg.train.init_from and not resume:
        load_matching_weights(model, cfg.train.init_from, log=lambda m: fabric.print(m, flush=True))
    hooks = model  # the plain module: hooks and chance level are not part of the DDP-wrapped forward
    hooks.use_fabric(fabric)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(
        lr_factor, warmup=cfg.optim.warmup_steps, max_steps=cfg.train.max_steps, min_ratio=cfg.optim.min_lr_ratio))
    if cfg.train.compile:
        model = torch.compile(model)  # Fabric keeps the compiled forward through DDP; checkpoints stay plain
    model, opt = fabric.setup(model, opt)
    train_loader, val_loader = fabric.setup_dataloaders(train_loader, val_loader, use_distributed_sampler=False)

    state = {"model": model, "optimizer": opt, "scheduler": sched, "step": 0, "bad_steps": 0, "config": to_dict(cfg)}
    before = 0.0  # seconds the run spent before this process, up to its checkpoint (a resumed run's earlier part)
    if resume:
        try:
            before = float(fabric.load(ckpt_path, state, weights_only=True).get("elapsed_s", 0.0))
        except (RuntimeError, KeyError, ValueError) as err:  # e.g. optimizer state of another shape
            raise CheckpointError(f"--resume: {ckpt_path} could not be loaded into this run ({err})") from err
        state["config"] = to_dict(cfg)
        fabric.print(f"resumed from {ckpt_path} at step {state['step']}", flush=True)
    if fabric.is_global_zero:
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    n_params = sum(p.numel() for p in model.parameters())
    fabric.print(f"seqcpc pretrain: {cfg.model.modality} model, {n_params / 1e6:.2f}M parameters, {positions} latent "
                 f"positions per sample, {fabric.world_size} device(s) on {fabric.device}, precision "
                 f"{resolve_precision(cfg.fabric)}, run folder {out}", flush=True)

    log = MetricsLog(out / "metrics.csv", fabric.is_global_zero, resume_step=state["step"] if resume else None)
    loaders = {"train": train_loader, "val": val_loader, "sampler": sampler}
    last = train(fabric, cfg, state, loaders, log, ckpt_path, hooks, clock=lambda: before + time.time() - t0)

    for logger in fabric.loggers:  # flush TensorBoard's event files
        logger.finalize("success")
    summary = {"step": state["step"], "bad_steps": state["bad_steps"], "world_size": fabric.world_size,
               "chance_loss": hooks.chance_loss(cfg.data.batch_size, positions), **last,
               "ranks_param_spread": ranks_param_spread(fabric, model), "elapsed_s": before + time.time() - t0}
    if fabric.is_global_zero:
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=2))
        plot_curves(out / "metrics.csv", out / "curves.png", summary["chance_loss"])
        if "val_loss" in summary and summary["val_loss"] > 0.98 * summary["chance_loss"]:
            fabric.print(f"WARNING: the validation loss {summary['val_loss']:.3f} is still at the plateau "
                         f"(chance {summary['chance_loss']:.3f}): the features have not learned; try a higher "
                         f"learning rate, more warm-up or more steps", flush=True)
        fabric.print(f"done: step {summary['step']}, results in {out}", flush=True)
    return summary
