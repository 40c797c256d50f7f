"""Step time of the modern CPC options on the speech recipe's CPU model and batch: CPC2's augmentation of the past
(objective.augment_past), the transformer prediction head and the log mel filterbank encoder, beside the recipe.

    python benchmarks/step_time_augment.py [--steps 5] [--device cpu]

Each row is benchmarks/step_time.py's real training step (forward, backward, Adam) split into its parts; the
"augment_past fwd" column is the effects alone, and the encoder's column holds both encoder passes. The ratio
columns divide each step's mean and its fastest step (the better estimate on a shared machine, where other work
only ever adds time) by the recipe's, measured in the same run; the FLOP ratio is the work itself.
"""
import argparse

import torch

from benchmarks.common import machine, matmul_peak_gflops, write_table
from benchmarks.step_time import SPEECH, bench
from seqcpc.config import load_config

NO_ONLINE = ["objective.online_probe=false", "objective.online_phones=false"]  # their heads count the corpus's labels
AUGMENT = "objective.augment_past."
PITCH_REVERB = [f"{AUGMENT}sample_rate=16000", f"{AUGMENT}pitch_prob={{p}}", f"{AUGMENT}reverb_prob={{p}}"]
CONFIGS = {
    "speech_cpu (recipe)": [],
    "+ augment_past pitch + reverb, every window (CPC2)": [o.format(p=1) for o in PITCH_REVERB],
    "+ augment_past pitch + reverb, p = 0.15 each (28% of windows)": [o.format(p=0.15) for o in PITCH_REVERB],
    "+ augment_past all five effects, every window": [
        f"{AUGMENT}sample_rate=16000", *(f"{AUGMENT}{e}_prob=1" for e in
                                         ("pitch", "reverb", "band_reject", "time_drop", "noise"))],
    "+ transformer prediction head": ["objective.predictor.kind=transformer"],
    "model.encoder.kind=lfb": ["model.encoder.kind=lfb"],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.manual_seed(0)
    peak = matmul_peak_gflops(device=args.device)
    rows = []
    for name, overrides in CONFIGS.items():
        row, achieved = bench(name, load_config(SPEECH, [*NO_ONLINE, *overrides]), args.steps, args.warmup,
                              args.device)
        first = rows[0] if rows else row
        for key, ratio in (("step s", "x recipe (mean)"), ("fastest s", "x recipe (fastest)"),
                           ("GFLOP / step", "x recipe (FLOPs)")):
            row[ratio] = f"{float(row[key]) / float(first[key]):.2f}"
        row["% of matmul peak"] = f"{100 * achieved / peak:.0f}"
        rows.append(row)
        print(row, flush=True)
    parts = [c for c in dict.fromkeys(c for row in rows for c in row) if c.endswith(" %")]
    columns = ["config", "batch x input", "step s", "fastest s", "std s", "x recipe (mean)", "x recipe (fastest)",
               "x recipe (FLOPs)", *parts, "GFLOP / step", "% of matmul peak"]
    meta = {**machine(), "device": args.device, "precision": "fp32", "matmul peak GFLOP/s": f"{peak:.1f}",
            "timed steps": args.steps}
    write_table(f"step_time_augment_{args.device}", columns, rows, meta)


if __name__ == "__main__":
    main()
