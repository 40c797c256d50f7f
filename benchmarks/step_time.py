"""Training step time of seqcpc configurations, split into its parts, with achieved GFLOP/s.

    python benchmarks/step_time.py [--steps 10] [--configs audio_paper speech_cpu image_cpu] [--device cpu] [--compile]
                                   [--bf16] [--threads 1]
    python benchmarks/step_time.py --objectives    # CPC beside SimCLR, MoCo v2 and SDCLR, images and audio
    python benchmarks/step_time.py --negatives     # the speech recipe's negatives: per sequence, per position, queue
    python benchmarks/step_time.py --short-clips   # the speech recipe with half of each batch padded short clips

Each step is the real training step: the model's own forward (which returns the loss), backward, Adam. The
forward is split into parts by hooks on the model's submodules (encoder, context, predictor, loss, ...), so
the benchmark times whatever the model does and never re-implements it; "other forward" is what runs
between them (patch cutting, rotations, reshapes). FLOPs come from torch's FlopCounterMode on one step; the
matmul peak is measured in the same run, so ratios compare across machines and absolute times do not.
"""
import argparse
import statistics
import time
from collections import defaultdict
from functools import partial
from pathlib import Path

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import image_config, machine, matmul_peak_gflops, sync, write_table
from seqcpc.builders import build_model, check_config
from seqcpc.config import load_config, resolve
from seqcpc.errors import SeqcpcError
from seqcpc.image.store import read_info

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {
    # the CPC paper: batch 8 x 20480 samples, 512-d encoder, GRU 256, K = 12, 128 negatives
    "audio_paper": lambda: resolve({}),
    "speech_cpu": lambda: load_config(ROOT / "recipes/speech/cpu.yaml"),
    "synthetic_demo": lambda: load_config(ROOT / "recipes/synthetic/demo.yaml"),
    "image_cpu": lambda: image_config(ROOT / "recipes/image/cpu.yaml"),
    "image_cpu_nchw": lambda: image_config(ROOT / "recipes/image/cpu.yaml"),
    "image_gpu": lambda: image_config(ROOT / "recipes/image/gpu.yaml"),
}
# the contrastive family beside CPC on the same encoder and batch (python benchmarks/step_time.py --objectives)
LONG_TAIL = ROOT / "recipes/long_tail/fmnist_cpu.yaml"
SPEECH_LT = ROOT / "recipes/long_tail/speech_cpu.yaml"
OBJECTIVE_CONFIGS = {
    "long_tail cpc_v2": lambda: image_config(LONG_TAIL),
    "long_tail cpc_v2 + pruned": lambda: image_config(LONG_TAIL, ["objective.pruned_competitor=true"]),
    "long_tail cpc_v2, queue": lambda: image_config(LONG_TAIL, ["objective.loss.negatives=queue"]),
    "long_tail simclr": lambda: image_config(LONG_TAIL, ["objective.name=simclr"]),
    "long_tail moco_v2": lambda: image_config(LONG_TAIL, ["objective.name=moco"]),
    "long_tail sdclr": lambda: image_config(LONG_TAIL, ["objective.name=sdclr"]),
    "speech_lt cpc": lambda: load_config(SPEECH_LT),
    "speech_lt cpc + pruned": lambda: load_config(SPEECH_LT, ["objective.pruned_competitor=true"]),
    "speech_lt simclr": lambda: load_config(SPEECH_LT, ["objective.name=simclr"]),
    "speech_lt sdclr": lambda: load_config(SPEECH_LT, ["objective.name=sdclr"]),
}
CONFIGS.update(OBJECTIVE_CONFIGS)
# the speech recipe's ways of drawing negatives (python benchmarks/step_time.py --negatives)
SPEECH = ROOT / "recipes/speech/cpu.yaml"
NEGATIVES_CONFIGS = {
    "speech_cpu, shared per sequence": lambda: load_config(SPEECH, ["objective.loss.draw=shared"]),
    "speech_cpu, per position": lambda: load_config(SPEECH, ["objective.loss.draw=position"]),
    "speech_cpu, shared + queue": lambda: load_config(SPEECH, ["objective.loss.draw=shared", "objective.loss.negatives=queue"]),
    "speech_cpu, per position + queue": lambda: load_config(SPEECH, ["objective.loss.draw=position",
                                                                     "objective.loss.negatives=queue"]),
}
CONFIGS.update(NEGATIVES_CONFIGS)
# what padding short clips costs (python benchmarks/step_time.py --short-clips): every other window of the batch
# a clip of data.min_clip samples zero-padded to the window, so the masked norms and loss run
NO_ONLINE = ["objective.online_probe=false", "objective.online_phones=false"]  # the probes' heads need the corpus's labels
SHORT_CLIP_CONFIGS = {
    "speech_cpu, whole windows": lambda: load_config(SPEECH, NO_ONLINE),
    "speech_cpu, half the batch 0.5 s clips": lambda: load_config(SPEECH, [*NO_ONLINE, "data.min_clip=8000"]),
}
CONFIGS.update(SHORT_CLIP_CONFIGS)
SAMPLE_RATE = 16000
ORDER = ("augment", "encoder", "context", "predictor", "loss", "other", "backward", "optimizer")  # table columns


def image_size(cfg) -> tuple[int, int]:
    """The prepared data set's image size, or the size it would have (28 px: Fashion-MNIST) if not prepared."""
    try:
        return tuple(read_info(cfg.data.images)["size"])
    except SeqcpcError:
        return (28, 28)


def stages(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(name, module) of the model's direct submodules, the members of a ModuleList under the list's name."""
    out = []
    for name, child in model.named_children():
        # a list of per-direction modules (PatchCPC's contexts, predictors) is one stage: "context", "predictor"
        out += [(name.rstrip("s"), m) for m in child] if isinstance(child, nn.ModuleList) else [(name, child)]
    return out


class StageTimer:
    """Seconds spent in each stage's forward, from forward hooks (synchronising the device at each edge)."""

    def __init__(self, model: nn.Module, device):
        self.device, self.seconds, self.started = device, defaultdict(float), {}
        for name, module in stages(model):
            module.register_forward_pre_hook(partial(self.begin, name))
            module.register_forward_hook(partial(self.end, name))

    def begin(self, name, module, args):
        sync(self.device)
        self.started[name] = time.perf_counter()

    def end(self, name, module, args, output):
        sync(self.device)
        self.seconds[name] += time.perf_counter() - self.started.pop(name)

    def take(self) -> dict:
        out, self.seconds = dict(self.seconds), defaultdict(float)
        return out


def one_step(model, opt, batch, device, timer, bf16=False) -> dict:
    """One training step on `batch` (the model's arguments); the seconds of each stage's forward, of the rest of
    the forward, backward, Adam."""
    sync(device)
    t = time.perf_counter()
    with torch.autocast(torch.device(device).type, torch.bfloat16, enabled=bf16):
        loss, _ = model(*batch)
    sync(device)
    forward = time.perf_counter() - t
    parts = {f"{name} fwd": s for name, s in timer.take().items()}
    parts["other fwd"] = forward - sum(parts.values())
    t = time.perf_counter()
    loss.backward()
    sync(device)
    parts["backward"] = time.perf_counter() - t
    t = time.perf_counter()
    opt.step()
    opt.zero_grad(set_to_none=True)
    model.on_step_end(0)  # e.g. MoCo's momentum encoder: part of the optimizer's share
    sync(device)
    parts["optimizer"] = time.perf_counter() - t
    return parts


def bench(name, cfg, steps, warmup, device, compile=False, bf16=False):
    image = cfg.model.modality == "image"
    if not image:
        check_config(cfg)  # (an image config's check needs its prepared data set)
    model = build_model(cfg).to(device).train()
    model.on_epoch_start(0)  # e.g. SDCLR's mask
    if name.endswith("_nchw"):  # the patch encoder's convolutions in the default layout, for comparison
        model.encoder.memory_format = torch.contiguous_format
        model.encoder.body.to(memory_format=torch.contiguous_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    B, C = cfg.data.batch_size, cfg.model.encoder.in_channels
    shape = image_size(cfg) if image else (cfg.data.window,)
    x = (torch.rand if image else torch.randn)(B, C, *shape, device=device)
    batch = (x,)
    if not image and 0 < cfg.data.min_clip < cfg.data.window:  # padded short clips: every other window
        lengths = torch.full((B,), cfg.data.window, device=device)
        lengths[::2] = cfg.data.min_clip
        x[::2, :, cfg.data.min_clip:] = 0
        batch = (x, None, lengths)
    with FlopCounterMode(display=False) as counter:
        loss, _ = model(*batch)
        loss.backward()
    opt.zero_grad(set_to_none=True)
    gflop = counter.get_total_flops() / 1e9
    t = time.perf_counter()
    if compile:  # each stage on its own, so that the hooks still time the parts
        for child_name, child in list(model.named_children()):
            if isinstance(child, nn.ModuleList):
                for i, m in enumerate(child):
                    child[i] = torch.compile(m)
            elif any(True for _ in child.parameters()) or child_name == "loss":
                setattr(model, child_name, torch.compile(child))
    timer = StageTimer(model, device)
    for _ in range(warmup):
        one_step(model, opt, batch, device, timer, bf16)
    warmup_s = time.perf_counter() - t
    runs = [one_step(model, opt, batch, device, timer, bf16) for _ in range(steps)]
    totals = [sum(r.values()) for r in runs]
    step = statistics.mean(totals)
    size = "x".join(map(str, shape))
    row = {"config": name + (" (compiled)" if compile else ""), "batch x input": f"{B} x {C}x{size}",
           "warm-up s": f"{warmup_s:.1f}", "step s": f"{step:.3f}", "fastest s": f"{min(totals):.3f}",
           "std s": f"{statistics.stdev(totals) if steps > 1 else 0:.3f}"}
    for part in runs[0]:
        row[f"{part} %"] = f"{100 * statistics.mean(r[part] for r in runs) / step:.1f}"
    row["throughput"] = f"{B / step:.0f} images/s" if image else f"{B * shape[0] / SAMPLE_RATE / step:.2f} audio s/s"
    row["GFLOP / step"] = f"{gflop:.1f}"
    row["GFLOP/s"] = f"{gflop / step:.1f}"
    return row, gflop / step


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=[c for c in CONFIGS if c != "image_gpu" and c not in
                                                         {**OBJECTIVE_CONFIGS, **NEGATIVES_CONFIGS,
                                                          **SHORT_CLIP_CONFIGS}],
                        choices=list(CONFIGS),
                        help="image_gpu (batch 256 of 64 px RGB) is meant for a GPU: pass it with --device cuda")
    parser.add_argument("--objectives", action="store_true",
                        help="time CPC, SimCLR, MoCo v2 and SDCLR on the long-tailed recipes' CPU configs instead "
                             "(results step_time_objectives_<device>)")
    parser.add_argument("--negatives", action="store_true",
                        help="time the speech recipe's negatives drawn per sequence, per position and with a queue "
                             "(results step_time_negatives_<device>)")
    parser.add_argument("--short-clips", action="store_true",
                        help="time the speech recipe on whole windows and with half of each batch padded short clips "
                             "(results step_time_short_clips_<device>)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--compile", action="store_true", help="also time each config with torch.compile")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast, as fabric.precision=bf16-mixed (GPUs)")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads (0: torch's default); 1 is what train.deterministic=true uses")
    parser.add_argument("--out", default=None, help="results name (default step_time_<device>[_bf16][_<n>thread])")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    peak = matmul_peak_gflops(device=args.device)
    rows = []
    if args.objectives:
        args.configs = list(OBJECTIVE_CONFIGS)
        args.out = args.out or f"step_time_objectives_{args.device}"
    if args.negatives:
        args.configs = list(NEGATIVES_CONFIGS)
        args.out = args.out or f"step_time_negatives_{args.device}"
    if args.short_clips:
        args.configs = list(SHORT_CLIP_CONFIGS)
        args.out = args.out or f"step_time_short_clips_{args.device}"
    for name in args.configs:
        for compile in (False, True) if args.compile else (False,):
            row, achieved = bench(name, CONFIGS[name](), args.steps, args.warmup, args.device, compile, args.bf16)
            row["% of matmul peak"] = f"{100 * achieved / peak:.0f}"
            rows.append(row)
            print(row, flush=True)
    parts = [c for c in dict.fromkeys(c for row in rows for c in row) if c.endswith(" %")]
    parts = sorted(parts, key=lambda c: [p in c for p in ORDER].index(True) if any(p in c for p in ORDER) else 0)
    columns = ["config", "batch x input", "warm-up s", "step s", "std s", *parts,
               "throughput", "GFLOP / step", "GFLOP/s", "% of matmul peak"]
    meta = {**machine(), "device": args.device, "precision": "bf16 autocast" if args.bf16 else "fp32",
            "matmul peak GFLOP/s": f"{peak:.1f}", "timed steps": args.steps}
    name = f"step_time_{args.device}" + ("_bf16" if args.bf16 else "") + (f"_{args.threads}thread" if args.threads else "")
    write_table(args.out or name, columns, rows, meta)


if __name__ == "__main__":
    main()
