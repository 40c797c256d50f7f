"""Training step time of CPC configurations, split into its parts, with achieved GFLOP/s.

    python benchmarks/step_time.py [--steps 10] [--configs audio_paper speech_cpu image_cpu] [--device cpu] [--compile] [--bf16]

Each step is the real training step (forward, InfoNCE, backward, Adam); the parts are timed by running the
model's stages one after another inside that step. FLOPs come from torch's FlopCounterMode on one step.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from einops import rearrange
from torch.utils.flop_counter import FlopCounterMode

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
from common import machine, matmul_peak_gflops, sync, write_table  # noqa: E402
from recipes.common import load_recipe_config  # noqa: E402

from seqcpc.builders import build_model, check_config  # noqa: E402
from seqcpc.config import Config, load_config  # noqa: E402
from seqcpc.errors import SeqcpcError  # noqa: E402
from seqcpc.image_store import read_info  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    # the CPC paper: batch 8 x 20480 samples, 512-d encoder, GRU 256, K = 12, 128 negatives
    "audio_paper": lambda: Config(),
    "speech_cpu": lambda: load_recipe_config(ROOT / "recipes/speech/cpu.yaml")[1],
    "synthetic_demo": lambda: load_config(ROOT / "recipes/synthetic/demo.yaml"),
    "image_cpu": lambda: load_recipe_config(ROOT / "recipes/image/cpu.yaml", section="dataset")[1],
    "image_cpu_nchw": lambda: load_recipe_config(ROOT / "recipes/image/cpu.yaml", section="dataset")[1],
    "image_gpu": lambda: load_recipe_config(ROOT / "recipes/image/gpu.yaml", section="dataset")[1],
}
SAMPLE_RATE = 16000


def image_size(cfg) -> tuple[int, int]:
    """The prepared data set's image size, or the size it would have (28 px: Fashion-MNIST) if not prepared."""
    try:
        return tuple(read_info(cfg.data.images)["size"])
    except SeqcpcError:
        return (28, 28)


def one_step(model, opt, x, device, bf16=False):
    """One training step (the forward under bf16 autocast if asked); returns the seconds spent in each part."""
    with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
        return timed_step(model, opt, x, device)


def timed_step(model, opt, x, device):
    parts = {}

    def mark(name, t0):
        sync(device)
        now = time.perf_counter()
        parts[name] = now - t0
        return now

    t = time.perf_counter()
    image = x.dim() == 4
    z = model.encoder(model.patches(x) if image else x)  # (B, T, D) or (B, Gh, Gw, D)
    t = mark("encoder", t)
    if image:  # every direction: rotate, context, predictor (as PatchCPC.forward does)
        outs = [(zd, p(rearrange(c, "b gh gw e -> (b gw) gh e")))
                for p, (zd, c) in zip(model.predictors, (model.context(z, d) for d in range(len(model.predictors))))]
        t = mark("context+predictor", t)
        loss = sum(model.loss(preds, rearrange(zd, "b gh gw d -> (b gw) gh d"))[0] for zd, preds in outs) / len(outs)
    else:
        preds = model.predictor(model.context(z))  # (B, K, T, D)
        t = mark("context+predictor", t)
        loss, _ = model.loss(preds, z)
    t = mark("loss", t)
    loss.backward()
    t = mark("backward", t)
    opt.step()
    opt.zero_grad(set_to_none=True)
    mark("optimizer", t)
    return parts


def bench(name, cfg, steps, warmup, device, compile=False, bf16=False):
    image = cfg.model.modality == "image"
    if not image:
        check_config(cfg)  # (an image config's check needs its prepared data set)
    model = build_model(cfg.model).to(device).train()
    if name.endswith("_nchw"):  # the patch encoder's convolutions in the default layout, for comparison
        model.encoder.memory_format = torch.contiguous_format
        model.encoder.body.to(memory_format=torch.contiguous_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    B, C = cfg.data.batch_size, cfg.model.encoder.in_channels
    shape = image_size(cfg) if image else (cfg.data.window,)
    x = (torch.rand if image else torch.randn)(B, C, *shape, device=device)
    with FlopCounterMode(display=False) as counter:
        one_step(model, opt, x, device, bf16)
    gflop = counter.get_total_flops() / 1e9
    t = time.perf_counter()
    if compile:  # each stage on its own, so the parts can still be timed
        for part in ("encoder", "loss") if image else ("encoder", "context", "predictor", "loss"):
            setattr(model, part, torch.compile(getattr(model, part)))
    for _ in range(warmup):
        one_step(model, opt, x, device, bf16)
    warmup_s = time.perf_counter() - t
    runs = [one_step(model, opt, x, device, bf16) for _ in range(steps)]
    totals = [sum(r.values()) for r in runs]
    step = statistics.mean(totals)
    size = "x".join(map(str, shape))
    row = {"config": name + (" (compiled)" if compile else ""), "batch x input": f"{B} x {C}x{size}",
           "warm-up s": f"{warmup_s:.1f}", "step s": f"{step:.3f}",
           "std s": f"{statistics.stdev(totals) if steps > 1 else 0:.3f}"}
    for part in runs[0]:
        share = statistics.mean(r[part] for r in runs) / step
        row[f"{part} %"] = f"{100 * share:.1f}"
    row["throughput"] = f"{B / step:.0f} images/s" if image else f"{B * shape[0] / SAMPLE_RATE / step:.2f} audio s/s"
    row["GFLOP / step"] = f"{gflop:.1f}"
    row["GFLOP/s"] = f"{gflop / step:.1f}"
    return row, gflop / step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=[c for c in CONFIGS if c != "image_gpu"], choices=list(CONFIGS),
                        help="image_gpu (batch 256 of 64 px RGB) is meant for a GPU: pass it with --device cuda")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time each config with torch.compile")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, as fabric.precision=bf16-mixed (GPUs)")
    args = parser.parse_args()
    torch.manual_seed(0)
    peak = matmul_peak_gflops(device=args.device)
    rows = []
    for name in args.configs:
        for compile in (False, True) if args.compile else (False,):
            row, achieved = bench(name, CONFIGS[name](), args.steps, args.warmup, args.device, compile, args.bf16)
            row["% of matmul peak"] = f"{100 * achieved / peak:.0f}"
            rows.append(row)
            print(row, flush=True)
    columns = list(rows[0])
    meta = {**machine(), "device": args.device, "precision": "bf16 autocast" if args.bf16 else "fp32",
            "matmul peak GFLOP/s": f"{peak:.1f}", "timed steps": args.steps}
    write_table(f"step_time_{args.device}" + ("_bf16" if args.bf16 else ""), columns, rows, meta)


if __name__ == "__main__":
    main()
