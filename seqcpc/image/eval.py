"""Frozen-feature evaluation of image CPC: linear probe, label efficiency against supervised training from
scratch, and prototypical few-shot episodes, each beside raw pixels and the same encoder with random weights.

Shapes: N images, C channels, H x W pixels, Gh x Gw patch grid, D latent dim, P = probe.pool.
An image's feature is its latent grid z (B, Gh, Gw, D) average-pooled to P x P cells and flattened (D P^2),
the same for trained and random weights. Label fractions are class-balanced subsets of the training split
drawn with a fixed seed; every method sees the same subsets and is scored on the whole test split.
"""
import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.config import Config
from seqcpc.eval.probes import (Standardizer, balanced_subset, feasible_shots, linear_probe, prototypical_episodes,
                                random_init)
from seqcpc.eval.report import confusion_matrix, markdown_table, plot_accuracy_bars, plot_confusion, pyplot, write_report
from seqcpc.image.build import build_image_model
from seqcpc.image.patches import pool_grid
from seqcpc.image.store import images_to_float, load_split, read_info
from seqcpc.train.progress import fmt_duration


@torch.no_grad()
def embed_images(model, images, pool: int, batch: int = 500, log=print, name: str = "") -> np.ndarray:
    """Pooled latent grids of uint8 images (N, H, W, C) -> (N, D P^2) float32, in batches."""
    model.eval()
    out, t0 = [], time.time()
    for start in range(0, len(images), batch):
        z, _ = model.embed(images_to_float(np.asarray(images[start: start + batch])))
        out.append(pool_grid(z, pool).numpy())
        done = start + len(out[-1])
        if done % (20 * batch) == 0 or done == len(images):
            rate = done / max(time.time() - t0, 1e-9)
            log(f"  {name}: embedded {done}/{len(images)} images, {rate:.0f} images/s, "
                f"eta {fmt_duration((len(images) - done) / rate)}")
    return np.concatenate(out)


class Supervised(nn.Module):
    """The baseline: the CPC model's patch encoder, pooled like the probe's features, with a linear head."""

    def __init__(self, model, pool: int, num_classes: int):
        super().__init__()
        self.model, self.pool = model, pool
        self.head = nn.Linear(model.encoder.dim * pool * pool, num_classes)

    def forward(self, x):  # (B, C, H, W): patches are augmented in training mode, as in pretraining
        return self.head(pool_grid(self.model.encoder(self.model.patches(x)), self.pool))


def train_supervised(cfg: Config, images, labels, test_images, test_labels, num_classes: int,
                     log=print) -> tuple[float, int]:
    """Train the encoder from scratch on (images, labels) with cross-entropy; return (test accuracy, steps)."""
    probe_cfg = cfg.probe
    net = Supervised(random_init(build_image_model, cfg.model, cfg.train.seed), probe_cfg.pool, num_classes)
    batch = min(cfg.data.batch_size, len(images))
    steps = min(probe_cfg.supervised_epochs * math.ceil(len(images) / batch), probe_cfg.supervised_max_steps)
    opt = torch.optim.AdamW(net.parameters(), lr=probe_cfg.supervised_lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, probe_cfg.supervised_lr, total_steps=steps, pct_start=0.1)
    gen = np.random.default_rng(cfg.train.seed)
    net.train()
    t0 = time.time()
    for step in range(steps):
        idx = np.sort(gen.choice(len(images), batch, replace=False))
        loss = F.cross_entropy(net(images_to_float(images[idx])), torch.as_tensor(labels[idx]))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % 100 == 0 or step + 1 == steps:
            log(f"    step {step + 1}/{steps} loss {loss.item():.3f} ({fmt_duration(time.time() - t0)})")
    net.eval()
    with torch.no_grad():
        pred = np.concatenate([net(images_to_float(np.asarray(test_images[s: s + 500]))).argmax(1).numpy()
                               for s in range(0, len(test_images), 500)])
    return float((pred == test_labels).mean()), steps


def run_image_probes(cfg: Config, model, out_dir, log=print) -> dict:
    """Every evaluation of the image recipe; writes results.{json,md} and plots to out_dir."""
    probe_cfg, root = cfg.probe, cfg.data.images
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = read_info(root)["classes"]
    (x_train, y_train), (x_test, y_test) = load_split(root, "train"), load_split(root, "test")
    y_train, y_test = np.array(y_train), np.array(y_test)  # writable copies of the memory-mapped labels
    log(f"image probes: {len(x_train)} training and {len(x_test)} test images, {len(classes)} classes")
    feats = {"cpc": model, "random_init": random_init(build_image_model, cfg.model, cfg.train.seed)}
    feats = {name: {split: embed_images(m, x, probe_cfg.pool, log=log, name=f"{name} {split}")
                    for split, x in (("train", x_train), ("test", x_test))} for name, m in feats.items()}
    feats["pixels"] = {split: images_to_float(np.asarray(x)).flatten(1).numpy()
                       for split, x in (("train", x_train), ("test", x_test))}

    fractions = {f: balanced_subset(y_train, f, cfg.train.seed) for f in probe_cfg.label_fractions}
    linear = {name: {} for name in feats}
    supervised = {}
    for f, idx in fractions.items():
        log(f"label fraction {f:g}: {len(idx)} labelled training images")
        for name, fs in feats.items():
            r = linear_probe(fs["train"][idx], y_train[idx], fs["test"], y_test, len(classes),
                             l2_grid=probe_cfg.l2_grid, seed=cfg.train.seed)
            linear[name][f] = r["acc"]
            if name == "cpc" and f == max(fractions):
                matrix = confusion_matrix(y_test, r["pred"], len(classes))
            log(f"  linear probe on {name}: {r['acc']:.4f} (l2 {r['l2']:g})")
        acc, steps = train_supervised(cfg, x_train[idx], y_train[idx], x_test, y_test, len(classes), log)
        supervised[f] = {"acc": acc, "steps": steps}
        log(f"  supervised from scratch ({steps} steps): {acc:.4f}")

    few_shot = few_shot_episodes(feats, y_test, probe_cfg, cfg.train.seed, log)
    results = {"linear": linear, "supervised": supervised, "few_shot": few_shot,
               "counts": {"train": len(x_train), "test": len(x_test), "classes": len(classes),
                          "labelled": {f: len(idx) for f, idx in fractions.items()}}}
    plot_confusion(matrix, out_dir / "confusion.png", classes, "linear probe on CPC features (test, all labels)")
    write_image_report(results, out_dir, log)
    return results


def few_shot_episodes(feats: dict, y_test, probe_cfg, seed: int, log=print) -> dict:
    """Prototypical episodes on the test split, features standardised with training statistics. A shot count
    for which fewer than n_way classes have shots + n_query test images is skipped with a message."""
    shots = feasible_shots(np.unique(y_test, return_counts=True)[1], probe_cfg, "test images", log)
    if not shots:
        return {}
    few_shot = {name: {} for name in feats}
    for name, fs in feats.items():
        scale = Standardizer.fit(fs["train"])
        for k in shots:
            few_shot[name][f"{probe_cfg.n_way}way_{k}shot"] = prototypical_episodes(
                scale(fs["test"]), y_test, n_way=probe_cfg.n_way, k_shot=k, n_query=probe_cfg.n_query,
                episodes=probe_cfg.episodes, seed=seed)
        log(f"  few-shot {name}: " + ", ".join(f"{k} {v['mean']:.3f} ± {v['ci95']:.3f}"
                                               for k, v in few_shot[name].items()))
    return few_shot


def plot_label_efficiency(linear: dict, supervised: dict, path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    curves = {f"linear on {n}": accs for n, accs in linear.items()}
    curves["supervised from scratch"] = {f: r["acc"] for f, r in supervised.items()}
    for label, accs in curves.items():
        fs = sorted(accs)
        ax.plot([100 * f for f in fs], [100 * accs[f] for f in fs], marker="o", label=label)
    ax.set(xscale="log", xlabel="% of training labels", ylabel="test accuracy %", title="label efficiency")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_image_report(results: dict, out_dir: Path, log=print) -> str:
    linear, supervised, few_shot = results["linear"], results["supervised"], results["few_shot"]
    fractions = sorted(supervised)
    rows = [[f"linear on {name}"] + [f"{100 * accs[f]:.1f}" for f in fractions] for name, accs in linear.items()]
    rows.append(["supervised from scratch"] + [f"{100 * supervised[f]['acc']:.1f} ({supervised[f]['steps']} steps)"
                                               for f in fractions])
    table = markdown_table(["method", *(f"{100 * f:g}% labels" for f in fractions)], rows)
    shots = list(next(iter(few_shot.values()), {}))
    if shots:
        table += "\n\n" + markdown_table(["features", *shots], [
            [name] + [f"{100 * r[s]['mean']:.1f} ± {100 * r[s]['ci95']:.1f}" for s in shots]
            for name, r in few_shot.items()])
    counts = results["counts"]
    facts = (f"{counts['train']} training / {counts['test']} test images, {counts['classes']} classes; "
             f"labelled subsets: {counts['labelled']}")
    write_report(out_dir, "Image probes (test accuracy %)", facts, table, results, log)
    plot_label_efficiency(linear, supervised, out_dir / "label_efficiency.png")
    if shots:
        plot_accuracy_bars({s: {n: r[s]["mean"] for n, r in few_shot.items()} for s in shots},
                           out_dir / "few_shot.png", "prototypical few-shot (test split)")
    return table
