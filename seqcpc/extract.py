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
from seqcpc.config import LEARNERS
from seqcpc.errors import DataError, SeqcpcError
from seqcpc.train.checkpoint import load_config_and_model

WHAT = ("z", "c")


def _check_what(what):
    bad = [w for w in what if w not in WHAT]
    if bad or not what:
        raise ValueError(f"features to extract must be among {WHAT}, got {list(what)}")


def load_cpc(checkpoint, device):
    """(config, model) of a pretrained checkpoint (CPC or a pretext task); a few-shot learner has no z and c to
    write."""
    cfg, model = load_config_and_model(checkpoint, device)
    if cfg.model.objective in LEARNERS:
        raise SeqcpcError(f"{checkpoint} holds a few-shot learner (model.objective={cfg.model.objective}), which has "
                          f"no z and c to extract; score it with seqcpc probe --checkpoint {checkpoint} --out DIR")
    return cfg, model


def extract_split(checkpoint, out_dir, split="val", what=("z", "c"), batch_size=16, device="cpu") -> dict:
    _check_what(what)
    cfg, model = load_cpc(checkpoint, device)
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


def read_sequence(path: Path, channels: int) -> torch.Tensor:
    """A 1-D sequence from a .npy file as (C, L) float32, refusing anything else with the file's name."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is not a plain .npy array ({err})") from err
    if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.floating)
                                                 or np.issubdtype(array.dtype, np.integer)):
        raise DataError(f"{path}: expected numbers, got {getattr(array, 'dtype', type(array).__name__)}")
    x = torch.from_numpy(np.asarray(array, dtype=np.float32))
    x = x[None] if x.dim() == 1 else x  # (1, L)
    if x.dim() != 2 or x.shape[0] != channels:
        raise DataError(f"{path}: expected a sequence of shape (L,) or ({channels}, L) for a model of {channels} "
                        f"input channel(s), got {tuple(array.shape)}")
    return x


def extract_files(checkpoint, in_dir, out_dir, what=("z", "c"), device="cpu") -> dict:
    """Every 1-D sequence in in_dir/*.npy, each (L,) or (C, L), written as (T, D)."""
    _check_what(what)
    cfg, model = load_cpc(checkpoint, device)
    if cfg.model.modality != "audio":
        raise DataError(f"--npy-dir takes 1-D sequences, and {checkpoint} holds an {cfg.model.modality} model; "
                        f"extract a split of its data set instead (--split train or val)")
    files = sorted(Path(in_dir).glob("*.npy"))
    if not files:
        raise FileNotFoundError(f"no .npy files in {in_dir}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for path in files:
        x = read_sequence(path, cfg.model.encoder.in_channels)  # (C, L)
        z, c = model.embed(x[None].to(device))  # (1, T, D), (1, T, E)
        for w, f in (("z", z), ("c", c)):
            if w in what:
                written[f"{path.stem}.{w}"] = out_dir / f"{path.stem}.{w}.npy"
                np.save(written[f"{path.stem}.{w}"], f[0].float().cpu().numpy())
    return written
