"""The image evaluation's supervised baseline: the run's patch encoder (its model section's, on the images'
channels, whatever the objective assembles from it), pooled like the probes' features, with a linear head,
trained from scratch on a labelled subset with the patch augmentations of pretraining: AdamW, a linear warm-up
over 5% of the steps, then a cosine decay to zero at the end of its budget.

How many epochs is chosen once and then trained by every seed, so no seed stops on a noisy signal (Hénaff et al.
2020 also chose their fine-tuning epochs on held-out data):
- the selection run (`select_budget`, on the first seed to need it): for each budget of probe.supervised_budgets
  (probe.supervised_epochs, half of it, a quarter, ...; each its own cosine) the network trains from the same
  start, its accuracy on the validation set checked probe.supervised_checks times along the way; the budget
  chosen is the shortest whose final validation accuracy is within probe.supervised_tolerance of the best one
  (doubling it bought less). The runs, their curves and the choice go to the schedule file
  (probe.supervised_schedule), with a plot beside it; the chosen run is that seed's result.
- every other seed trains the chosen budget once (`train_budget`).
The validation set (probe.supervised_val_images, stratified) is never trained on: below 100% of the labels it is
drawn from the training images outside the labelled subset, so the whole subset is trained on; at 100% it is
held out of it. It holds more labels than a 1% subset, which favours the baseline, not pretraining.

Shapes: N images, C channels, H x W pixels, D latent dim, P = probe.pool, K classes.
"""
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.config import Config, to_dict
from seqcpc.errors import ConfigError, DataError
from seqcpc.assembly import complete_config
from seqcpc.eval.probes import per_class_choice
from seqcpc.image.parts import ImageParts
from seqcpc.image.store import images_to_float
from seqcpc.train.progress import fmt_duration


class Supervised(nn.Module):
    """The baseline: pooled patch features (seqcpc.image.encoder.PooledPatches) with a linear head."""

    def __init__(self, features: nn.Module, num_classes: int):
        super().__init__()
        self.features = features
        self.head = nn.Linear(features.dim, num_classes)

    def forward(self, x):  # (B, C, H, W): patches are augmented in training mode, as in pretraining
        return self.head(self.features(x))


def baseline_features(cfg: Config, seed: int) -> nn.Module:
    """The patch encoder of the run's model section with its patch augment, pooled to probe.pool cells, freshly
    built from `seed`. The image parts build the encoder first, so its weights are random_init's encoder's for
    objectives that train that encoder (CPC, the pretext tasks); for those that build their own (CMC's L and ab
    encoders, colourisation's L encoder) it is the RGB encoder that the same model section describes."""
    cfg = complete_config(cfg)
    torch.manual_seed(seed)
    return ImageParts(cfg.model).pooled(cfg.probe.pool)


@torch.inference_mode()
def predict(net, images, batch: int = 1000) -> np.ndarray:
    """Class predictions of a classifier on uint8 images (N, H, W, C), in eval mode (no augmentation)."""
    net.eval()
    return np.concatenate([net(images_to_float(np.asarray(images[s: s + batch]))).argmax(1).numpy()
                           for s in range(0, len(images), batch)])


def accuracy(net, images, labels) -> float:
    """A classifier's accuracy on uint8 images and their labels, in eval mode."""
    return float((predict(net, images) == labels).mean())


def validation_split(labels, subset, count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(training indices, validation indices): a class-stratified validation set of about `count` images drawn
    from the images outside `subset` when there are enough of them (then the whole subset is trained on), else
    held out of `subset` (at least one image of each class stays in training)."""
    rest = np.setdiff1d(np.arange(len(labels)), subset)
    pool = rest if len(rest) >= count else np.asarray(subset)
    share = count / len(pool)
    val = pool[per_class_choice(labels[pool], lambda n: min(round(share * n), n - 1), seed)]
    if len(val) == 0:
        raise DataError(f"the supervised baseline's validation set is empty: {len(pool)} images to draw "
                        f"probe.supervised_val_images={count} from, each class one image or too few")
    return (np.asarray(subset) if pool is rest else np.setdiff1d(subset, val)), val


def cosine_with_warmup(total: int):
    """The learning-rate factor of each step: a linear warm-up over 5% of `total` steps, then a cosine to zero."""
    warmup = max(1, total // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup)))

    return factor


def train_budget(cfg: Config, images, labels, train_idx, epochs: float, num_classes: int, val_idx=None,
                 log=print):
    """Train the baseline from scratch (baseline_features with the run's seed) on images[train_idx] for `epochs`
    (probe.supervised_max_steps caps the steps), in batches of data.batch_size drawn in a fixed order. With
    `val_idx`, the validation accuracy is checked probe.supervised_checks times, evenly spaced, the last at the
    end. Returns (the network in eval mode, {epochs, steps, train_images, curve: [{epoch, step, val_acc,
    train_loss}], val_acc (the last check's), seconds})."""
    p = cfg.probe
    net = Supervised(baseline_features(cfg, cfg.train.seed), num_classes)
    batch = min(cfg.data.batch_size, len(train_idx))
    per_epoch = len(train_idx) // batch
    total = max(1, round(epochs * per_epoch))
    if p.supervised_max_steps:
        total = min(total, p.supervised_max_steps)
    opt = torch.optim.AdamW(net.parameters(), lr=p.supervised_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, cosine_with_warmup(total))
    checks = set() if val_idx is None else {round(total * (i + 1) / p.supervised_checks)
                                             for i in range(p.supervised_checks)}
    gen = np.random.default_rng(cfg.train.seed)
    curve, losses, step, t0 = [], [], 0, time.time()
    while step < total:
        order = train_idx[gen.permutation(len(train_idx))]
        for start in range(0, per_epoch * batch, batch):
            net.train()
            idx = np.sort(order[start: start + batch])
            loss = F.cross_entropy(net(images_to_float(images[idx])), torch.as_tensor(labels[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            losses.append(loss.item())
            if step in checks:
                curve.append({"epoch": round(step / per_epoch, 2), "step": step, "train_loss": float(np.mean(losses)),
                              "val_acc": accuracy(net, images[val_idx], labels[val_idx])})
                losses = []
                log(f"    step {step}/{total} (epoch {step / per_epoch:.1f}) loss {curve[-1]['train_loss']:.3f} "
                    f"validation {curve[-1]['val_acc']:.4f} | {fmt_duration(time.time() - t0)}")
            if step == total:
                break
    net.eval()
    info = {"epochs": round(total / per_epoch, 2), "steps": total, "train_images": len(train_idx), "curve": curve,
            "seconds": round(time.time() - t0, 1)}
    return net, {**info, "val_acc": curve[-1]["val_acc"]} if curve else info


def budgets(cfg: Config, fraction: float) -> list[float]:
    """The budgets in epochs a selection run tries for `fraction`, shortest first."""
    p = cfg.probe
    longest = p.supervised_epochs[p.label_fractions.index(fraction) if len(p.supervised_epochs) > 1 else 0]
    return [longest / 2 ** k for k in reversed(range(p.supervised_budgets))]


def schedule_settings(cfg: Config, fraction: float) -> dict:
    """What a chosen budget depends on besides the seed: a schedule chosen under other settings is not reused."""
    p = cfg.probe
    return {"budgets": budgets(cfg, fraction), "tolerance": p.supervised_tolerance,
            "val_images": p.supervised_val_images, "max_steps": p.supervised_max_steps, "lr": p.supervised_lr,
            "batch_size": cfg.data.batch_size, "pool": p.pool, "model": to_dict(cfg.model)}


def select_budget(cfg: Config, images, labels, subset, fraction: float, num_classes: int, log=print):
    """The selection run on the labelled `subset` (see the module docstring). Returns (the chosen budget's network,
    its schedule entry: {epochs (the budget chosen), seed, settings, runs: train_budget's results, rising (the
    longest budget was chosen: the baseline may still gain from a longer one)})."""
    p = cfg.probe
    train_idx, val_idx = validation_split(labels, subset, p.supervised_val_images, cfg.train.seed)
    log(f"  choosing the budget among {budgets(cfg, fraction)} epochs on {len(train_idx)} images, validation "
        f"{len(val_idx)} images")
    nets, runs = [], []
    for epochs in budgets(cfg, fraction):
        net, run = train_budget(cfg, images, labels, train_idx, epochs, num_classes, val_idx, log)
        nets.append(net)
        runs.append({"budget": epochs, **run})
    best = max(r["val_acc"] for r in runs)
    chosen = next(i for i, r in enumerate(runs) if r["val_acc"] >= best - p.supervised_tolerance)
    log(f"  chosen: {runs[chosen]['budget']:g} epochs (validation " +
        ", ".join(f"{r['budget']:g}: {r['val_acc']:.4f}" for r in runs) + ")")
    entry = {"epochs": runs[chosen]["budget"], "seed": cfg.train.seed, "settings": schedule_settings(cfg, fraction),
             "runs": runs, "rising": len(runs) > 1 and chosen == len(runs) - 1}
    return nets[chosen], entry


def chosen_budget(cfg: Config, fraction: float, schedule: dict):
    """schedule's entry for `fraction` (the fraction as "%g"), None when it has none; refused when it was chosen
    under other settings (schedule_settings)."""
    entry = schedule.get(f"{fraction:g}")
    if entry is not None and entry["settings"] != schedule_settings(cfg, fraction):
        raise ConfigError(f"the supervised budget at {100 * fraction:g}% of the labels was chosen with other settings "
                          f"(probe.supervised_*, data.batch_size, probe.pool or the model); delete the schedule "
                          f"file (probe.supervised_schedule) to choose it again, for every seed")
    return entry


def train_supervised(cfg: Config, fraction: float, images, labels, subset, test_images, test_labels,
                     num_classes: int, schedule: dict, log=print) -> dict:
    """The baseline on the labelled `subset` of `fraction`, scored on the test split: the schedule's budget
    trained once, or, where the schedule has none yet, a selection run whose entry is added to `schedule` (the
    caller saves it). Returns {acc, budget, epochs, steps, train_images, seconds, selected (this seed chose the
    budget), val_acc (the selection run's)}."""
    entry = chosen_budget(cfg, fraction, schedule)
    if entry is not None:
        train_idx, _ = validation_split(labels, subset, cfg.probe.supervised_val_images, cfg.train.seed)
        log(f"  {entry['epochs']:g} epochs (chosen on seed {entry['seed']}) on {len(train_idx)} images")
        net, info = train_budget(cfg, images, labels, train_idx, entry["epochs"], num_classes, log=log)
        info = {**info, "selected": False}
    else:
        net, entry = select_budget(cfg, images, labels, subset, fraction, num_classes, log)
        schedule[f"{fraction:g}"] = entry
        info = {**next(r for r in entry["runs"] if r["budget"] == entry["epochs"]), "selected": True}
    info.pop("curve", None)
    return {"acc": accuracy(net, test_images, test_labels), "budget": entry["epochs"], **info}
