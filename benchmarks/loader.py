"""Data loading speed against what training consumes: windows/s of the real speech loader with 0, 1, 2
workers, beside the windows/s of the default CPU speech training step.

    python benchmarks/loader.py [--manifest data/espeak/manifest.tsv] [--batches 100]

Without --manifest a small eSpeak corpus (20 speakers x 20 utterances) is built in a temporary folder.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]
from common import machine, write_table  # noqa: E402

from seqcpc.builders import build_model  # noqa: E402
from seqcpc.config import resolve  # noqa: E402
from seqcpc.windows import WindowDataset  # noqa: E402
from recipes.speech.run import load_recipe_config  # noqa: E402


def loader_rate(ds, batch, workers, batches):
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True,
                        generator=torch.Generator().manual_seed(0))
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


def step_rate(cfg, steps=5):
    model = build_model(cfg.model)
    opt = torch.optim.Adam(model.parameters())
    x = torch.randn(cfg.data.batch_size, 1, cfg.data.window)
    times = []
    for i in range(steps + 1):
        t = time.perf_counter()
        loss, _ = model(x)
        loss.backward()
        opt.step()
        opt.zero_grad()
        times.append(time.perf_counter() - t)
    return cfg.data.batch_size / (sum(times[1:]) / steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest")
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()
    _, cfg = load_recipe_config(ROOT / "recipes/speech/cpu.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        manifest = args.manifest
        if manifest is None:
            from data_prep import espeak_corpus

            manifest = espeak_corpus.build(Path(tmp) / "c", speakers=20, heldout_speakers=0, utterances=20,
                                           log=lambda *_: None)
        ds = WindowDataset(manifest, ["train"], cfg.data.window, cfg.data.sample_rate)
        consumed = step_rate(cfg)
        rows = [{"what": "training step (speech cpu.yaml)", "windows/s": f"{consumed:.1f}", "x step": "1.0"}]
        for workers in (0, 1, 2):
            rate = loader_rate(ds, cfg.data.batch_size, workers, args.batches)
            rows.append({"what": f"loader, {workers} workers", "windows/s": f"{rate:.1f}",
                         "x step": f"{rate / consumed:.1f}"})
            print(rows[-1], flush=True)
    meta = {**machine(), "window": cfg.data.window, "batch": cfg.data.batch_size, "corpus": str(manifest)}
    write_table("loader_cpu", ["what", "windows/s", "x step"], rows, meta)


if __name__ == "__main__":
    main()
