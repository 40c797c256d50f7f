"""Scores of the long-tailed benchmark (SDCLR, Jiang et al. ICML 2021): features pretrained on a long-tailed
subset, probed on the balanced train split, scored on the test split per class, and the classes grouped by how
many images they had in pretraining. Numpy in, floats out; C = number of classes.
"""
import numpy as np

from seqcpc.eval.report import markdown_table, pyplot, save_figure

GROUP_NAMES = {2: ("many", "few"), 3: ("many", "medium", "few")}
SCALARS = ("acc", "many", "medium", "few", "balancedness")


def per_class_accuracy(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(C,) fraction of each class's test items predicted right; NaN for a class absent from y_true."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if len(y) and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes})")
    total = np.bincount(y_true, minlength=num_classes).astype(float)
    right = np.bincount(y_true[y_true == y_pred], minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, right / total, np.nan)


def class_groups(counts, parts: int = 3) -> dict[str, np.ndarray]:
    """Class indices grouped by pretraining count: classes sorted by count, largest first (equal counts by class
    index), then cut by np.array_split into `parts` groups of (nearly) equal size, the larger groups first
    (10 classes -> 4 / 3 / 3). parts 3 names them "many", "medium", "few"; parts 2 "many", "few"."""
    if parts not in GROUP_NAMES:
        raise ValueError(f"parts must be one of {sorted(GROUP_NAMES)}, not {parts}")
    counts = np.asarray(counts)
    if len(counts) < parts:
        raise ValueError(f"{len(counts)} classes cannot make {parts} groups")
    order = np.lexsort((np.arange(len(counts)), -counts))  # last key first: count descending, then index
    return dict(zip(GROUP_NAMES[parts], np.array_split(order, parts)))


def group_report(y_true, y_pred, counts) -> dict:
    """Overall accuracy, the mean per-class accuracy of the many / medium / few groups, and "balancedness": the
    population std (ddof=0) of those three, SDCLR's "Std" (lower is more balanced). "per_class" lists each class's
    accuracy by class index, None for a class absent from y_true."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    per_class = per_class_accuracy(y_true, y_pred, len(counts))
    groups = {name: float(np.nanmean(per_class[members])) if np.isfinite(per_class[members]).any() else np.nan
              for name, members in class_groups(counts).items()}
    return {"acc": float(np.mean(y_true == y_pred)), **groups,
            "balancedness": float(np.std(list(groups.values()))),
            "per_class": [None if np.isnan(a) else float(a) for a in per_class]}


def summarise_draws(reports: list[dict]) -> dict:
    """{name: {"mean", "std"}} of each scalar of group_report over the draws, and "draws": their number. std is
    the sample std (ddof=1) over two or more draws, None for a single draw (its spread is unknown, not 0)."""
    if not reports:
        raise ValueError("no reports to summarise")
    summary = {}
    for name in SCALARS:
        values = np.array([r[name] for r in reports], dtype=float)
        summary[name] = {"mean": float(values.mean()),
                         "std": float(values.std(ddof=1)) if len(values) > 1 else None}
    return summary | {"draws": len(reports)}


def _cell(value) -> str:
    """A group_report scalar (a float) or a summarise_draws one ({"mean", "std"}) in percent."""
    if isinstance(value, dict):
        spread = "" if value["std"] is None else f" ± {100 * value['std']:.1f}"
        return f"{100 * value['mean']:.1f}{spread}"
    return f"{100 * value:.1f}"


def group_table(results: dict[str, dict]) -> str:
    """A Markdown table, one row per method: overall, many, medium, few accuracy and balancedness, in percent,
    "mean ± std" for summaries over draws."""
    header = ["method", "acc %", "many %", "medium %", "few %", "std % (balancedness)"]
    return markdown_table(header, [[method, *(_cell(r[name]) for name in SCALARS)]
                                   for method, r in results.items()])


def plot_per_class(curves: dict[str, list[tuple[float, float]]], path, title: str = "") -> None:
    """Each class's test accuracy against its number of pretraining images (log x axis), one line per method
    (curves' keys) through its (count, accuracy) points in order of count (an accuracy None is left out); a PNG
    at path."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, points in curves.items():
        points = sorted(((c, np.nan if a is None else a) for c, a in points), key=lambda p: p[0])
        ax.plot([c for c, _ in points], [a for _, a in points], marker="o", markersize=4, label=method)
    ax.set_xscale("log")
    ax.set(xlabel="pretraining images of the class", ylabel="test accuracy of the class", ylim=(0, 1.02),
           title=title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    save_figure(fig, path)
