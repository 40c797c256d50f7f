"""What the image benchmark's probes cost on this machine, the numbers its cost arithmetic needs
(docs/recipes/image.md, "What the table costs"): a few minutes on 2 cores.

    python benchmarks/image_probe_cost.py

  embed       the image CPU model's pooled features in inference mode (seqcpc/image/features.py), 4000 28x28
              images, at several probe.embed_batch sizes, with the patch encoder channels-last (as it runs) and
              not: images/s
  supervised  a training step of the supervised baseline (batch 32, seqcpc/image/supervised.py): s/step
  linear      one linear-probe fit at one l2 on standardised random features of the 100% column's size (60000 x
              2304: mini-batch Adam) and of the 10% column's (6000 x 2304: L-BFGS): s/fit; a probe with its l2
              chosen from a grid of three fits four times
"""
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.common import image_config, machine, write_table
from seqcpc.builders import build_model
from seqcpc.eval.probes import train_linear_probe
from seqcpc.image.features import embed_images
from seqcpc.image.supervised import Supervised
from seqcpc.image.store import images_to_float

ROOT = Path(__file__).resolve().parents[1]
BATCHES = (250, 500, 1000, 2000)


def measure_embedding(cfg, images) -> list[dict]:
    rows = []
    for memory_format in (torch.channels_last, torch.contiguous_format):
        model = build_model(cfg).eval()
        model.encoder.memory_format = memory_format
        model.encoder.body.to(memory_format=memory_format)
        embed_images(model, images[:500], cfg.probe.pool, log=lambda *_: None)  # warm-up
        for batch in BATCHES:
            t = time.perf_counter()
            embed_images(model, images, cfg.probe.pool, batch, log=lambda *_: None)
            rate = len(images) / (time.perf_counter() - t)
            rows.append({"what": f"embed, batch {batch}, {str(memory_format).split('.')[-1]}",
                         "value": f"{rate:.0f} images/s"})
    return rows


def measure_supervised(cfg, images, steps: int = 20) -> dict:
    net = Supervised(build_model(cfg), cfg.probe.pool, 10).train()
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    labels = torch.randint(0, 10, (len(images),))
    times = []
    for i in range(steps + 3):
        idx = np.sort(np.random.default_rng(i).choice(len(images), 32, replace=False))
        t = time.perf_counter()
        loss = F.cross_entropy(net(images_to_float(images[idx])), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    step = float(np.median(times[3:]))
    return {"what": "supervised step, batch 32", "value": f"{step:.3f} s/step ({32 / step:.0f} images/s)"}


def measure_linear(n: int, dim: int = 2304) -> dict:
    gen = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=gen)
    x = torch.randn(n, dim, generator=gen) + F.one_hot(y, dim).float()  # separable enough to take real steps
    t = time.perf_counter()
    train_linear_probe(x, y, 10, l2=1e-3)
    return {"what": f"linear probe fit, {n} x {dim}", "value": f"{time.perf_counter() - t:.1f} s/fit"}


def main():
    cfg = image_config(ROOT / "recipes/image/cpu.yaml")
    images = np.random.default_rng(0).integers(0, 256, (4000, 28, 28, 1), dtype=np.uint8)
    rows = [*measure_embedding(cfg, images), measure_supervised(cfg, images), measure_linear(6000),
            measure_linear(60000)]
    write_table("image_probe_cost_cpu", ["what", "value"], rows, machine())


if __name__ == "__main__":
    main()
