"""The image table's summary over seeds: mean ± std of each seed's probe results (seqcpc/image/eval.py), the
supervised baseline's budget per label fraction, the minutes each part took, and the label-efficiency plot with
error bars. A cell that fewer seeds than the table's have reached says how many it holds.
"""
from pathlib import Path

import numpy as np

from seqcpc.eval.report import markdown_table, write_report
from seqcpc.image.eval import plot_label_curves


def mean_std(values) -> dict:
    """{"mean", "std" (sample std; 0 for one value), "n"} of a list of numbers."""
    values = np.asarray(values, dtype=float)
    return {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            "n": len(values)}


def seed_summary(per_seed: dict) -> dict:
    """Mean and std over seeds of run_image_probes' results (each seed's results.json, as loaded from JSON):
    linear probes per features and label fraction; the supervised baseline over the seeds that trained it at
    that fraction (its accuracy, epochs trained, training images and minutes); few-shot accuracy (the mean over
    episodes of each seed, then mean and std over seeds); the minutes of embedding each model's features."""
    runs = list(per_seed.values())
    fractions = sorted(next(iter(runs[0]["linear"].values())), key=float)
    sup = {f: [r["supervised"][f] for r in runs if f in r["supervised"]] for f in fractions}
    return {
        "seeds": list(per_seed),
        "linear": {name: {f: mean_std([r["linear"][name][f] for r in runs]) for f in fractions}
                   for name in runs[0]["linear"]},
        "supervised": {f: {**mean_std([s["acc"] for s in done]), "epochs": mean_std([s["epochs"] for s in done]),
                           "train_images": mean_std([s["train_images"] for s in done]),
                           "minutes": mean_std([s["seconds"] / 60 for s in done])}
                       for f, done in sup.items() if done},
        "few_shot": {name: {k: mean_std([r["few_shot"][name][k]["mean"] for r in runs]) for k in shots}
                     for name, shots in runs[0]["few_shot"].items()},
        "embedding_minutes": {name: mean_std([r["embedding_seconds"][name] / 60 for r in runs])
                              for name in runs[0]["embedding_seconds"]},
    }


def pm(stat: dict, seeds: int) -> str:
    """83.7 ± 0.4 (percent; the ± is the std over seeds, left out for one seed), then "(n of N seeds)" when the
    cell holds fewer than the table's N seeds."""
    text = f"{100 * stat['mean']:.1f}" + (f" ± {100 * stat['std']:.1f}" if stat["n"] > 1 else "")
    return text + (f" ({stat['n']} of {seeds} seeds)" if stat["n"] < seeds else "")


def write_seed_report(summary: dict, out_dir: Path, facts: str, log=print) -> str:
    """results.{md,json} and label_efficiency.png (error bars: std over seeds) of seed_summary's numbers."""
    seeds = len(summary["seeds"])
    fractions = list(next(iter(summary["linear"].values())))
    rows = [[f"linear on {name}"] + [pm(accs[f], seeds) for f in fractions] for name, accs in summary["linear"].items()]
    sup = summary["supervised"]
    rows.append(["supervised from scratch"] + [
        f"{pm(sup[f], seeds)}, {sup[f]['epochs']['mean']:g} epochs of {sup[f]['train_images']['mean']:.0f} images, "
        f"{sup[f]['minutes']['mean']:.1f} min" if f in sup else "-" for f in fractions])
    table = markdown_table(["method", *(f"{100 * float(f):g}% labels" for f in fractions)], rows)
    shots = sorted({k for r in summary["few_shot"].values() for k in r})
    if shots:
        rows = [[name] + [pm(r[s], seeds) for s in shots] for name, r in summary["few_shot"].items()]
        table += "\n\n" + markdown_table(["features (few-shot)", *shots], rows)
    write_report(out_dir, f"Image benchmark (test accuracy %, mean ± std over {seeds} seed(s))", facts, table, summary,
                 log)
    curves = {f"linear on {n}": accs for n, accs in summary["linear"].items()}
    curves["supervised from scratch"] = sup
    plot_label_curves(curves, out_dir / "label_efficiency.png", f"label efficiency ({seeds} seed(s), bars: std)")
    return table
