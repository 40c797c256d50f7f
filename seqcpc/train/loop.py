"""Pretraining with lightning-fabric: setup, train, validate, checkpoint.

The same code runs on a CPU, one GPU, or many GPUs and nodes: `fabric.*` in the config goes straight to
Fabric. The loop knows no modality and no objective: it completes, checks and builds the config's model
(seqcpc.assembly), takes the datasets from the modality's registry entry (seqcpc.modalities) and the batch
sampler from the objective's or the modality's; the model (a seqcpc.core.pretrainable.Pretrainable) returns
(loss, metrics), says its chance-level loss and gets its per-step and per-epoch hooks. It reads top to bottom:
pretrain() sets up, train() runs the steps, validate() scores, save_checkpoint() writes. Randomness is
reseeded at every step from (seed, step, rank), so a resumed run draws the same negatives as an uninterrupted
one on any number of devices.
"""
import itertools
import json
import math
import os
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
import yaml

from seqcpc.assembly import build_model, check_config, complete_config, entries
from seqcpc.config import Config, to_dict
from seqcpc.errors import CheckpointError, ConfigError, TrainingError
from seqcpc.files import atomic_write_text
from seqcpc.train.checkpoint import check_resumable, load_matching_weights, save_checkpoint
from seqcpc.train.loaders import make_loader
from seqcpc.train.progress import MetricsLog, Progress, headline, metrics_row, plot_curves, with_flops
from seqcpc.train.run_dir import check_run_dir
from seqcpc.train.setup import (close_distributed, make_fabric, prepare_run_dir, ranks_param_spread, report_skipped,
                                resolve_precision, tensorboard_loggers)


def lr_factor(step: int, warmup: int, max_steps: int, min_ratio: float) -> float:
    """Linear warm-up to the peak, then cosine decay to min_ratio of it."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(max_steps - warmup, 1), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def step_seed(seed: int, step: int, rank: int) -> int:
    return (seed * 1_000_003 + step) * 1009 + rank


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


@dataclass
class Run:
    """What a run's steps work on: `state` is what a checkpoint holds (the set-up model, optimizer, scheduler,
    step, bad steps, config); the loaders, the metrics log and the clock (the run's seconds so far, earlier
    parts of a resumed run included) are what the steps read and write."""
    fabric: object
    cfg: Config
    state: dict
    train_loader: object
    val_loader: object
    sampler: object  # the training batches' sampler: set_position(epoch, batches_done)
    log: MetricsLog
    ckpt_path: Path
    clock: object

    @property
    def model(self):
        """The plain module, for the hooks and the chance level that are not part of the DDP-wrapped forward."""
        return self.state["model"].module


def train_step(run: Run, batch, count_flops: bool):
    """Forward, backward and clipping of one batch; returns (loss, metrics, gradient norm, FLOPs or None)."""
    model, opt = run.state["model"], run.state["optimizer"]

    def forward_backward():
        loss, metrics = model(*batch)  # (x, groups[, lengths]): x as the encoder reads it
        run.fabric.backward(loss)
        return loss, metrics

    flops = None
    if count_flops:  # count the FLOPs of the first step, then just run
        (loss, metrics), flops = with_flops(forward_backward)
    else:
        loss, metrics = forward_backward()
    norm = clip_gradients(run.fabric, model, opt, run.cfg.optim.grad_clip or math.inf, run.model.side_parameters())
    return loss, metrics, norm, flops


def skip_bad_step(run: Run, step: int) -> None:
    """Count a step whose loss or gradients are not finite; stop the run past train.max_bad_steps."""
    run.state["bad_steps"] += 1
    limit = run.cfg.train.max_bad_steps
    run.fabric.print(f"warning: step {step}: non-finite loss or gradients, step skipped "
                     f"({run.state['bad_steps']} so far, limit {limit})", flush=True)
    if run.state["bad_steps"] > limit:
        kept = f"the last good checkpoint is {run.ckpt_path}" if run.ckpt_path.exists() else "no checkpoint was written"
        raise TrainingError(f"training stopped at step {step}: more than train.max_bad_steps={limit} steps had "
                            f"non-finite loss or gradients; {kept}")


def log_train(run: Run, step: int, running: list, progress: Progress, flops_per_step) -> float:
    """Print, log and write the mean of the steps since the last log line; returns the mean loss."""
    fabric, sched = run.fabric, run.state["scheduler"]
    mean = mean_metrics(fabric, running) or {"loss": math.nan}
    rates, lr = progress.update(step, flops_per_step), sched.get_last_lr()[0]
    loss_mean = mean.pop("loss")
    fabric.print(f"step {step}/{run.cfg.train.max_steps} | loss {loss_mean:.4f} | {headline(mean)} | lr {lr:.2e} | "
                 f"{progress.describe(rates)}", flush=True)
    run.log.write(metrics_row(step, "train", loss_mean, mean, lr=f"{lr:.3e}",
                              samples_per_s=f"{rates['samples_per_s']:.2f}", elapsed_s=f"{rates['elapsed_s']:.1f}"))
    fabric.log_dict({"train/loss": loss_mean, **{f"train/{k}": v for k, v in mean.items()}, "lr": lr}, step)
    return loss_mean


def log_validation(run: Run, step: int) -> tuple:
    """Validate, print, log and write; returns (validation loss, metrics)."""
    val = validate(run.fabric, run.state["model"], run.val_loader, run.cfg.train.seed, run.cfg.train.val_batches)
    val_loss = val.pop("loss")
    run.fabric.print(f"step {step} | validation loss {val_loss:.4f} | {headline(val)}", flush=True)
    run.log.write(metrics_row(step, "val", val_loss, val))
    run.fabric.log_dict({"val/loss": val_loss, **{f"val/{k}": v for k, v in val.items()}}, step)
    return val_loss, val


def train(run: Run) -> dict:
    """Run steps until train.max_steps; returns the last logged train and validation numbers."""
    state, tc = run.state, run.cfg.train
    run.sampler.set_position(0)
    per_epoch = len(run.train_loader)
    progress = Progress(run.fabric, state["step"], tc.max_steps)
    flops_per_step = None
    running, last = [], {}
    while state["step"] < tc.max_steps:
        epoch, done = divmod(state["step"], per_epoch)
        run.sampler.set_position(epoch, done)
        run.model.on_epoch_start(epoch)
        for batch in run.train_loader:
            step = state["step"]
            torch.manual_seed(step_seed(tc.seed, step, run.fabric.global_rank))
            count = flops_per_step is None and not tc.compile
            loss, metrics, norm, flops = train_step(run, batch, count)
            flops_per_step = flops if count else flops_per_step
            bad = ~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)
            if run.fabric.all_reduce(bad.float(), reduce_op="sum") > 0:  # every rank skips together
                skip_bad_step(run, step)
            else:
                state["optimizer"].step()
                running.append({"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}})
            state["optimizer"].zero_grad(set_to_none=True)
            state["scheduler"].step()
            progress.count(len(batch[0]))
            state["step"] = step = step + 1
            run.model.on_step_end(step)

            if step % tc.log_every == 0 or step == tc.max_steps:
                last["train_loss"], running = log_train(run, step, running, progress, flops_per_step), []
            if step % tc.val_every == 0 or step == tc.max_steps:
                last["val_loss"], last["val_metrics"] = log_validation(run, step)
            if step % tc.ckpt_every == 0 or step == tc.max_steps:
                save_checkpoint(run.fabric, run.ckpt_path, {**state, "elapsed_s": run.clock()})  # seconds so far
            if step >= tc.max_steps:
                break
    return last


def pretrain(cfg: Config, resume: bool = False, overwrite: bool = False) -> dict:
    cfg = complete_config(cfg)  # what the data decides, filled in: the config saved with the run
    positions = check_config(cfg)
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
        summary = run_training(fabric, cfg, out, ckpt_path, resume, positions)
        close_distributed(fabric)
        return summary
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        if lock is not None:
            lock.release()


def make_loaders(fabric, cfg: Config) -> tuple:
    """(training loader, validation loader, the training batches' sampler) of the modality's datasets, batched by
    the objective's batch sampler (e.g. few-shot episodes), else the modality's, else the loop's."""
    modality, objective = entries(cfg)
    train_ds, val_ds = modality.datasets(cfg.data, cfg.train.seed)
    report_skipped(fabric, Path(cfg.train.out_dir), {"training": train_ds, "validation": val_ds})
    world, rank, seed = fabric.world_size, fabric.global_rank, cfg.train.seed
    if objective.batch_sampler is not None:
        samplers = [objective.batch_sampler(ds, cfg, world, rank, seed, train, modality)
                    for ds, train in ((train_ds, True), (val_ds, False))]
    else:
        samplers = [modality.batch_sampler(ds, cfg, world, rank, seed, train) if modality.batch_sampler else None
                    for ds, train in ((train_ds, True), (val_ds, False))]
    loader = partial(make_loader, batch_size=cfg.data.batch_size, num_workers=cfg.data.num_workers,
                     world_size=world, rank=rank, seed=seed)
    train_loader, sampler = loader(train_ds, train=True, batch_sampler=samplers[0])
    val_loader, _ = loader(val_ds, train=False, batch_sampler=samplers[1])
    for name, dl in (("training", train_loader), ("validation", val_loader)):
        if len(dl) == 0:
            raise TrainingError(f"the {name} set has fewer items than one batch of {cfg.data.batch_size} "
                                f"on each of {world} devices")
    return train_loader, val_loader, sampler


def run_training(fabric, cfg: Config, out: Path, ckpt_path: Path, resume: bool, positions: int) -> dict:
    t0 = time.time()
    fabric.seed_everything(cfg.train.seed, verbose=False)  # identical initial weights on every rank
    model = build_model(cfg)
    train_loader, val_loader, sampler = make_loaders(fabric, cfg)
    if cfg.train.init_from and not resume:
        load_matching_weights(model, cfg.train.init_from, log=lambda m: fabric.print(m, flush=True))
    model.use_fabric(fabric)
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
    fabric.print(f"seqcpc pretrain: {cfg.model.modality} model, objective {cfg.objective.name}, {n_params / 1e6:.2f}M "
                 f"parameters, {positions} latent positions per sample, {fabric.world_size} device(s) on "
                 f"{fabric.device}, precision {resolve_precision(cfg.fabric)}, run folder {out}", flush=True)

    log = MetricsLog(out / "metrics.csv", fabric.is_global_zero, resume_step=state["step"] if resume else None)
    run = Run(fabric, cfg, state, train_loader, val_loader, sampler, log, ckpt_path,
              clock=lambda: before + time.time() - t0)
    last = train(run)

    for logger in fabric.loggers:  # flush TensorBoard's event files
        logger.finalize("success")
    summary = {"step": state["step"], "bad_steps": state["bad_steps"], "world_size": fabric.world_size,
               "chance_loss": run.model.chance_loss(cfg.data.batch_size, positions), **last,
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
