"""The training steps: train() runs them until train.max_steps, or until Ctrl-C (the step under way ends and is
saved; a second Ctrl-C stops at once), logging, validating and checkpointing as the config says.

Randomness is reseeded at every step from (seed, step, rank), so a resumed run draws the same negatives as an
uninterrupted one on any number of devices. The sampler's position (epoch, batches done) is set by train()
alone from the step count: the loaders are not handed to Fabric (setup_dataloaders), whose wrapper would set
the sampler's epoch to its own count of passes (0 for a resumed run's first pass, whatever the epoch); each
batch is moved to the device here.
"""
import itertools
import math
import signal
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from seqcpc.config import Config
from seqcpc.errors import Interrupted, TrainingError
from seqcpc.train.checkpoint import save_checkpoint
from seqcpc.train.progress import MetricsLog, Progress, headline, metrics_row, with_flops


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
        loss, metrics = model(*fabric.to_device(batch))
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
    parts of a resumed run included) are what the steps read and write; `saved_step` is the step of the last
    checkpoint (None before the first)."""
    fabric: object
    cfg: Config
    state: dict
    train_loader: object
    val_loader: object
    sampler: object  # the training batches' sampler: set_position(epoch, batches_done)
    log: MetricsLog
    ckpt_path: Path
    clock: object
    positions: int  # latent positions per sample, for the chance level
    saved_step: int | None = None

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


def take_step(run: Run, batch, count_flops: bool) -> tuple:
    """One step on `batch`: the optimizer's, or none when the loss or gradients are not finite (skipped and
    counted); the step count and the schedule move on either way. Returns (the step's metrics, or None when
    it was skipped; its FLOPs or None)."""
    state, step = run.state, run.state["step"]
    torch.manual_seed(step_seed(run.cfg.train.seed, step, run.fabric.global_rank))
    loss, metrics, norm, flops = train_step(run, batch, count_flops)
    bad = ~torch.isfinite(loss.detach()) | ~torch.isfinite(norm)
    row = None
    if run.fabric.all_reduce(bad.float(), reduce_op="sum") > 0:  # every rank skips together
        skip_bad_step(run, step)
    else:
        state["optimizer"].step()
        row = {"loss": loss.detach(), **{k: v.detach() for k, v in metrics.items()}}
    state["optimizer"].zero_grad(set_to_none=True)
    state["scheduler"].step()
    state["step"] = step + 1
    run.model.on_step_end(step + 1)
    return row, flops


def checkpoint(run: Run) -> None:
    """Write the checkpoint (and keep a copy of it at train.keep_steps)."""
    state, step = {**run.state, "elapsed_s": run.clock()}, run.state["step"]  # seconds so far
    save_checkpoint(run.fabric, run.ckpt_path, state)
    if step in run.cfg.train.keep_steps:
        save_checkpoint(run.fabric, run.ckpt_path.with_name(f"step-{step}.ckpt"), state)
    run.saved_step = step


def last_step(tc) -> int:
    """The step this part of the run ends at: train.stop_at when it comes before train.max_steps."""
    return min(tc.stop_at, tc.max_steps) if tc.stop_at else tc.max_steps


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


class StopRequest:
    """While entered, the first SIGINT is a request the loop reads between steps (`agreed`), not a
    KeyboardInterrupt inside one: a step stopped half way (an optimizer step half applied) cannot be saved."""

    def __init__(self):
        self.asked, self.previous = False, None

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():  # the only thread that may handle signals
            self.previous = signal.signal(signal.SIGINT, self.ask)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def ask(self, signum, frame) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def agreed(self, fabric) -> bool:
        """Whether Ctrl-C reached any rank; the same answer on every rank."""
        asked = torch.tensor(float(self.asked), device=fabric.device)
        return fabric.all_reduce(asked, reduce_op="sum").item() > 0


def train(run: Run, stop: StopRequest) -> dict:
    """Run steps until train.max_steps; returns the last logged train and validation numbers. After a Ctrl-C
    (`stop`) the step under way ends, is saved, and Interrupted is raised."""
    state, tc = run.state, run.cfg.train
    end = last_step(tc)
    run.sampler.set_position(0)
    per_epoch = len(run.train_loader)
    progress = Progress(run.fabric, state["step"], end)
    flops_per_step, running, last = None, [], {}
    while state["step"] < end:
        epoch, done = divmod(state["step"], per_epoch)
        run.sampler.set_position(epoch, done)
        run.model.on_epoch_start(epoch)
        for batch in run.train_loader:
            count = flops_per_step is None and not tc.compile
            row, flops = take_step(run, run.fabric.to_device(batch), count)
            flops_per_step = flops if count else flops_per_step
            running += [row] if row else []
            progress.count(len(batch[0]))
            step = state["step"]
            if step % tc.log_every == 0 or step == end:
                last["train_loss"], running = log_train(run, step, running, progress, flops_per_step), []
            if step % tc.val_every == 0 or step == end:
                last["val_loss"], last["val_metrics"] = log_validation(run, step)
            if step % tc.ckpt_every == 0 or step == end or step in tc.keep_steps:
                checkpoint(run)
            if step >= end:
                break
            if stop.agreed(run.fabric):
                if run.saved_step != step:
                    checkpoint(run)
                raise Interrupted(f"stopped at step {step}", resumable=True)
    return last


def train_until_stopped(run: Run) -> dict:
    """train(run), stopped by Ctrl-C after the step under way, or at once by a second Ctrl-C: then --resume goes
    on from the last checkpoint written."""
    with StopRequest() as stop:
        try:
            return train(run, stop)
        except Interrupted:
            raise
        except KeyboardInterrupt:
            if run.saved_step is None:
                raise Interrupted(f"stopped at once at step {run.state['step']}, before the first checkpoint",
                                  resumable=False) from None
            raise Interrupted(f"stopped at once at step {run.state['step']}; the last checkpoint is at step "
                              f"{run.saved_step}", resumable=True) from None
