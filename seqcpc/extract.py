"""Frozen features: run a trained model's `embed` over data and write z, c or context layers as .npy files.

Features are named as in `--features z,c,c1,c2`: z the encoder's output, c the context's output (its last
layer), c<i> context layer i counted from 1 (audio CPC models, through `model.hidden_states`; c<L> is c).
Two sources: a split of the run's own dataset (stacked into `<what>.npy`, (N, T, D) for sequences or
(N, Gh, Gw, D) for images, plus `groups.npy`), or a folder of .npy inputs (each written as `<stem>.<what>.npy`).
Feature extraction needs no Fabric or DDP: it calls `model.embed` directly.
"""
import re
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset

from seqcpc import modalities
from seqcpc.errors import ConfigError, DataError, SeqcpcError
from seqcpc.files import atomic_save_npy
from seqcpc.objectives import registry
from seqcpc.train.checkpoint import load_config_and_model, read_checkpoint

WHAT = ("z", "c")
LAYER = re.compile(r"c([1-9][0-9]*)")  # c1, c2, ...: one context layer, counted from 1
SYNTAX = "z (encoder output), c (context output) or c1, c2, ... (context layer i, counted from 1)"


def _check_what(what):
    bad = [w for w in what if w not in WHAT and not LAYER.fullmatch(w)]
    if bad or not what:
        raise ConfigError(f"--features {','.join(what)}: {', '.join(map(repr, bad)) or 'nothing'} is not a feature "
                          f"name; give a comma-separated list of {SYNTAX}, e.g. --features z,c,c1")


def _check_layers(what, cfg, model, checkpoint):
    """Refuse context layers the model does not have, before anything is run or written."""
    wanted = [w for w in what if LAYER.fullmatch(w)]
    if not wanted:
        return
    if not hasattr(model, "hidden_states"):
        raise ConfigError(f"--features {','.join(wanted)}: {checkpoint} holds a {cfg.model.modality} "
                          f"{cfg.objective.name} model, which gives only z and c; context layers are given by audio "
                          f"CPC models")
    depth = cfg.model.context.layers
    missing = [w for w in wanted if int(LAYER.fullmatch(w)[1]) > depth]
    if missing:
        raise ConfigError(f"--features {','.join(missing)}: {checkpoint} has {depth} context layer(s), c1 to "
                          f"c{depth}; choose among z, c, " + ", ".join(f"c{i}" for i in range(1, depth + 1)))


def features(model, x, what) -> dict:
    """{name: frozen features} of a batch, for the names in `what` (checked by _check_what)."""
    if all(w in WHAT for w in what):
        z, c = model.embed(x)  # (B, T, D) and (B, T, E), or (B, Gh, Gw, D) and (B, Gh, Gw, E)
        return {w: {"z": z, "c": c}[w] for w in what}
    states = model.hidden_states(x)  # [z, c_1, ..., c_L]
    named = {"z": states[0], "c": states[-1]}
    return {w: named[w] if w in named else states[int(LAYER.fullmatch(w)[1])] for w in what}


def load_cpc(checkpoint, device):
    """(config, model) of a pretrained checkpoint (CPC or a pretext task); a few-shot learner has no z and c to
    write."""
    cfg, model = load_config_and_model(checkpoint, device)
    if registry.get(cfg.objective.name).episodic:
        raise SeqcpcError(f"{checkpoint} holds a few-shot learner (objective.name={cfg.objective.name}), which has "
                          f"no z and c to extract; score it with seqcpc probe --checkpoint {checkpoint} --out DIR")
    return cfg, model


def refuse_imported(checkpoint) -> None:
    """An imported model (seqcpc import-cpc-audio) names no data set: its data section is the defaults', whose
    split is the built-in synthetic sequences, not the speech it was trained on."""
    source = read_checkpoint(checkpoint).get("imported_from")
    if source is not None:
        raise DataError(f"--split: {checkpoint} was imported from {source} (seqcpc import-cpc-audio) and names no "
                        f"data set of its own, so its split would be the built-in synthetic sequences; extract "
                        f"features of your audio with --npy-dir DIR (a folder of 1-D .npy waves at 16 kHz)")


def extract_split(checkpoint, out_dir, split="val", what=("z", "c"), batch_size=16, device="cpu") -> dict:
    _check_what(what)
    refuse_imported(checkpoint)
    cfg, model = load_cpc(checkpoint, device)
    _check_layers(what, cfg, model, checkpoint)
    train, val = modalities.get(cfg.model.modality).datasets(cfg.data, cfg.train.seed)
    dataset = {"train": train, "val": val}[split]
    feats, groups = {w: [] for w in what}, []
    if isinstance(dataset, IterableDataset):  # streamed shards batch themselves: read every slot's, on one rank
        dataset.distribute(1, 0, 0)
        loader = DataLoader(dataset, batch_size=None)
    else:
        loader = DataLoader(dataset, batch_size=batch_size)
    for x, g, *_ in loader:  # padded clips (data.min_clip) add their lengths
        for w, f in features(model, x.to(device), what).items():
            feats[w].append(f.float().cpu().numpy())
        groups.append(g.numpy())
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = {}
    for w in what:
        written[w] = out_dir / f"{w}.npy"
        atomic_save_npy(written[w], np.concatenate(feats[w]))
    atomic_save_npy(out_dir / "groups.npy", np.concatenate(groups))
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
    _check_layers(what, cfg, model, checkpoint)
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
        for w, f in features(model, x[None].to(device), what).items():  # each (1, T, D) or (1, T, E)
            written[f"{path.stem}.{w}"] = out_dir / f"{path.stem}.{w}.npy"
            atomic_save_npy(written[f"{path.stem}.{w}"], f[0].float().cpu().numpy())
    return written
