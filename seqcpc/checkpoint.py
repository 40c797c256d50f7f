"""Checkpoints: written atomically, read as data only, and enough to rebuild the model on their own.

A checkpoint holds {"model", "optimizer", "scheduler", "step", "bad_steps", "config"}; "config" is the resolved
run config as plain data, so `load_model(path)` needs nothing but the file. Loading always uses
`torch.load(weights_only=True)`: a checkpoint is data, never code.
"""
import os
from pathlib import Path

import torch

from seqcpc.builders import build_model
from seqcpc.config import Config, resolve
from seqcpc.errors import CheckpointError


def save_checkpoint(fabric, path, state: dict) -> None:
    """Write to a temporary file, flush it to disk, then rename over `path`: a crash at any moment leaves
    either the previous checkpoint or the new one, never a torn file. Only rank 0 writes."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fabric.save(tmp, state)
        if fabric.is_global_zero:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, path)
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as err:  # e.g. a full disk: drop the partial file, keep the previous checkpoint
        tmp.unlink(missing_ok=True)
        kept = "the previous checkpoint is kept" if path.exists() else "no earlier checkpoint exists"
        raise CheckpointError(f"could not write checkpoint {path} ({err}); {kept}") from err
    fabric.barrier()


def read_checkpoint(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} could not be read as a seqcpc checkpoint: {err}") from err


def checkpoint_config(ckpt: dict) -> Config:
    return resolve(ckpt["config"])


def load_model(path, device="cpu"):
    """Rebuild the CPC model from a checkpoint alone; returned in eval mode."""
    ckpt = read_checkpoint(path)
    model = build_model(checkpoint_config(ckpt).model)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval()
