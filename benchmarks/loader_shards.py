"""Sharded corpora against the manifest: loader windows/s beside what a training step consumes, and the loader's
resident memory as the corpus grows.

    python benchmarks/loader_shards.py [--corpus data/espeak] [--shard-mb 2] [--batches 50] [--rate-scale 10]
                                       [--scales 1 10 100] [--rss-batches 20] [--threads 1]
                                       [--load "what else ran"]

(a) Windows/s of seqcpc.audio.shards.ShardWindows and of the manifest's WindowDataset through a DataLoader with
0, 1, 2 workers, against the windows/s of a real training step of recipes/speech/cpu.yaml measured in the same
run, and against what an H100 step of recipes/speech/paper_gpu.yaml would take, on paper: the FLOPs of one
window's forward and backward (torch's FlopCounterMode, through seqcpc.train.progress.with_flops, on a CPU
batch of 2 and of 4 to check that they scale with the batch) into the H100 SXM's dense BF16 peak at an assumed
utilisation. (b) Resident memory (VmRSS, VmHWM of /proc/self/status) of a fresh process that builds each
dataset and reads --rss-batches batches with no worker, at 1x, 10x, 100x the corpus: the shard index lists
every shard that many times, the manifest has that many rows per utterance (new ids, the same files).

Without --corpus a small eSpeak corpus (20 speakers x 20 utterances) is built in a temporary folder and packed
with `python -m data_prep.shards`. Results: loader_shards_cpu (a), loader_shards_memory_cpu (b).
"""
import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from benchmarks.common import machine, speech_corpus, write_table
from benchmarks.loader import items_per_second, loader_rate, step_rate
from benchmarks.step_time import NO_ONLINE
from seqcpc.audio.manifest import read_manifest, write_manifest
from seqcpc.audio.shards import ShardWindows
from seqcpc.audio.windows import WindowDataset
from seqcpc.builders import build_model
from seqcpc.config import load_config
from seqcpc.train.progress import with_flops

ROOT = Path(__file__).resolve().parents[1]
# NVIDIA H100 Tensor Core GPU datasheet: H100 SXM, BF16 Tensor Core 1,979 TFLOP/s with sparsity, half of it
# dense (lightning-fabric's table of peaks, which the training loop's MFU uses, has the same 989.4e12)
H100_BF16_DENSE = 989.4e12
UTILISATIONS = (0.1, 0.4)  # assumed model FLOP utilisation: a pessimistic and an optimistic one


def flops_per_window(cfg, batches=(2, 4)) -> float:
    """FLOPs of one window's forward and backward; refuses to scale them if they do not grow with the batch."""
    model = build_model(cfg)
    per_window = []
    for b in batches:
        x = torch.randn(b, 1, cfg.data.window)  # (B, 1, L)
        _, flops = with_flops(lambda: model(x)[0].backward())
        per_window.append(flops / b)
    if max(per_window) > 1.01 * min(per_window):
        raise RuntimeError(f"FLOPs per window change with the batch: {per_window}")
    return per_window[-1]


def pack(corpus: Path, out: Path, shard_mb: float) -> None:
    subprocess.run([sys.executable, "-m", "data_prep.shards", "--corpus", str(corpus), "--out", str(out),
                    "--shard-mb", str(shard_mb)], check=True, cwd=ROOT)


def repeat_shards(shards: Path, scale: int, out: Path) -> Path:
    """A folder whose index lists every shard `scale` times: the split folders are links to the packed ones."""
    index = json.loads((shards / "index.json").read_text())
    out.mkdir(parents=True)
    for split in index["splits"]:
        (out / split).symlink_to(shards / split, target_is_directory=True)
    index["splits"] = {split: entries * scale for split, entries in index["splits"].items()}
    (out / "index.json").write_text(json.dumps(index))
    return out


def repeat_manifest(manifest: Path, scale: int, out: Path) -> Path:
    """A manifest with `scale` rows per utterance (ids id~k), its audio a link to the corpus's audio folder."""
    out.mkdir(parents=True)
    for entry in {Path(row.path).parts[0] for row in read_manifest(manifest)}:
        (out / entry).symlink_to(manifest.parent / entry)
    rows = list(read_manifest(manifest))
    repeated = [replace(row, id=f"{row.id}~{k}") for k in range(scale) for row in rows]
    write_manifest(out / "manifest.tsv", repeated)
    return out / "manifest.tsv"


def shard_dataset(folder, cfg, workers):
    ds = ShardWindows(folder, "train", cfg.data.window, cfg.data.sample_rate, cfg.data.batch_size)
    ds.distribute(world_size=1, rank=0, num_workers=workers)
    return ds


def shard_rate(folder, cfg, workers, batches) -> float:
    loader = DataLoader(shard_dataset(folder, cfg, workers), batch_size=None, num_workers=workers)
    return items_per_second(loader, batches)


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024  # kB
    raise LookupError(field)


def measure_memory(kind, path, batches, queue) -> None:
    """In a fresh process: RSS before building the dataset, after it and `batches` batches, and the peak."""
    cfg = load_config(ROOT / "recipes/speech/cpu.yaml")
    before = status_mb("VmRSS")
    t = time.perf_counter()
    if kind == "shards":
        ds = shard_dataset(path, cfg, 0)
        loader = DataLoader(ds, batch_size=None, num_workers=0)
    else:
        ds = WindowDataset(path, ["train"], cfg.data.window, cfg.data.sample_rate)
        loader = DataLoader(ds, batch_size=cfg.data.batch_size, shuffle=True, drop_last=True)
    built = time.perf_counter() - t
    for _, _ in zip(range(batches), loader):
        pass
    queue.put({"before": before, "after": status_mb("VmRSS"), "peak": status_mb("VmHWM"), "build s": built,
               "batches/epoch": len(loader)})


def memory_row(kind, path, scale, entries, batches) -> dict:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    child = ctx.Process(target=measure_memory, args=(kind, path, batches, queue))
    child.start()
    m = queue.get()
    child.join()
    row = {"loader": kind, "scale": f"{scale}x", "entries": entries, "batches/epoch": m["batches/epoch"],
           "build s": f"{m['build s']:.2f}", "RSS before MB": f"{m['before']:.0f}",
           "RSS after MB": f"{m['after']:.0f}", "growth MB": f"{m['after'] - m['before']:.1f}",
           "peak MB": f"{m['peak']:.0f}"}
    print(row, flush=True)
    return row


def throughput_rows(cfg, gpu_cfg, manifest, shards, batches) -> tuple[list[dict], float]:
    """Windows/s of the CPU training step, of an H100 step on paper, and of each loader with 0, 1, 2 workers,
    each against the CPU step and the H100 step at the higher utilisation; and the FLOPs per window."""
    consumed = step_rate(cfg, torch.randn(cfg.data.batch_size, 1, cfg.data.window))
    flops = flops_per_window(gpu_cfg)
    rows = [{"what": "training step, speech cpu.yaml without online probes (measured)", "windows/s": consumed}]
    rows += [{"what": f"H100 step, paper_gpu.yaml, {u:.0%} of dense BF16 peak (on paper)",
              "windows/s": H100_BF16_DENSE * u / flops} for u in UTILISATIONS]
    windows = WindowDataset(manifest, ["train"], cfg.data.window, cfg.data.sample_rate)
    for name, rate in (("manifest", lambda w: loader_rate(windows, cfg.data.batch_size, w, batches)),
                       ("shards", lambda w: shard_rate(shards, cfg, w, batches))):
        for workers in (0, 1, 2):
            rows.append({"what": f"{name} loader, {workers} workers", "windows/s": rate(workers)})
            print(f"{rows[-1]['what']}: {rows[-1]['windows/s']:.1f} windows/s", flush=True)
    gpu = H100_BF16_DENSE * UTILISATIONS[-1] / flops
    for row in rows:
        rate = row["windows/s"]
        row |= {"windows/s": f"{rate:.1f}", "x CPU step": f"{rate / consumed:.2f}",
                f"x H100 step at {UTILISATIONS[-1]:.0%}": f"{rate / gpu:.4f}"}
    return rows, flops


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", help="a prepared corpus folder (manifest.tsv); default: a small eSpeak corpus")
    parser.add_argument("--shard-mb", type=float, default=2, help="small, so that a small corpus has many shards")
    parser.add_argument("--batches", type=int, default=50, help="timed batches per loader")
    parser.add_argument("--rate-scale", type=int, default=10, help="corpus repeats the loaders are timed on")
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--rss-batches", type=int, default=20)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 steadies the step's time on a busy machine")
    parser.add_argument("--load", default="not stated", help="what else ran on the machine, for the results")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = load_config(ROOT / "recipes/speech/cpu.yaml", NO_ONLINE)  # the probes' heads need the corpus's labels
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        manifest = Path(args.corpus) / "manifest.tsv" if args.corpus else speech_corpus(tmp / "corpus")
        pack(manifest.parent, tmp / "shards", args.shard_mb)
        train = json.loads((tmp / "shards" / "index.json").read_text())["splits"]["train"]
        shard_bytes = sum((tmp / "shards" / e["tar"]).stat().st_size for e in train)
        utterances = list(read_manifest(manifest, ["train"]))
        seconds = sum(u.num_samples / u.sample_rate for u in utterances)
        sized = {s: (repeat_manifest(manifest, s, tmp / f"manifest_x{s}"),
                     repeat_shards(tmp / "shards", s, tmp / f"shards_x{s}")) for s in {*args.scales, args.rate_scale}}
        rows, flops = throughput_rows(cfg, load_config(ROOT / "recipes/speech/paper_gpu.yaml"),
                                      *sized[args.rate_scale], args.batches)
        memory = []
        for s in args.scales:
            manifest_s, shards_s = sized[s]
            memory.append(memory_row("shards", shards_s, s, s * len(train), args.rss_batches))
            memory.append(memory_row("manifest", manifest_s, s, s * len(utterances), args.rss_batches))
    meta = {**machine(), "load": args.load, "load average (1 min) at start": f"{load:.2f}",
            "corpus": args.corpus or "eSpeak, 20 speakers x 20 utterances (built for the run)",
            "train audio s": f"{seconds:.0f}", "train utterances": len(utterances), "shards (train)": len(train),
            "shard MB": args.shard_mb, "window": cfg.data.window, "batch": cfg.data.batch_size}
    write_table("loader_shards_cpu", list(rows[0]), rows,
                {**meta, "shard bytes per audio s": f"{shard_bytes / seconds:.0f}",
                 "shard bytes read per window (one per utterance)": f"{shard_bytes / len(utterances):.0f}",
                 "timed on": f"{args.rate_scale}x the corpus", "timed batches": args.batches,
                 "paper_gpu GFLOP per window (fwd + bwd)": f"{flops / 1e9:.2f}",
                 "H100 peak": "989.4 TFLOP/s dense BF16 (NVIDIA H100 SXM datasheet)"})
    write_table("loader_shards_memory_cpu", list(memory[0]), memory,
                {**meta, "batches read": args.rss_batches, "workers": 0,
                 "entries": "of the train split: shard entries in the index, or manifest rows"})


if __name__ == "__main__":
    main()
