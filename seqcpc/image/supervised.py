"""The image evaluation's supervised baseline: the run's patch encoder (its model section's, on the images'
channels, whatever the objective assembles from it), pooled like the probes' features, with a linear head,
trained from scratch on a labelled subset to convergence (early stopping on a held-out part, the best weights
restored).

Shapes: N images, C channels, H x W pixels, D latent dim, P = probe.pool, K classes.
"""
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.assembly import complete_config
from seqcpc.config import Config
from seqcpc.errors import DataError
from seqcpc.eval.probes import BestWeights, stratified_holdout
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


@torch.no_grad()
def predict(net, images, batch: int = 500) -> np.ndarray:
    """Class predictions of a classifier on uint8 images (N, H, W, C), in eval mode (no augmentation)."""
    net.eval()
    return np.concatenate([net(images_to_float(np.asarray(images[s: s + batch]))).argmax(1).numpy()
                           for s in range(0, len(images), batch)])


def accuracy(net, images, labels) -> float:
    """A classifier's accuracy on uint8 images and their labels, in eval mode."""
    return float((predict(net, images) == labels).mean())


def train_supervised(cfg: Config, images, labels, test_images, test_labels, num_classes: int,
                     log=print) -> dict:
    """fit_supervised on (images, labels), scored on the test split: {acc, steps, epochs, best_step, holdout_acc,
    holdout, stopped, seconds}."""
    net, info = fit_supervised(cfg, images, labels, num_classes, log)
    return {"acc": accuracy(net, test_images, test_labels), **info}


def fit_supervised(cfg: Config, images, labels, num_classes: int, log=print):
    """Train the encoder from scratch on (images, labels) with cross-entropy, to convergence: a stratified part of
    the subset (probe.supervised_holdout, at most 2000 images) is held out; its accuracy is checked every
    probe.supervised_check_every steps (at least once an epoch); training stops after probe.supervised_patience
    checks without a gain (or at the epoch / step caps, which `stopped` names) and the weights of the best
    check are restored. Returns (the network in eval mode, {steps, epochs, best_step, holdout_acc (of the
    restored weights), holdout, stopped, seconds})."""
    p = cfg.probe
    net = Supervised(baseline_features(cfg, cfg.train.seed), num_classes)
    held = stratified_holdout(labels, min(p.supervised_holdout, 2000 / len(labels)), cfg.train.seed)
    train_idx, held_idx = np.flatnonzero(~held), np.flatnonzero(held)
    if len(held_idx) == 0:  # a class of one image each: nothing to hold out, so nothing to stop on
        raise DataError(f"the supervised baseline needs at least two labelled images of some class to hold one "
                        f"out for early stopping; got {len(labels)} images")
    batch = min(cfg.data.batch_size, len(train_idx))
    per_epoch = len(train_idx) // batch
    check_every = min(p.supervised_check_every, per_epoch)
    max_steps = p.supervised_epochs * per_epoch
    if p.supervised_max_steps:
        max_steps = min(max_steps, p.supervised_max_steps)
    opt = torch.optim.AdamW(net.parameters(), lr=p.supervised_lr, weight_decay=1e-4)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, "max", factor=0.5, patience=1)
    best = BestWeights(p.supervised_patience)
    gen = np.random.default_rng(cfg.train.seed)
    stopped = "max_steps" if p.supervised_max_steps == max_steps else "max_epochs"
    t0, step, best_step = time.time(), 0, 0
    while step < max_steps and not best.stop:
        order = train_idx[gen.permutation(len(train_idx))]
        for start in range(0, per_epoch * batch, batch):
            net.train()
            idx = np.sort(order[start: start + batch])
            loss = F.cross_entropy(net(images_to_float(images[idx])), torch.as_tensor(labels[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if step % check_every == 0 or step == max_steps:
                acc = accuracy(net, images[held_idx], labels[held_idx])
                plateau.step(acc)
                gain = best.update(acc, net)
                best_step = step if gain else best_step
                rate = step / (time.time() - t0)
                log(f"    step {step} (epoch {step / per_epoch:.1f}) loss {loss.item():.3f} held-out {acc:.4f}"
                    f"{' *' if gain else ''} | {rate:.1f} steps/s | {fmt_duration(time.time() - t0)}")
                if best.stop:
                    stopped = "early"
                    break
            if step == max_steps:
                break
    best.restore(net)
    restored = accuracy(net, images[held_idx], labels[held_idx])
    return net, {"steps": step, "epochs": round(step / per_epoch, 2), "best_step": best_step, "holdout_acc": restored,
                 "holdout": len(held_idx), "stopped": stopped, "seconds": round(time.time() - t0, 1)}
