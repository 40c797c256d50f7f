"""Reports of evaluations: Markdown tables, results files, and the plots people look at (accuracy bars,
confusion matrices). One place sets matplotlib up for files (no display needed).
"""
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import confusion_matrix as _sk_confusion

from seqcpc.files import atomic_write, atomic_write_text


def pyplot():
    """matplotlib.pyplot drawing to files (the Agg backend), imported only when a plot is made."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path) -> None:
    """Write a figure as every file is written (seqcpc.files.atomic_write; the format from the suffix of `path`,
    e.g. .png) and close it."""
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format=Path(path).suffix[1:]))
    pyplot().close(fig)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(map(str, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(str, row)) + " |" for row in rows])


def write_report(out_dir, title: str, facts: str, table: str, results: dict, log=print) -> None:
    """results.md (title, facts, table) and results.json in out_dir; the table is also logged."""
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "results.md", f"# {title}\n\n{facts}\n\n{table}\n")
    atomic_write_text(out_dir / "results.json", json.dumps(results, indent=2, default=str))
    log(f"\n{facts}\n{table}\n")


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class. Labels outside [0, C) are refused."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes})")
    return _sk_confusion(y_true, y_pred, labels=np.arange(num_classes))


def plot_confusion(matrix, path, labels=None, title: str = "") -> None:
    """Row-normalised confusion matrix as a PNG.  Cell values are written out only for C <= 20 classes."""
    plt = pyplot()
    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.maximum(counts.sum(1, keepdims=True), 1)  # an empty row stays all zero
    c = len(rates)
    side = float(np.clip(c * 0.12, 6, 16))  # ~100 classes still get a few pixels per cell
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    im = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    if labels is not None:
        font = 9 if c <= 20 else max(3, 9 - c // 20)
        ax.set_xticks(range(c), labels, rotation=90, fontsize=font)
        ax.set_yticks(range(c), labels, fontsize=font)
    if c <= 20:
        for i, j in np.ndindex(c, c):
            ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if rates[i, j] > 0.5 else "black")
    ax.set(xlabel="predicted", ylabel="true", title=title)
    fig.tight_layout()
    save_figure(fig, path)


def plot_accuracy_bars(results: dict[str, dict[str, float]], path, title: str = "") -> None:
    """Grouped bars: one group per probe (results' keys), one bar per feature type, accuracy written on top."""
    plt = pyplot()
    probes = list(results)
    features = list(dict.fromkeys(f for accs in results.values() for f in accs))  # first-seen order
    width = 0.8 / max(len(features), 1)
    fig, ax = plt.subplots(figsize=(min(max(6, 0.45 * len(probes) * len(features) + 3), 20), 4.5))
    for i, feat in enumerate(features):
        # a probe that skipped this feature type gets no bar (NaN) rather than a misleading zero
        accs = [results[p].get(feat, np.nan) for p in probes]
        bars = ax.bar(np.arange(len(probes)) + (i - (len(features) - 1) / 2) * width, accs, width, label=feat)
        ax.bar_label(bars, ["" if np.isnan(a) else f"{a:.1%}" for a in accs], fontsize=8, padding=2)
    ax.set_xticks(range(len(probes)), probes)
    ax.set(ylabel="accuracy", ylim=(0, 1.12), title=title)
    ax.legend(title="features", fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))  # off the bars
    fig.tight_layout()
    save_figure(fig, path)
