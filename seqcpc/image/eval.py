"""Frozen-feature evaluation of image CPC: linear probe, label efficiency against supervised training from
scratch, and prototypical few-shot episodes, each beside raw pixels and the same encoder with random weights.

Shapes: N images, C channels, H x W pixels, Gh x Gw patch grid, D latent dim, P = probe.pool.
An image's feature is its latent grid z (B, Gh, Gw, D) average-pooled to P x P cells and flattened (D P^2),
the same for trained and random weights. Label fractions are class-balanced subsets of the training split
drawn with a fixed seed; every method sees the same subsets and is scored on the whole test split.
"""
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from seqcpc.config import Config
from seqcpc.errors import DataError
from seqcpc.eval.probes import (BestWeights, Standardizer, balanced_subset, feasible_shots, linear_probe,
                                prototypical_episodes, random_init, stratified_holdout)
from seqcpc.files import atomic_write_text
from seqcpc.eval.report import confusion_matrix, markdown_table, plot_accuracy_bars, plot_confusion, pyplot, write_report
from seqcpc.assembly import build_model, check_config, complete_config
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
    """The baseline: the pretrained model's patch encoder (any image objective's: PatchCPC, a pretext task),
    pooled like the probe's features, with a linear head."""

    def __init__(self, model, pool: int, num_classes: int):
        super().__init__()
        self.model, self.pool = model, pool
        self.head = nn.Linear(model.encoder.dim * pool * pool, num_classes)

    def forward(self, x):  # (B, C, H, W): patches are augmented in training mode, as in pretraining
        return self.head(pool_grid(self.model.encoder(self.model.patches(x)), self.pool))


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
    net = Supervised(random_init(build_model, cfg, cfg.train.seed), p.pool, num_classes)
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


def run_image_probes(cfg: Config, model, out_dir, log=print, others: dict = None, main_name: str = None) -> dict:
    """Every evaluation of the image recipe; writes results.{json,md} and plots to out_dir. The features of
    `model` (named main_name, by default its objective, e.g. cpc) and of each pretrained model in `others` (name
    -> model) are
    probed beside random weights and raw pixels; the supervised baseline's result for each label fraction is
    kept in out_dir/supervised_<fraction>.json, so a killed evaluation does not train it again."""
    probe_cfg, root = cfg.probe, cfg.data.images
    cfg = complete_config(cfg)  # an unset model.encoder.in_channels takes the images' channels
    check_config(cfg)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = read_info(root)["classes"]
    (x_train, y_train), (x_test, y_test) = load_split(root, "train"), load_split(root, "test")
    y_train, y_test = np.array(y_train), np.array(y_test)  # writable copies of the memory-mapped labels
    log(f"image probes: {len(x_train)} training and {len(x_test)} test images, {len(classes)} classes")
    main = main_name or cfg.objective.name
    models = {main: model, **(others or {}),
              "random_init": random_init(build_model, cfg, cfg.train.seed)}
    feats = {name: {split: embed_images(m, x, probe_cfg.pool, log=log, name=f"{name} {split}")
                    for split, x in (("train", x_train), ("test", x_test))} for name, m in models.items()}
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
            if name == main and f == max(fractions):
                matrix = confusion_matrix(y_test, r["pred"], len(classes))
            log(f"  linear probe on {name}: {r['acc']:.4f} (l2 {r['l2']:g})")
        cache = out_dir / f"supervised_{f:g}.json"
        if cache.is_file():
            supervised[f] = json.loads(cache.read_text())
        else:
            log(f"  supervised from scratch on {len(idx)} images")
            supervised[f] = train_supervised(cfg, x_train[idx], y_train[idx], x_test, y_test, len(classes), log)
            atomic_write_text(cache, json.dumps(supervised[f]))
        r = supervised[f]
        log(f"  supervised from scratch: {r['acc']:.4f} ({r['epochs']} epochs, stopped: {r['stopped']}, "
            f"{fmt_duration(r['seconds'])})")

    few_shot = few_shot_episodes(feats, y_test, probe_cfg, cfg.train.seed, log)
    results = {"linear": linear, "supervised": supervised, "few_shot": few_shot, "main": main,
               "counts": {"train": len(x_train), "test": len(x_test), "classes": len(classes),
                          "labelled": {f: len(idx) for f, idx in fractions.items()}}}
    plot_confusion(matrix, out_dir / "confusion.png", classes,
                   f"linear probe on {main} features (test, all labels)")
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


def plot_label_curves(curves: dict, path, title: str = "label efficiency") -> None:
    """Test accuracy against the label fraction, one line per label: curves[label][fraction] is an accuracy or a
    {"mean", "std"} dict (drawn with error bars)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for label, accs in curves.items():
        fs = sorted(accs, key=float)
        stats = [accs[f] if isinstance(accs[f], dict) else {"mean": accs[f], "std": 0.0} for f in fs]
        ax.errorbar([100 * float(f) for f in fs], [100 * s["mean"] for s in stats],
                    yerr=[100 * s["std"] for s in stats], marker="o", capsize=3, label=label)
    ax.set(xscale="log", xlabel="% of training labels", ylabel="test accuracy %", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_label_efficiency(linear: dict, supervised: dict, path) -> None:
    curves = {f"linear on {n}": accs for n, accs in linear.items()}
    curves["supervised from scratch"] = {f: r["acc"] for f, r in supervised.items()}
    plot_label_curves(curves, path)


def write_image_report(results: dict, out_dir: Path, log=print) -> str:
    linear, supervised, few_shot = results["linear"], results["supervised"], results["few_shot"]
    fractions = sorted(supervised)
    rows = [[f"linear on {name}"] + [f"{100 * accs[f]:.1f}" for f in fractions] for name, accs in linear.items()]
    rows.append(["supervised from scratch"] + [f"{100 * supervised[f]['acc']:.1f} ({supervised[f]['epochs']:g} epochs)"
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


def mean_std(values) -> dict:
    """{"mean", "std" (sample std; 0 for one value), "n"} of a list of numbers."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values)}


def seed_summary(per_seed: dict) -> dict:
    """Mean and std over seeds of run_image_probes' results (each seed's results.json, as loaded from JSON):
    linear probes per features and label fraction, the supervised baseline (with its epochs and minutes), and
    few-shot accuracy (the mean over episodes of each seed, then mean and std over seeds)."""
    runs = list(per_seed.values())
    fractions = sorted(runs[0]["supervised"], key=float)
    sup = [r["supervised"] for r in runs]
    return {
        "seeds": list(per_seed),
        "linear": {name: {f: mean_std([r["linear"][name][f] for r in runs]) for f in fractions}
                   for name in runs[0]["linear"]},
        "supervised": {f: {**mean_std([s[f]["acc"] for s in sup]), "epochs": mean_std([s[f]["epochs"] for s in sup]),
                           "minutes": mean_std([s[f]["seconds"] / 60 for s in sup]),
                           "stopped": sorted({s[f]["stopped"] for s in sup})} for f in fractions},
        "few_shot": {name: {k: mean_std([r["few_shot"][name][k]["mean"] for r in runs]) for k in shots}
                     for name, shots in runs[0]["few_shot"].items()},
    }


def pm(stat: dict) -> str:
    """83.7 ± 0.4 (percent; the ± is the std over seeds, left out for one seed)."""
    return f"{100 * stat['mean']:.1f}" + (f" ± {100 * stat['std']:.1f}" if stat["n"] > 1 else "")


def write_seed_report(summary: dict, out_dir: Path, facts: str, log=print) -> str:
    """results.{md,json} and label_efficiency.png (error bars: std over seeds) of seed_summary's numbers."""
    fractions = list(summary["supervised"])
    rows = [[f"linear on {name}"] + [pm(accs[f]) for f in fractions] for name, accs in summary["linear"].items()]
    rows.append(["supervised from scratch"] + [
        f"{pm(r)} ({r['epochs']['mean']:.0f} epochs, {r['minutes']['mean']:.1f} min)"
        for r in summary["supervised"].values()])
    table = markdown_table(["method", *(f"{100 * float(f):g}% labels" for f in fractions)], rows)
    shots = {k for r in summary["few_shot"].values() for k in r}
    if shots:
        shots = sorted(shots)
        rows = [[name] + [pm(r[s]) for s in shots] for name, r in summary["few_shot"].items()]
        table += "\n\n" + markdown_table(["features (few-shot)", *shots], rows)
    write_report(out_dir, f"Image benchmark (test accuracy %, mean ± std over {len(summary['seeds'])} seed(s))",
                 facts, table, summary, log)
    curves = {f"linear on {n}": accs for n, accs in summary["linear"].items()}
    curves["supervised from scratch"] = summary["supervised"]
    plot_label_curves(curves, out_dir / "label_efficiency.png",
                      f"label efficiency ({len(summary['seeds'])} seed(s), bars: std)")
    return table
