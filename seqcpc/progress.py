"""Run progress: one log line per interval with throughput and ETA, a metrics CSV, and the curves plot.

Only rank 0 writes; every function here is a no-op elsewhere.
"""
import csv
import time
from pathlib import Path

FIELDS = ["step", "split", "loss", "acc", "lr", "samples_per_s", "elapsed_s"]


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


class MetricsLog:
    """metrics.csv: one row per logged train interval and per validation, with per-k accuracy columns."""

    def __init__(self, path, steps: int, enabled: bool, resume_step: int | None = None):
        self.path, self.enabled = Path(path), enabled
        self.fields = FIELDS + [f"acc_k{k}" for k in range(1, steps + 1)]
        if not enabled:
            return
        kept = []
        if resume_step is not None and self.path.exists():
            # rows written after the checkpoint we resume from would be repeated: drop them
            with open(self.path, newline="") as f:
                kept = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        with open(self.path, "w", newline="") as f:
            writer = csv.DictWriter(f, self.fields)
            writer.writeheader()
            writer.writerows(kept)

    def write(self, row: dict) -> None:
        if self.enabled:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.fields).writerow(row)

    def rows(self) -> list[dict]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))


def metrics_row(step, split, loss, acc_k, **extra) -> dict:
    row = {"step": step, "split": split, "loss": f"{loss:.5f}", "acc": f"{acc_k.mean():.5f}", **extra}
    row.update({f"acc_k{k + 1}": f"{a:.4f}" for k, a in enumerate(acc_k.tolist())})
    return row


class Throughput:
    """Samples per second and ETA since the last call."""

    def __init__(self, start_step: int, max_steps: int):
        self.t0 = self.t = time.time()
        self.step, self.max_steps = start_step, max_steps

    def update(self, step: int, samples_per_step: int):
        now = time.time()
        steps_per_s = (step - self.step) / max(now - self.t, 1e-9)
        self.t, self.step = now, step
        eta = (self.max_steps - step) / max(steps_per_s, 1e-9)
        return steps_per_s * samples_per_step, eta, now - self.t0


def plot_curves(csv_path, png_path) -> None:
    """Loss (train and validation) and validation accuracy per horizon k against step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    ks = [c for c in rows[0] if c.startswith("acc_k")]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))
    for split, style in (("train", "-"), ("val", "o-")):
        sel = [r for r in rows if r["split"] == split]
        if sel:
            ax_loss.plot([int(r["step"]) for r in sel], [float(r["loss"]) for r in sel], style, label=split)
    acc_rows = [r for r in rows if r["split"] == "val"] or [r for r in rows if r["split"] == "train"]
    cmap = plt.get_cmap("viridis")
    for i, k in enumerate(ks):
        ax_acc.plot([int(r["step"]) for r in acc_rows], [float(r[k]) for r in acc_rows],
                    color=cmap(i / max(len(ks) - 1, 1)), label=k.replace("acc_", ""))
    ax_loss.set(xlabel="step", ylabel="InfoNCE loss", title="loss")
    ax_acc.set(xlabel="step", ylabel="accuracy", title=f"{acc_rows[0]['split']} accuracy per horizon k")
    ax_loss.legend()
    ax_acc.legend(ncol=2, fontsize="small")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
