"""CPC pretraining with lightning-fabric: setup, train, validate, checkpoint.

The same code runs on a CPU, one GPU, or many GPUs and nodes: `fabric.*` in the config goes straight to
Fabric. Randomness is reseeded at every step from (seed, step, rank), so a resumed run draws the same
negatives as an uninterrupted one on any number of devices.
"""
import itertools
import json
import math
import shutil
import time
from functools import partial
from pathlib import Path

import torch
import yaml
from lightning_fabric import Fabric

from seqcpc.builders import build_model, check_config
from seqcpc.checkpoint import save_checkpoint
from seqcpc.config import Config, FabricConfig, to_dict
from seqcpc.data import build_datasets, make_loader
from seqcpc.errors import RunDirError, TrainingError
from seqcpc.progress import MetricsLog, Throughput, fmt_duration, metrics_row, plot_curves


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


def make_fabric(cfg: FabricConfig) -> Fabric:
    return Fabric(accelerator=cfg.accelerator, devices=cfg.devices, strategy=cfg.strategy,
                  num_nodes=cfg.num_nodes, precision=resolve_precision(cfg))


def prepare_run_dir(fabric, out: Path, resume: bool, overwrite: bool) -> Path:
    ckpt = out / "checkpoints" / "last.ckpt"
    if resume and not ckpt.is_file():
        raise RunDirError(f"--resume: no checkpoint at {ckpt}")
    if not resume and out.exists() and any(out.iterdir()) and not overwrite:
        raise RunDirError(f"{out} already holds a run; pass --resume to continue it or --overwrite to replace it")
    fabric.barrier()
    if fabric.is_global_zero:
        if overwrite and not resume:
            shutil.rmtree(out, ignore_errors=True)
        ckpt.parent.mkdir(parents=True, exist_ok=True)
    fabric.barrier()
    return ckpt


def chance_loss(cfg: Config, latent_steps: int) -> float:
    """The InfoNCE loss of features that carry no information: log(number of candidates)."""
    loss = cfg.model.loss
    candidates = cfg.data.batch_size * latent_steps if loss.negatives == "all" else 1 + loss.num_negatives
    return math.log(candidates)


@torch.no_grad()
def validate(fabric, model, loader, seed: int, max_batches: int = 0):
    model.eval()
    torch.manual_seed(seed)  # the same negatives at every validation
    totals = 0
    for x, groups in itertools.islice(loader, max_batches or None):
        loss, metrics = model(x, groups)
        totals = totals + torch.cat([loss.detach().float()[None], metrics["acc_k"], loss.new_ones(1)])
    totals = fabric.all_reduce(totals, reduce_op="sum")
    model.train()
    return (totals[0] / totals[-1]).item(), totals[1:-1] / totals[-1]


def train(fabric, cfg: Config, state: dict, train_loader, val_loader, sampler, log: MetricsLog, ckpt_path):
    model, opt, sched = state["model"], state["optimizer"], state["scheduler"]
    tc, batch = cfg.train, cfg.data.batch_size
    sampler.set_position(0)
    per_epoch = len(train_loader)
    meter = Throughput(state["step"], tc.max_steps)
    running, last = [], {}
    while state["step"] < tc.max_steps:
        sampler.set_position(*divmod(state["step"], per_epoch))  # (epoch, batches already done)
        for x, groups in train_loader:
            step = state["step"]
            torch.manual_seed(step_seed(tc.seed, step, fabric.global_rank))
            loss, metrics = model(x, groups)  # x: (B, C, L)
            fabric.backward(loss)
            norm = fabric.clip_gradients(model, opt, max_norm=cfg.optim.grad_clip or math.inf,
                                         error_if_nonfinite=False)
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
                running.append(torch.cat([loss.detach().float()[None], metrics["acc_k"]]))
            opt.zero_grad(set_to_none=True)
            sched.step()
            state["step"] = step = step + 1

            if step % tc.log_every == 0 or step == tc.max_steps:
                mean = torch.stack(running).mean(0) if running else torch.full((1 + cfg.model.predictor.steps,), math.nan)
                mean = fabric.all_reduce(mean.to(fabric.device), reduce_op="mean").cpu()
                running = []
                samples_s, eta, elapsed = meter.update(step, batch * fabric.world_size)
                lr = sched.get_last_lr()[0]
                acc = mean[1:]
                fabric.print(f"step {step}/{tc.max_steps} | loss {mean[0]:.4f} | acc k1 {acc[0]:.3f} "
                             f"k{len(acc)} {acc[-1]:.3f} mean {acc.mean():.3f} | lr {lr:.2e} | "
                             f"{samples_s:.1f} samples/s | eta {fmt_duration(eta)}", flush=True)
                log.write(metrics_row(step, "train", mean[0].item(), acc, lr=f"{lr:.3e}",
                                      samples_per_s=f"{samples_s:.2f}", elapsed_s=f"{elapsed:.1f}"))
                last["train_loss"] = mean[0].item()
            if step % tc.val_every == 0 or step == tc.max_steps:
                val_loss, val_acc = validate(fabric, model, val_loader, tc.seed, tc.val_batches)
                fabric.print(f"step {step} | validation loss {val_loss:.4f} | acc mean {val_acc.mean():.3f}", flush=True)
                log.write(metrics_row(step, "val", val_loss, val_acc.cpu()))
                last.update(val_loss=val_loss, val_acc=val_acc.mean().item(), val_acc_k=val_acc.tolist())
            if step % tc.ckpt_every == 0 or step == tc.max_steps:
                save_checkpoint(fabric, ckpt_path, state)
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


def pretrain(cfg: Config, resume: bool = False, overwrite: bool = False) -> dict:
    latent_steps = check_config(cfg)
    fabric = make_fabric(cfg.fabric)
    fabric.launch()
    out = Path(cfg.train.out_dir)
    ckpt_path = prepare_run_dir(fabric, out, resume, overwrite)
    t0 = time.time()

    fabric.seed_everything(cfg.train.seed, verbose=False)  # identical initial weights on every rank
    model = build_model(cfg.model)
    train_ds, val_ds = build_datasets(cfg.data, cfg.train.seed)
    bad = []
    for name, ds in (("training", train_ds), ("validation", val_ds)):
        if getattr(ds, "skipped_short", 0):
            fabric.print(f"skipped {ds.skipped_short} {name} utterances shorter than the window", flush=True)
        bad += [f"{name}\t{b}\n" for b in getattr(ds, "bad_files", [])]
    if bad:
        fabric.print(f"skipped {len(bad)} unreadable files (listed in bad_files.txt), e.g. {bad[0].strip()}",
                     flush=True)
        if fabric.is_global_zero:
            (out / "bad_files.txt").write_text("".join(bad))
    loader = partial(make_loader, cfg=cfg.data, world_size=fabric.world_size, rank=fabric.global_rank,
                     seed=cfg.train.seed)
    train_loader, sampler = loader(train_ds, train=True)
    val_loader, _ = loader(val_ds, train=False)
    for name, dl in (("training", train_loader), ("validation", val_loader)):
        if len(dl) == 0:
            raise TrainingError(f"the {name} set has fewer items than one batch of {cfg.data.batch_size} "
                                f"on each of {fabric.world_size} devices")

    opt = torch.optim.Adam(model.parameters(), lr=cfg.optim.lr, weight_decay=cfg.optim.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, partial(
        lr_factor, warmup=cfg.optim.warmup_steps, max_steps=cfg.train.max_steps, min_ratio=cfg.optim.min_lr_ratio))
    if cfg.train.compile:
        model = torch.compile(model)  # Fabric keeps the compiled forward through DDP; checkpoints stay plain
    model, opt = fabric.setup(model, opt)
    train_loader, val_loader = fabric.setup_dataloaders(train_loader, val_loader, use_distributed_sampler=False)

    state = {"model": model, "optimizer": opt, "scheduler": sched, "step": 0, "bad_steps": 0, "config": to_dict(cfg)}
    if resume:
        fabric.load(ckpt_path, state, weights_only=True)
        state["config"] = to_dict(cfg)
        fabric.print(f"resumed from {ckpt_path} at step {state['step']}", flush=True)
    if fabric.is_global_zero:
        (out / "config.yaml").write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    n_params = sum(p.numel() for p in model.parameters())
    fabric.print(f"seqcpc pretrain: {n_params / 1e6:.2f}M parameters, {latent_steps} latent positions per sample, "
                 f"{fabric.world_size} device(s) on {fabric.device}, precision {resolve_precision(cfg.fabric)}, "
                 f"run folder {out}", flush=True)

    log = MetricsLog(out / "metrics.csv", cfg.model.predictor.steps, fabric.is_global_zero,
                     resume_step=state["step"] if resume else None)
    last = train(fabric, cfg, state, train_loader, val_loader, sampler, log, ckpt_path)

    summary = {"step": state["step"], "bad_steps": state["bad_steps"], "world_size": fabric.world_size,
               "chance_loss": chance_loss(cfg, latent_steps), **last,
               "ranks_param_spread": ranks_param_spread(fabric, model), "elapsed_s": time.time() - t0}
    if fabric.is_global_zero:
        (out / "summary.json").write_text(json.dumps(summary, indent=2))
        plot_curves(out / "metrics.csv", out / "curves.png")
        if "val_loss" in summary and summary["val_loss"] > 0.98 * summary["chance_loss"]:
            fabric.print(f"WARNING: the validation loss {summary['val_loss']:.3f} is still at the plateau "
                         f"(chance {summary['chance_loss']:.3f}): the features have not learned; try a higher "
                         f"learning rate, more warm-up or more steps", flush=True)
        fabric.print(f"done: step {summary['step']}, results in {out}", flush=True)
    return summary
