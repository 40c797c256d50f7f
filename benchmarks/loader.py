"""Data loading speed against what training consumes: windows/s of the real speech loader and images/s of
the real image loader, with 0, 1, 2 workers, beside what the default CPU training step of each recipe takes.

    python benchmarks/loader.py [--manifest data/espeak/manifest.tsv] [--images data/fashion_mnist] [--batches 100]

Without --manifest a small eSpeak corpus (20 speakers x 20 utterances) is built in a temporary folder;
without --images (or when it is not prepared) 10000 random 28x28 grey images are.
"""
import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from benchmarks.common import image_config, machine, speech_corpus, write_table
from benchmarks.step_time import NO_ONLINE
from seqcpc.audio.windows import WindowDataset
from seqcpc.builders import build_model
from seqcpc.config import load_config
from seqcpc.image.store import ImageDataset, write_dataset

ROOT = Path(__file__).resolve().parents[1]


def loader_rate(ds, batch, workers, batches):
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
    return items_per_second(loader, batches)


def items_per_second(loader, batches):
    """Items per second of the loader's first `batches` batches after its first (or of the epoch, if shorter)."""
    it = iter(loader)
    next(it)  # worker start-up is paid once per epoch, not per window
    t = time.perf_counter()
    n = 0
    for _ in range(batches):
        try:
            n += len(next(it)[0])
        except StopIteration:
            break
    return n / (time.perf_counter() - t)


def step_rate(cfg, x, steps=5):
    """Samples per second the training step takes in (forward, loss, backward, Adam)."""
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters())
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        loss, _ = model(x)
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    return cfg.data.batch_size / (sum(times[1:]) / steps)


def compare(ds, consumed: float, batch: int, batches: int, unit: str, step_name: str) -> list[dict]:
    rows = [{"what": f"training step ({step_name})", unit: f"{consumed:.1f}", "x step": "1.0"}]
    for workers in (0, 1, 2):
        rate = loader_rate(ds, batch, workers, batches)
        rows.append({"what": f"loader, {workers} workers", unit: f"{rate:.1f}", "x step": f"{rate / consumed:.1f}"})
        print(rows[-1], flush=True)
    return rows


def bench_images(folder, batches: int) -> None:
    cfg = image_config(ROOT / "recipes/image/cpu.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        if folder is None or not (Path(folder) / "dataset.json").is_file():
            rng = np.random.default_rng(0)
            splits = {s: (rng.integers(0, 256, (n, 28, 28, 1), dtype=np.uint8), rng.integers(0, 10, n))
                      for s, n in (("train", 10000), ("test", 100))}
            folder = Path(tmp) / "random_images"
            write_dataset(folder, splits, [str(i) for i in range(10)], "random", key="bench")
        ds = ImageDataset(folder, "train")
        x = torch.rand(cfg.data.batch_size, ds.channels, *ds.size)
        rows = compare(ds, step_rate(cfg, x), cfg.data.batch_size, batches, "images/s", "image cpu.yaml")
    meta = {**machine(), "image size": "x".join(map(str, ds.size)), "batch": cfg.data.batch_size,
            "images": str(folder)}
    write_table("loader_images_cpu", ["what", "images/s", "x step"], rows, meta)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest")
    parser.add_argument("--images", default=str(ROOT / "data/fashion_mnist"))
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()
    bench_images(args.images, args.batches)
    cfg = load_config(ROOT / "recipes/speech/cpu.yaml", NO_ONLINE)  # the probes' heads need the corpus's labels
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest or speech_corpus(Path(tmp) / "c")
        ds = WindowDataset(manifest, ["train"], cfg.data.window, cfg.data.sample_rate)
        consumed = step_rate(cfg, torch.randn(cfg.data.batch_size, 1, cfg.data.window))
        rows = compare(ds, consumed, cfg.data.batch_size, args.batches, "windows/s", "speech cpu.yaml")
    meta = {**machine(), "window": cfg.data.window, "batch": cfg.data.batch_size, "corpus": str(manifest)}
    write_table("loader_cpu", ["what", "windows/s", "x step"], rows, meta)


if __name__ == "__main__":
    main()
