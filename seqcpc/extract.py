"""Frozen features: run a trained model's `embed` over data and write z and/or c as .npy files.

Two sources: a split of the run's own dataset (stacked into `<what>.npy`, (N, T, D) for sequences or
(N, Gh, Gw, D) for images, plus `groups.npy`), or a folder of .npy inputs (each written as `<stem>.<what>.npy`).
Feature extraction needs no Fabric or DDP: it calls `model.embed` directly.
"""
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from seqcpc import modalities
from seqcpc.train.checkpoint import checkpoint_config, load_model, read_checkpoint

WHAT = ("z", "c")


def _check_what(what):
    bad = [w for w in what if w not in WHAT]
    if bad or not what:
        raise ValueError(f"features to extract must be among {WHAT}, got {list(what)}")


def extract_split(checkpoint, out_dir, split="val", what=("z", "c"), batch_size=16, device="cpu") -> dict:
    _check_what(what)
    cfg = checkpoint_config(read_checkpoint(checkpoint))
    model = load_model(checkpoint, device)
    train, val = modalities.get(cfg.model.modality).datasets(cfg.data, cfg.train.seed)
    dataset = {"train": train, "val": val}[split]
    feats, groups = {w: [] for w in what}, []
    for x, g in DataLoader(dataset, batch_size=batch_size):
        z, c = model.embed(x.to(device))  # (B, T, D) and (B, T, E), or (B, Gh, Gw, D) and (B, Gh, Gw, E)
        for w, f in (("z", z), ("c", c)):
            if w in what:
                feats[w].append(f.float().cpu().numpy())
        groups.append(g.numpy())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for w in what:
        written[w] = out_dir / f"{w}.npy"
        np.save(written[w], np.concatenate(feats[w]))
    np.save(out_dir / "groups.npy", np.concatenate(groups))
    return written


def extract_files(checkpoint, in_dir, out_dir, what=("z", "c"), device="cpu") -> dict:
    """Every 1-D sequence in in_dir/*.npy, each (L,) or (C, L), written as (T, D)."""
    _check_what(what)
    model = load_model(checkpoint, device)
    files = sorted(Path(in_dir).glob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no .npy files in {in_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in files:
        x = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        if x.dim() == 1:
            x = x[None]  # (1, L)
        z, c = model.embed(x[None].to(device))  # (1, T, D), (1, T, E)
        for w, f in (("z", z), ("c", c)):
            if w in what:
                written[f"{path.stem}.{w}"] = out_dir / f"{path.stem}.{w}.npy"
                np.save(written[f"{path.stem}.{w}"], f[0].float().cpu().numpy())
    return written
