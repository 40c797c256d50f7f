"""Pretraining with lightning-fabric: setup, train, validate, checkpoint.

The same code runs on a CPU, one GPU, or many GPUs and nodes: `fabric.*` in the config goes straight to
Fabric. The loop knows no modality and no objective: it completes, checks and builds the config's model
(seqcpc.assembly), takes the datasets from the modality's registry entry (seqcpc.modalities) and the batch
sampler from the objective's or the modality's; the model (a seqcpc.core.pretrainable.Pretrainable) returns
(loss, metrics), says its chance-level loss and gets its per-step and per-epoch hooks. It reads top to bottom:
pretrain() checks, builds what needs the data (every refusal before the run folder is touched), takes the run
folder and sets up; seqcpc.train.steps.train() runs the steps; finish() writes the summary. A run that stops
before its first step leaves its folder as it was.
"""
import math
import time
from functools import partial
from pathlib import Path

import torch
import yaml

from seqcpc.assembly import build_model, check_config, complete_config, entries
from seqcpc.config import Config, to_dict
from seqcpc.errors import CheckpointError, ConfigError, TrainingError
from seqcpc.files import atomic_write_text
from seqcpc.train.checkpoint import check_resumable, load_matching_weights
from seqcpc.train.loaders import make_loader
from seqcpc.train.progress import MetricsLog, plot_curves
from seqcpc.train.run_dir import check_run_dir
from seqcpc.train.setup import (close_distributed, deterministic_mode, make_fabric, prepare_run_dir,
                                ranks_param_spread, report_skipped, resolve_precision, summary_json,
                                tensorboard_loggers)
from seqcpc.train.steps import Run, last_step, train_until_stopped


def lr_factor(step: int, warmup: int, max_steps: int, min_ratio: float) -> float:
    """Linear warm-up to the peak, then cosine decay to min_ratio of it."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min((step - warmup) / max(max_steps - warmup, 1), 1.0)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def pretrain(cfg: Config, resume: bool = False, overwrite: bool = False) -> dict:
    cfg = complete_config(cfg)  # what the data decides, filled in: the config saved with the run
    positions = check_config(cfg)
    out = Path(cfg.train.out_dir)
    # before Fabric starts processes or anything is written
    check_run_dir(out, resume, overwrite, reads=cfg.train.init_from)
    if cfg.train.init_from and not Path(cfg.train.init_from).is_file():
        raise ConfigError(f"train.init_from={cfg.train.init_from}: no such checkpoint file")
    if resume:
        check_resumable(out / "checkpoints" / "last.ckpt", cfg)
    fabric = make_fabric(cfg.fabric, tensorboard_loggers(cfg))
    fabric.launch()
    t0 = time.time()
    with deterministic_mode(cfg.train.deterministic):
        model, loaders = build_parts(fabric, cfg, resume)
        folder = prepare_run_dir(fabric, out, resume, overwrite)
        try:
            run = start_run(fabric, cfg, model, loaders, resume, positions, t0)
        except BaseException:
            if folder is not None:  # stopped before its first step: leave the folder as it was
                folder.undo()
            raise
        try:
            return finish(run, train_until_stopped(run))
        finally:
            if folder is not None:
                folder.close()


def make_loaders(fabric, cfg: Config) -> tuple:
    """(training loader, validation loader, the training batches' sampler) of the modality's datasets, batched by
    the objective's batch sampler (e.g. few-shot episodes), else the modality's, else the loop's."""
    modality, objective = entries(cfg)
    train_ds, val_ds = modality.datasets(cfg.data, cfg.train.seed)
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


def build_parts(fabric, cfg: Config, resume: bool) -> tuple:
    """(the model, started from train.init_from in a new run; its loaders and sampler): every refusal that needs
    the data or train.init_from comes here, before the run folder is touched."""
    fabric.seed_everything(cfg.train.seed, verbose=False)  # identical initial weights on every rank
    model = build_model(cfg)
    loaders = make_loaders(fabric, cfg)
    if cfg.train.init_from and not resume:
        load_matching_weights(model, cfg.train.init_from, log=lambda m: fabric.print(m, flush=True))
    return model, loaders


def start_run(fabric, cfg: Config, model, loaders: tuple, resume: bool, positions: int, t0: float) -> Run:
    """Everything before the first step, in the locked run folder: the optimizer and schedule, Fabric's setup,
    a resumed run's checkpoint, config.yaml and the metrics log."""
    out = Path(cfg.train.out_dir)
    ckpt_path = out / "checkpoints" / "last.ckpt"
    train_loader, val_loader, sampler = loaders
    report_skipped(fabric, out, {"training": train_loader.dataset, "validation": val_loader.dataset})
    model.use_fabric(fabric)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(
        lr_factor, warmup=cfg.optim.warmup_steps, max_steps=cfg.train.max_steps, min_ratio=cfg.optim.min_lr_ratio))
    if cfg.train.compile:
        model = torch.compile(model)  # Fabric keeps the compiled forward through DDP; checkpoints stay plain
    model, opt = fabric.setup(model, opt)

    state = {"model": model, "optimizer": opt, "scheduler": sched, "step": 0, "bad_steps": 0, "config": to_dict(cfg)}
    before = 0.0  # seconds the run spent before this process, up to its checkpoint (a resumed run's earlier part)
    if resume:
        try:
            before = float(fabric.load(ckpt_path, state, weights_only=True).get("elapsed_s", 0.0))
        except (RuntimeError, KeyError, ValueError) as err:  # e.g. optimizer state of another shape
            raise CheckpointError(f"--resume: {ckpt_path} could not be loaded into this run ({err})") from err
        state["config"] = to_dict(cfg)
        if state["step"] >= last_step(cfg.train):
            raise CheckpointError(f"--resume: {ckpt_path} is at step {state['step']}, and this run ends at step "
                                  f"{last_step(cfg.train)} (train.max_steps={cfg.train.max_steps}, train.stop_at="
                                  f"{cfg.train.stop_at}): nothing is left to train; raise train.max_steps (or "
                                  f"train.stop_at) to go on")
        fabric.print(f"resumed from {ckpt_path} at step {state['step']}", flush=True)
    if fabric.is_global_zero:
        atomic_write_text(out / "config.yaml", yaml.safe_dump(to_dict(cfg), sort_keys=False))
    n_params = sum(p.numel() for p in model.parameters())
    fabric.print(f"seqcpc pretrain: {cfg.model.modality} model, objective {cfg.objective.name}, {n_params / 1e6:.2f}M "
                 f"parameters, {positions} latent positions per sample, {fabric.world_size} device(s) on "
                 f"{fabric.device}, precision {resolve_precision(cfg.fabric)}, run folder {out}", flush=True)
    log = MetricsLog(out / "metrics.csv", fabric.is_global_zero, resume_step=state["step"] if resume else None)
    return Run(fabric, cfg, state, train_loader, val_loader, sampler, log, ckpt_path,
               clock=lambda: before + time.time() - t0, positions=positions,
               saved_step=state["step"] if resume else None)


def check_learned(run: Run, last: dict) -> None:
    """A run that took no step (every loss or gradient not finite, all skipped within train.max_bad_steps), or
    whose validation loss is not finite, is an error, not a result."""
    step, bad = run.state["step"], run.state["bad_steps"]
    hint = "look for NaN or infinite values in the data, or lower optim.lr"
    if bad >= step:
        raise TrainingError(f"no training step was taken: all {step} steps had non-finite loss or gradients and "
                            f"were skipped, so the weights are those the run started from; {hint}")
    if not math.isfinite(last.get("val_loss", 0.0)):
        raise TrainingError(f"the validation loss at step {step} is {last['val_loss']}: the model's outputs are "
                            f"not finite; {hint}")


def finish(run: Run, last: dict) -> dict:
    """Check that the run learned, write summary.json and the curves, and say where the results are."""
    fabric, state, out = run.fabric, run.state, Path(run.cfg.train.out_dir)
    check_learned(run, last)
    for logger in fabric.loggers:  # flush TensorBoard's event files
        logger.finalize("success")
    summary = {"step": state["step"], "bad_steps": state["bad_steps"], "world_size": fabric.world_size,
               "chance_loss": run.model.chance_loss(run.cfg.data.batch_size, run.positions), **last,
               "ranks_param_spread": ranks_param_spread(fabric, state["model"]), "elapsed_s": run.clock()}
    if fabric.is_global_zero:
        atomic_write_text(out / "summary.json", summary_json(summary))
        plot_curves(out / "metrics.csv", out / "curves.png", summary["chance_loss"])
        if "val_loss" in summary and summary["val_loss"] > 0.98 * summary["chance_loss"]:
            fabric.print(f"WARNING: the validation loss {summary['val_loss']:.3f} is still at the plateau "
                         f"(chance {summary['chance_loss']:.3f}): the features have not learned; try a higher "
                         f"learning rate, more warm-up or more steps", flush=True)
        fabric.print(f"done: step {summary['step']}, results in {out}", flush=True)
    close_distributed(fabric, state)
    return summary
