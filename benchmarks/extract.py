"""Feature extraction speed (real-time factor) and peak memory, and the loader's memory against corpus size.

    python benchmarks/extract.py [--manifest data/espeak/manifest.tsv]

Each measurement runs in a fresh process so that its peak RSS is its own:
  extract  model.embed over 64 windows of 1.28 s (batches of 16): seconds of compute per second of audio;
           for the image recipe, 2000 28x28 images (batches of 500, as its evaluation embeds them): images/s
  corpus   building the training WindowDataset from the manifest, and from the same rows repeated 10 times
           (peak RSS of the process, and the Python heap the dataset holds, by tracemalloc)
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.common import machine, write_table

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_extract_images() -> dict:
    from seqcpc.builders import build_model
    from benchmarks.common import image_config

    cfg = image_config(ROOT / "recipes/image/cpu.yaml")
    model = build_model(cfg).eval()
    x = torch.rand(2000, 1, 28, 28)
    model.embed(x[:500])
    t = time.perf_counter()
    for batch in x.split(500):
        model.embed(batch)
    seconds = time.perf_counter() - t
    return {"what": "extract z, c: image_cpu", "value": f"{len(x) / seconds:.0f} images/s",
            "peak RSS MB": f"{peak_rss_mb():.0f}"}


def measure_extract(name: str) -> dict:
    from seqcpc.builders import build_model
    from seqcpc.config import load_config, resolve

    if name == "image_cpu":
        return measure_extract_images()
    cfg = resolve({}) if name == "audio_paper" else load_config(ROOT / "recipes/speech/cpu.yaml")
    model = build_model(cfg).eval()
    x = torch.randn(64, 1, cfg.data.window)
    model.embed(x[:16])
    t = time.perf_counter()
    for batch in x.split(16):
        model.embed(batch)
    seconds = time.perf_counter() - t
    audio = x.numel() / cfg.data.sample_rate
    return {"what": f"extract z, c: {name}", "value": f"RTF {seconds / audio:.4f} ({audio / seconds:.0f}x real time)",
            "peak RSS MB": f"{peak_rss_mb():.0f}"}


def scaled_manifest(manifest: str, repeat: int, folder: Path) -> Path:
    """The manifest's rows repeated `repeat` times (new ids, same audio files)."""
    from seqcpc.audio.manifest import read_manifest, write_manifest

    root = Path(manifest).resolve().parent
    (folder / "audio_roots.txt").write_text(f"{root}\n")
    rows = list(read_manifest(manifest))
    scaled = []
    for i in range(repeat):
        for r in rows:
            scaled.append(replace(r, id=f"{r.id}_{i}", path=str(root / r.path)))
    write_manifest(folder / "manifest.tsv", scaled)
    return folder / "manifest.tsv"


def measure_corpus(manifest: str) -> dict:
    """Peak RSS of a process that builds the training WindowDataset and reads 200 windows from it."""
    import tracemalloc

    from seqcpc.audio.windows import WindowDataset

    tracemalloc.start()
    ds = WindowDataset(manifest, ["train"], 20480, 16000)
    for i in range(0, len(ds), max(1, len(ds) // 200)):
        ds[i]
    held, peak = tracemalloc.get_traced_memory()
    rows = sum(1 for _ in open(manifest)) - 1
    return {"what": f"WindowDataset from {rows} manifest rows",
            "value": f"{len(ds)} training utterances; Python heap {held / 1e6:.1f} MB held, {peak / 1e6:.1f} MB peak",
            "peak RSS MB": f"{peak_rss_mb():.0f}"}


def in_fresh_process(*args) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default=str(ROOT / "data/espeak/manifest.tsv"))
    parser.add_argument("--one", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, *rest = args.one
        print(json.dumps(measure_extract(*rest) if kind == "extract" else measure_corpus(*rest)))
        return
    rows = [in_fresh_process("extract", name) for name in ("audio_paper", "speech_cpu", "image_cpu")]
    if Path(args.manifest).is_file():
        for repeat in (1, 10):
            with tempfile.TemporaryDirectory() as tmp:
                rows.append(in_fresh_process("corpus", str(scaled_manifest(args.manifest, repeat, Path(tmp)))))
    for row in rows:
        print(row)
    write_table("extract_memory_cpu", ["what", "value", "peak RSS MB"], rows, machine())


if __name__ == "__main__":
    main()
