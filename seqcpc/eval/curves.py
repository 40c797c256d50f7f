"""Learning curves: probe results of a run's checkpoints at several step counts, as a table and one plot per
measure (against training steps and against training minutes), with the baselines (probed once) as lines.

A point is {"step", "train_s" (the run's training seconds up to it), "probe_s", "results": {features:
{measure: value}}, "baselines": the features of results that are baselines (e.g. MFCC, random weights)}.
Measures whose name starts with "abx" are error rates (lower is better); the others accuracies or scores.
"""
from pathlib import Path

from seqcpc.eval.report import markdown_table, pyplot, save_figure

def curve_rows(points: dict[str, list[dict]]) -> list[dict]:
    """Flat rows, one per (run, features, step): {"run", "features", "step", "train_min", "probe_min", measures};
    a baseline's step is None."""
    rows = []
    for run, run_points in points.items():
        for p in run_points:
            for features, values in p["results"].items():
                trained = features not in p["baselines"]
                rows.append({"run": run, "features": features, "step": p["step"] if trained else None,
                             "train_min": p["train_s"] / 60 if trained else None,
                             "probe_min": p["probe_s"] / 60 if trained else None,
                             **{m: v for m, v in values.items() if not m.endswith("_ci95")}})
    return rows


def curves_markdown(rows: list[dict], config: str, overrides: list[str], runs: dict) -> str:
    """The table of every point, then the baselines, and what each run is."""
    names = [m for m in dict.fromkeys(k for r in rows for k in r) if k_is_measure(m)]
    table = [[r["run"], r["features"], "" if r["step"] is None else str(r["step"]),
              "" if r["train_min"] is None else f"{r['train_min']:.1f}",
              "" if r["probe_min"] is None else f"{r['probe_min']:.1f}",
              *[f"{100 * r[m]:.1f}" if isinstance(r.get(m), float) else "" for m in names]]
             for r in sorted(rows, key=lambda r: (r["step"] is None, r["run"], r["step"] or 0, r["features"]))]
    described = "\n".join(f"- `{name}`: {' '.join(extra) or 'the config as it is'}" for name, extra in runs.items())
    return (f"# Learning curves\n\nRuns of `{config}` {' '.join(overrides)}\n\n{described}\n\n"
            f"Training minutes are the run's own (resumed parts summed); probe minutes those of the point's probes. "
            f"Measures in %; abx_* are error rates (lower is better). The baselines (no step) are probed "
            f"once, with the first run's first point.\n\n"
            + markdown_table(["run", "features", "step", "train min", "probe min", *names], table))


def k_is_measure(key: str) -> bool:
    return key not in ("run", "features", "step", "train_min", "probe_min")


def plot_curves(rows: list[dict], out_dir) -> list[Path]:
    """curve_<measure>.png in out_dir for every measure of the trained rows: the measure against steps (left) and
    against training minutes (right), one line per run, each baseline a horizontal line. Returns the paths."""
    plt, paths = pyplot(), []
    trained = [r for r in rows if r["step"] is not None]
    for measure in dict.fromkeys(m for r in trained for m in r if k_is_measure(m)):
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
        for ax, x, x_label in ((axes[0], "step", "training steps"), (axes[1], "train_min", "training minutes")):
            lines = dict.fromkeys((r["run"], r["features"]) for r in trained)
            for run, features in lines:
                line = sorted((r[x], r[measure]) for r in trained
                              if (r["run"], r["features"]) == (run, features) and measure in r)
                label = run if len({f for _, f in lines}) == 1 else f"{run} {features}"
                ax.plot(*zip(*line), marker="o", label=label)
            for i, (features, value) in enumerate(baselines(rows, measure).items()):
                ax.axhline(value, color="grey", linestyle=("--", ":", "-.")[i % 3], label=features)
            ax.set(xlabel=x_label, title=measure + (" (error, lower is better)" if measure.startswith("abx") else ""))
        axes[0].set_ylabel(measure)
        axes[1].legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1))
        fig.tight_layout()
        path = Path(out_dir) / f"curve_{measure}.png"
        save_figure(fig, path)
        paths.append(path)
    return paths


def baselines(rows: list[dict], measure: str) -> dict[str, float]:
    """Each baseline's value of `measure` (from the first run that probed it)."""
    found = {}
    for r in rows:
        if r["step"] is None and measure in r:
            found.setdefault(r["features"], r[measure])
    return found
