"""Frozen-feature evaluation of image CPC: linear probe, label efficiency against supervised training from
scratch, and prototypical few-shot episodes, each beside raw pixels and the same encoder with random weights.

Shapes: N images, C channels, H x W pixels, Gh x Gw patch grid, D latent dim, P = probe.pool.
An image's feature is its latent grid z (B, Gh, Gw, D) average-pooled to P x P cells and flattened (D P^2),
the same for trained and random weights. Label fractions are class-balanced subsets of the training split
drawn with a fixed seed; every method sees the same subsets and is scored on the whole test split.

Each evaluation is a probe of IMAGE_PROBES, run by the shared loop (seqcpc/eval/run.py). Each model's features
are embedded once and cached on disk (seqcpc/image/features.py); the supervised baseline is trained by
seqcpc/image/supervised.py, with the budget chosen once and kept in a schedule file that every seed reads. The
summary over seeds of the image table is seqcpc/image/summary.py.
"""
import json
from pathlib import Path
from typing import NamedTuple

import numpy as np

from seqcpc.config import Config
from seqcpc.eval.probes import (Standardizer, balanced_subset, feasible_shots, linear_probe, prototypical_episodes,
                                random_init)
from seqcpc.eval.report import (confusion_matrix, markdown_table, plot_accuracy_bars, plot_confusion, pyplot,
                                save_figure)
from seqcpc.eval.run import ProbeContext, Report, run_probes, shared
from seqcpc.files import atomic_write_text
from seqcpc.assembly import check_config, complete_config
from seqcpc.image.features import cached_features
from seqcpc.image.store import images_file, images_to_float, load_split, read_info
from seqcpc.image.supervised import chosen_budget, train_supervised
from seqcpc.train.progress import fmt_duration


# the version of this evaluation's protocol in results.json: 2 chose the supervised budget once for every seed,
# where 1 stopped each run early on a held-out tenth of its subset; the table probes a seed of another version again
PROTOCOL = 2


class ImageData(NamedTuple):
    classes: list[str]
    train: tuple  # (images (N, H, W, C) uint8, labels (N,))
    test: tuple
    models: dict  # name -> a model whose pooled latents are probed: the main one, `others`, random_init
    main: str  # the name of the evaluated model


@shared
def embedded(ctx: ProbeContext) -> tuple[dict, dict]:
    """({features: {split: (N, D P^2)}}, {model: seconds its embedding took}): each model's pooled latent grids
    of both splits, read from the feature cache (probe.feature_cache) or embedded and cached, then the raw pixels."""
    p, splits = ctx.cfg.probe, {"train": ctx.data.train[0], "test": ctx.data.test[0]}
    cache = Path(p.feature_cache) if p.feature_cache else ctx.out_dir / "features"
    feats, seconds = {}, {}
    for name, model in ctx.data.models.items():
        feats[name], seconds[name] = {}, 0.0
        for split, x in splits.items():
            feats[name][split], info = cached_features(model, x, p.pool, cache, name, split,
                                                       images_file(ctx.cfg.data.images, split), p.embed_batch, ctx.log)
            seconds[name] += info["seconds"]
    feats["pixels"] = {split: images_to_float(np.asarray(x)).flatten(1).numpy() for split, x in splits.items()}
    return feats, seconds


def image_features(ctx: ProbeContext) -> dict:
    """{features: {split: (N, D P^2)}}: embedded's features."""
    return embedded(ctx)[0]


@shared
def label_subsets(ctx: ProbeContext) -> dict:
    """{fraction: indices}: the class-balanced labelled training subset of each probe.label_fractions."""
    return {f: balanced_subset(ctx.data.train[1], f, ctx.cfg.train.seed) for f in ctx.cfg.probe.label_fractions}


@shared
def linear_fit(ctx: ProbeContext, name: str, fraction: float) -> dict:
    """linear_probe's result for one feature set trained on one label fraction's subset."""
    (_, y_train), (_, y_test) = ctx.data.train, ctx.data.test
    feats, idx = image_features(ctx)[name], label_subsets(ctx)[fraction]
    return linear_probe(feats["train"][idx], y_train[idx], feats["test"], y_test, len(ctx.data.classes),
                        l2_grid=ctx.cfg.probe.l2_grid, seed=ctx.cfg.train.seed)


def linear_probes(ctx: ProbeContext) -> dict:
    """linear: {features: {fraction: test accuracy}} of a linear probe on each label fraction's subset."""
    linear = {name: {} for name in image_features(ctx)}
    for f, idx in label_subsets(ctx).items():
        ctx.log(f"label fraction {f:g}: {len(idx)} labelled training images")
        for name, accs in linear.items():
            r = linear_fit(ctx, name, f)
            accs[f] = r["acc"]
            ctx.log(f"  linear probe on {name}: {r['acc']:.4f} (l2 {r['l2']:g})")
    return {"linear": linear}


def supervised_fractions(ctx: ProbeContext) -> list[float]:
    """The label fractions with a supervised baseline: probe.supervised_fractions, else every label fraction."""
    return ctx.cfg.probe.supervised_fractions or list(label_subsets(ctx))


def supervised_baseline(ctx: ProbeContext) -> dict:
    """supervised: {fraction: train_supervised's result} of the encoder trained from scratch on each labelled
    subset of supervised_fractions, each kept in out_dir/supervised_<fraction>.json and read back from there
    while its budget is the schedule's. A budget chosen here is added to the schedule file (probe.
    supervised_schedule), with a plot of its validation curves beside it."""
    (x_train, y_train), (x_test, y_test) = ctx.data.train, ctx.data.test
    path = Path(ctx.cfg.probe.supervised_schedule or ctx.out_dir / "supervised_schedule.json")
    schedule = json.loads(path.read_text()) if path.is_file() else {}
    supervised = {}
    for f in supervised_fractions(ctx):
        idx, cache = label_subsets(ctx)[f], ctx.out_dir / f"supervised_{f:g}.json"
        done = json.loads(cache.read_text()) if cache.is_file() else {}
        entry = chosen_budget(ctx.cfg, f, schedule)
        if entry is not None and done.get("budget") == entry["epochs"]:  # (a result of the old protocol has none)
            supervised[f] = done
        else:
            ctx.log(f"label fraction {f:g}: supervised from scratch on {len(idx)} labelled images")
            supervised[f] = train_supervised(ctx.cfg, f, x_train, y_train, idx, x_test, y_test, len(ctx.data.classes),
                                             schedule, ctx.log)
            if supervised[f]["selected"]:
                atomic_write_text(path, json.dumps(schedule, indent=2))
                plot_schedule(schedule, path.with_suffix(".png"))
            atomic_write_text(cache, json.dumps(supervised[f]))
        r = supervised[f]
        ctx.log(f"  supervised from scratch on {100 * f:g}% of the labels: {r['acc']:.4f} ({r['epochs']:g} epochs on "
                f"{r['train_images']} images, {fmt_duration(r['seconds'])})")
    return {"supervised": supervised}


def plot_schedule(schedule: dict, path) -> None:
    """The validation curves of each selection run of `schedule` (one panel per label fraction, one line per
    budget), the chosen budget drawn bold: a curve that has flattened shows a budget long enough."""
    plt = pyplot()
    fig, axes = plt.subplots(1, len(schedule), figsize=(4.5 * len(schedule), 3.8), squeeze=False)
    for ax, (fraction, entry) in zip(axes[0], sorted(schedule.items(), key=lambda kv: float(kv[0]))):
        for run in entry["runs"]:
            chosen = run["budget"] == entry["epochs"]
            ax.plot([c["epoch"] for c in run["curve"]], [100 * c["val_acc"] for c in run["curve"]], marker="o",
                    lw=2.5 if chosen else 1, label=f"{run['budget']:g} epochs" + (" (chosen)" if chosen else ""))
        ax.set(xlabel="epoch", ylabel="validation accuracy %",
               title=f"{100 * float(fraction):g}% labels, seed {entry['seed']}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("supervised baseline: budgets tried")
    fig.tight_layout()
    save_figure(fig, path)


def few_shot_probe(ctx: ProbeContext) -> dict:
    """few_shot: {features: {<n>way_<k>shot: episodes' mean and ci95}} of prototypical episodes on the test split,
    features standardised with training statistics. A shot count for which fewer than n_way classes have shots +
    n_query test images is skipped with a message."""
    p, y_test = ctx.cfg.probe, ctx.data.test[1]
    shots = feasible_shots(np.unique(y_test, return_counts=True)[1], p, "test images", ctx.log)
    if not shots:
        return {"few_shot": {}}
    few_shot = {name: {} for name in image_features(ctx)}
    for name, episodes in few_shot.items():
        feats = image_features(ctx)[name]
        test = Standardizer.fit(feats["train"])(feats["test"])
        for k in shots:
            episodes[f"{p.n_way}way_{k}shot"] = prototypical_episodes(test, y_test, n_way=p.n_way, k_shot=k,
                                                                      n_query=p.n_query, episodes=p.episodes,
                                                                      seed=ctx.cfg.train.seed)
        ctx.log(f"  few-shot {name}: " + ", ".join(f"{k} {v['mean']:.3f} ± {v['ci95']:.3f}"
                                                   for k, v in episodes.items()))
    return {"few_shot": few_shot}


def confusion_plot(ctx: ProbeContext) -> dict:
    """confusion.png: the test confusions of the linear probe on the main model's features with the most labels;
    no rows."""
    d = ctx.data
    fit = linear_fit(ctx, d.main, max(label_subsets(ctx)))
    plot_confusion(confusion_matrix(d.test[1], fit["pred"], len(d.classes)), ctx.out_dir / "confusion.png",
                   d.classes, f"linear probe on {d.main} features (test, all labels)")
    return {}


def image_counts(ctx: ProbeContext) -> dict:
    """protocol (PROTOCOL), main (the evaluated model's name), counts (the images, classes and labelled subsets)
    and embedding_seconds (what embedding each model's features took, when they were embedded); no rows."""
    d = ctx.data
    counts = {"train": len(d.train[0]), "test": len(d.test[0]), "classes": len(d.classes),
              "labelled": {f: len(idx) for f, idx in label_subsets(ctx).items()}}
    return {"protocol": PROTOCOL, "main": d.main, "counts": counts, "embedding_seconds": embedded(ctx)[1]}


IMAGE_PROBES = [linear_probes, supervised_baseline, few_shot_probe, confusion_plot, image_counts]


def run_image_probes(cfg: Config, model, out_dir, log=print, others: dict = None, main_name: str = None) -> dict:
    """Every evaluation of the image recipe (IMAGE_PROBES); writes results.{json,md} and plots to out_dir. The
    features of `model` (named main_name, by default its objective, e.g. cpc) and of each pretrained model in
    `others` (name -> model) are probed beside random weights and raw pixels; the supervised baseline's result for
    each label fraction is kept in out_dir/supervised_<fraction>.json, so a killed evaluation does not train it
    again."""
    cfg = complete_config(cfg)  # an unset model.encoder.in_channels takes the images' channels
    check_config(cfg)
    root = cfg.data.images
    classes = read_info(root)["classes"]
    (x_train, y_train), (x_test, y_test) = load_split(root, "train"), load_split(root, "test")
    log(f"image probes: {len(x_train)} training and {len(x_test)} test images, {len(classes)} classes")
    main = main_name or cfg.objective.name
    models = {main: model, **(others or {}), "random_init": random_init(cfg, cfg.train.seed)}
    data = ImageData(classes, (x_train, np.array(y_train)), (x_test, np.array(y_test)),  # writable label copies
                     models, main)
    return run_probes(IMAGE_PROBES, ProbeContext(cfg, data, Path(out_dir), log), image_report)


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
    save_figure(fig, path)


def plot_label_efficiency(linear: dict, supervised: dict, path) -> None:
    curves = {f"linear on {n}": accs for n, accs in linear.items()}
    curves["supervised from scratch"] = {f: r["acc"] for f, r in supervised.items()}
    plot_label_curves(curves, path)


def image_report(results: dict) -> Report:
    """The label-efficiency table (linear probes and the supervised baseline) and the few-shot table."""
    linear, supervised, few_shot = results["linear"], results["supervised"], results["few_shot"]
    fractions = sorted(next(iter(linear.values())))
    rows = [[f"linear on {name}"] + [f"{100 * accs[f]:.1f}" for f in fractions] for name, accs in linear.items()]
    rows.append(["supervised from scratch"] + [
        f"{100 * supervised[f]['acc']:.1f} ({supervised[f]['epochs']:g} epochs)" if f in supervised else "-"
        for f in fractions])
    table = markdown_table(["method", *(f"{100 * f:g}% labels" for f in fractions)], rows)
    shots = list(next(iter(few_shot.values()), {}))
    plots = {"label_efficiency.png": lambda path: plot_label_efficiency(linear, supervised, path)}
    if shots:
        table += "\n\n" + markdown_table(["features", *shots], [
            [name] + [f"{100 * r[s]['mean']:.1f} ± {100 * r[s]['ci95']:.1f}" for s in shots]
            for name, r in few_shot.items()])
        bars = {s: {n: r[s]["mean"] for n, r in few_shot.items()} for s in shots}
        plots["few_shot.png"] = lambda path: plot_accuracy_bars(bars, path, "prototypical few-shot (test split)")
    counts = results["counts"]
    facts = (f"{counts['train']} training / {counts['test']} test images, {counts['classes']} classes; "
             f"labelled subsets: {counts['labelled']}")
    return Report("Image probes (test accuracy %)", facts, table, plots)
