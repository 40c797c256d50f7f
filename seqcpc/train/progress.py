"""Run progress: throughput and ETA for the log line, the metrics CSV, and the curves plot.

Metrics are whatever flat dict the model's objective returns (see seqcpc.core.model.Pretrainable): the CSV
gains a column for each new key, and the plot draws one panel per metric name, with "name/member" keys (such as
"acc/k1" .. "acc/k12") together in their name's panel. Only rank 0 writes; the writers are no-ops elsewhere.
"""
import csv
import io
import time
from pathlib import Path

import torch
from lightning_fabric.utilities.throughput import Throughput, get_available_flops

from seqcpc.eval.report import pyplot, save_figure
from seqcpc.files import atomic_write_text

FIELDS = ["step", "split", "loss", "lr", "samples_per_s", "elapsed_s"]


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def _csv_text(fields: list[str], rows: list[dict]) -> str:
    """The CSV file of `rows`, written by the same csv module that appends rows later (quoting included)."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue()


class MetricsLog:
    """metrics.csv: one row per logged training interval and per validation. A resumed run drops the rows
    written after its checkpoint, so no step is logged twice."""

    def __init__(self, path, enabled: bool, resume_step: int | None = None):
        self.path, self.enabled, self.fields, rows = Path(path), enabled, list(FIELDS), []
        if not enabled:
            return
        if resume_step is not None and self.path.exists():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields += [c for c in reader.fieldnames or [] if c not in self.fields]
                rows = [r for r in reader if int(r["step"]) <= resume_step]
        atomic_write_text(self.path, _csv_text(self.fields, rows))

    def write(self, row: dict) -> None:
        if not self.enabled:
            return
        new = [k for k in row if k not in self.fields]
        if new:  # a metric seen for the first time: rewrite the file with its column
            self.fields += new
            atomic_write_text(self.path, _csv_text(self.fields, self.rows()))
        with open(self.path, "a", newline="") as f:
            csv.DictWriter(f, self.fields, lineterminator="\n").writerow(row)

    def rows(self) -> list[dict]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))


def metrics_row(step: int, split: str, loss: float, metrics: dict, **extra) -> dict:
    return {"step": step, "split": split, "loss": f"{loss:.5f}", **{k: f"{v:.5f}" for k, v in metrics.items()},
            **extra}


def headline(metrics: dict) -> str:
    """The metrics for the console line: the top-level names ("acc"), not their members ("acc/k3")."""
    return " | ".join(f"{k} {v:.3f}" for k, v in metrics.items() if "/" not in k)


def with_flops(fn):
    """(fn(), the FLOPs it ran): for one real training step, forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        result = fn()
    return result, counter.get_total_flops()


class Progress:
    """Samples/s and FLOP/s over the last log interval, model FLOP utilisation where the device's peak is known
    (lightning-fabric's Throughput and its table of GPU peaks), and the ETA."""

    def __init__(self, fabric, start_step: int, max_steps: int, dtype=torch.float32):
        peak = get_available_flops(fabric.device, dtype) if fabric.device.type == "cuda" else None
        self.meter = Throughput(available_flops=peak, world_size=fabric.world_size, window_size=2)
        self.start, self.max_steps, self.samples = start_step, max_steps, 0
        self.t0, self.last = time.perf_counter(), start_step
        self.meter.update(time=0.0, batches=0, samples=0, flops=0)

    def count(self, samples: int) -> None:
        """Add one step's batch (its size varies with the batch sampler, e.g. an episode's N (K + Q) items)."""
        self.samples += samples

    def update(self, step: int, flops_per_step: int | None) -> dict:
        """{"samples_per_s", "steps_per_s", "eta_s", "elapsed_s"} and, with FLOPs, "gflops_per_s" (per device)
        and "mfu" (where the peak is known)."""
        elapsed, done = time.perf_counter() - self.t0, step - self.start
        flops = flops_per_step * (step - self.last) if flops_per_step else 0
        self.meter.update(time=elapsed, batches=done, samples=self.samples, flops=flops)
        self.last = step
        m = self.meter.compute()
        steps_per_s = m["device/batches_per_sec"]
        out = {"samples_per_s": m.get("samples_per_sec", m["device/samples_per_sec"]), "steps_per_s": steps_per_s,
               "eta_s": (self.max_steps - step) / max(steps_per_s, 1e-9), "elapsed_s": elapsed}
        if flops_per_step:
            out["gflops_per_s"] = m["device/flops_per_sec"] / 1e9
            if "device/mfu" in m:
                out["mfu"] = m["device/mfu"]
        return out

    def describe(self, rates: dict) -> str:
        parts = [f"{rates['samples_per_s']:.1f} samples/s"]
        if "gflops_per_s" in rates:
            parts.append(f"{rates['gflops_per_s']:.1f} GFLOP/s")
        if "mfu" in rates:
            parts.append(f"MFU {100 * rates['mfu']:.1f}%")
        return " | ".join(parts + [f"eta {fmt_duration(rates['eta_s'])}"])


def plot_curves(csv_path, png_path, chance_loss: float | None = None) -> None:
    """Loss (train and validation) and one panel per metric name against step; members of a name (acc/k1 ..)
    are drawn from validation rows (training rows when there are none), shaded by their order."""
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        return
    names = list(dict.fromkeys(c.split("/")[0] for c in rows[0] if c not in FIELDS))
    plt = pyplot()
    fig, axes = plt.subplots(1, 1 + len(names), figsize=(5.5 * (1 + len(names)), 4), squeeze=False)
    splits = {s: [r for r in rows if r["split"] == s] for s in ("train", "val")}

    def curve(ax, split, column, **style):
        sel = [r for r in splits[split] if r.get(column) not in (None, "")]
        if sel:
            ax.plot([int(r["step"]) for r in sel], [float(r[column]) for r in sel], **style)

    for split, marker in (("train", None), ("val", "o")):
        curve(axes[0, 0], split, "loss", marker=marker, label=split)
    if chance_loss is not None:  # the plateau a run has to leave
        axes[0, 0].axhline(chance_loss, color="grey", linestyle="--", label=f"chance ({chance_loss:.2f})")
    axes[0, 0].set(xlabel="step", ylabel="loss", title="loss")
    cmap = plt.get_cmap("viridis")
    for ax, name in zip(axes[0, 1:], names):
        members = [c for c in rows[0] if c.startswith(name + "/")]
        for split, marker in (("train", None), ("val", "o")):
            curve(ax, split, name, marker=marker, color="black" if split == "val" else "grey", label=f"{name} ({split})")
        member_split = "val" if splits["val"] else "train"
        for i, col in enumerate(members):
            curve(ax, member_split, col, color=cmap(i / max(len(members) - 1, 1)), label=col.split("/", 1)[1])
        ax.set(xlabel="step", ylabel=name, title=f"{name}" + (f" ({member_split}: per member)" if members else ""))
    for ax in axes[0]:
        ax.legend(ncol=2, fontsize="small")
    fig.tight_layout()
    save_figure(fig, png_path)
