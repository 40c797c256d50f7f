"""Checkpoints: written atomically, read as data only, and enough to rebuild the model on their own.

A checkpoint holds {"model", "optimizer", "scheduler", "step", "bad_steps", "config", "format"}; "config" is
the resolved run config as plain data, so `load_model(path)` needs nothing but the file. Loading always uses
`torch.load(weights_only=True)`: a checkpoint is data, never code. Format 1 (no "format" key) is the layout
before configs were split by modality: its config holds the fields of every modality, and the fields that do
not apply to its own are dropped when it is read. Format 3 added objective.predictor.first, target_dim and scale
(CPC v2's prediction task, the default of image models since); a format 1-2 checkpoint's model is read with
the values that give the task it was trained on (first=1, no projection, scale 1), whatever today's defaults.
Format 4 moved the objective's options out of the model section into the objective section
(seqcpc.config.MOVED); an earlier checkpoint's are moved when it is read. The image probes' early-stopping
settings (EARLY_STOPPING) of a checkpoint written before the supervised baseline's budgets are dropped.
"""
import re
from pathlib import Path

import torch

from seqcpc.assembly import build_model
from seqcpc.config import MOVED, Config, resolve, to_dict
from seqcpc.errors import CheckpointError, SeqcpcError
from seqcpc.files import existing_file, replace_synced, write_failure

FORMAT = 4
ZIP, PICKLE = b"PK\x03\x04", 0x80  # how a torch file starts: a zip archive, or (before torch 1.6) a pickle
# the model fields each format added -> the values that rebuild the model of a checkpoint written before it
ADDED = {3: {"predictor": {"first": 1, "target_dim": 0, "scale": 1.0}}}
# the image probes' supervised baseline stopped early on a held-out part before its budget was chosen on a
# validation set (seqcpc/image/supervised.py): those settings are dropped, and its one epoch cap is a budget
EARLY_STOPPING = ("supervised_patience", "supervised_check_every", "supervised_holdout")


def save_checkpoint(fabric, path, state: dict) -> None:
    """Write to a temporary file, flush it to disk, then rename over `path`: a crash at any moment leaves
    either the previous checkpoint or the new one, never a torn file. Only rank 0 writes."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        fabric.save(tmp, {**state, "format": FORMAT})
        if fabric.is_global_zero:
            replace_synced(tmp, path)
    except OSError as err:  # e.g. a full disk: drop the partial file, keep the previous checkpoint
        tmp.unlink(missing_ok=True)
        raise CheckpointError(write_failure(path, err, "checkpoint")) from err
    fabric.barrier()


def not_torch_file(head: bytes) -> str:
    """Why a file that starts with `head` cannot be a PyTorch file (a zip archive, or a pickle from before
    torch 1.6), or "" when it may be one."""
    if not head:
        return "it is empty (0 bytes)"
    if head.startswith(ZIP) or head[0] == PICKLE:
        return ""
    if all(32 <= b < 127 or b in b"\t\n\r" for b in head):
        return f"it is not a PyTorch checkpoint (it starts with text: {' '.join(head.decode().split())[:40]!r})"
    return f"it is not a PyTorch checkpoint (it starts with the bytes {head[:8].hex(' ')})"


def load_failure(err: Exception) -> str:
    """Why torch.load failed, in words that never suggest loading with weights_only=False."""
    code = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if code:
        return (f"it holds {code.group(1)}, Python code rather than data, and checkpoints are read as data only "
                f"(tensors and plain values)")
    first = "" if "weights_only" in str(err) else str(err).split(". ")[0].strip()
    return f"it is truncated or damaged ({type(err).__name__}{': ' + first if first else ''})"


def refuse_unreadable(path, name: str, kind: str) -> None:
    """Refuse, without reading it all, a `path` that cannot be a torch file: missing, a folder, empty, text or
    other bytes; named as `name`, with what it was to be read as (`kind`) and why it cannot be."""
    with open(existing_file(path, name), "rb") as f:
        why = not_torch_file(f.read(64))
    if why:
        raise CheckpointError(f"{name} {path} could not be read as {kind}: {why}")


def read_data_file(path, name: str, kind: str):
    """What a torch file at `path` holds, read as data only (tensors and plain values: weights_only, so no pickled
    code runs); a file that is not one, or is damaged, is refused as refuse_unreadable says."""
    refuse_unreadable(path, name, kind)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(f"{name} {path} could not be read as {kind}: {load_failure(err)}") from err


def read_checkpoint(path) -> dict:
    ckpt = read_data_file(path, "checkpoint", "a seqcpc checkpoint")
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a seqcpc checkpoint (it holds no model weights)")
    return ckpt


# the format-3 model sub-sections whose fields were the options of several objectives at once -> the objectives
# whose options they were (the others ignored them)
SHARED_SECTIONS = {"meta": ("protonet", "matching", "maml"), "contrastive": ("simclr", "moco", "sdclr", "cpc"),
                   "pretext": ("rotation", "jigsaw")}


def objective_section(model: dict) -> dict:
    """The objective section of a format 1-3 model section, whose objective options it takes out: the model's
    objective as its name, and every option moved where seqcpc.config.MOVED says; a shared sub-section's fields
    only for the objectives it served (the fields of other objectives are dropped when the config is resolved)."""
    name = model.pop("objective", "cpc")
    section = {"name": name}
    for old, new in MOVED.items():
        if old not in model or old == "objective":
            continue
        value = model.pop(old)
        if new != "objective.{}":
            section[new.split(".")[1]] = value
        elif name in SHARED_SECTIONS[old]:
            section.update(value)
    return section


def checkpoint_config(ckpt: dict) -> Config:
    if "config" not in ckpt:
        raise CheckpointError("the checkpoint holds no run config, so its model cannot be rebuilt")
    version, data = ckpt.get("format", 1), ckpt["config"]
    model = dict(data.get("model") or {})
    for added_in, sections in ADDED.items():
        if version < added_in:
            for section, fields in sections.items():
                model[section] = {**fields, **(model.get(section) or {})}
    if version < 4:
        data = {**data, "objective": objective_section(model)}
    return resolve({**data, "model": model, "probe": probe_section(data.get("probe") or {})}, prune=version < 4)


def probe_section(probe: dict) -> dict:
    """The probe section of a checkpoint written before the image baseline's budgets (EARLY_STOPPING)."""
    probe = {k: v for k, v in probe.items() if k not in EARLY_STOPPING}
    if isinstance(probe.get("supervised_epochs"), (int, float)):
        probe["supervised_epochs"] = [probe["supervised_epochs"]]
    return probe


def load_config_and_model(path, device="cpu") -> tuple[Config, object]:
    """(the run's config, its model rebuilt and in eval mode) from a checkpoint alone, read once."""
    if torch.device(device).type == "cuda" and not torch.cuda.is_available():
        raise SeqcpcError(f"--device {device}: torch sees no GPU on this machine; use --device cpu")
    ckpt = read_checkpoint(path)
    cfg = checkpoint_config(ckpt)
    model = build_model(cfg)
    model.load_state_dict(ckpt["model"])
    return cfg, model.to(device).eval()


def load_model(path, device="cpu"):
    """Rebuild the model from a checkpoint alone; returned in eval mode."""
    return load_config_and_model(path, device)[1]


def flat_fields(data: dict, prefix: str = "") -> dict:
    """{"encoder.dim": 256, ...} of a nested config dict."""
    out = {}
    for k, v in data.items():
        out.update(flat_fields(v, f"{prefix}{k}.") if isinstance(v, dict) else {f"{prefix}{k}": v})
    return out


def check_resumable(path, cfg: Config) -> None:
    """Refuse --resume from a file that is not a readable checkpoint, or whose model is not the config's (a
    changed shape would fail deep inside the load, or a changed norm or loss would load and train on silently)."""
    saved = checkpoint_config(read_checkpoint(path))
    saved = flat_fields({"model": to_dict(saved.model), "objective": to_dict(saved.objective)})
    wanted = flat_fields({"model": to_dict(cfg.model), "objective": to_dict(cfg.objective)})
    differ = [f"{k}: {saved.get(k)!r} in the checkpoint, {wanted.get(k)!r} now"
              for k in sorted(set(saved) | set(wanted)) if k != "model.size" and saved.get(k) != wanted.get(k)]
    if differ:
        raise CheckpointError(f"--resume: the checkpoint {path} holds another model ({'; '.join(differ[:4])}"
                              f"{'; ...' if len(differ) > 4 else ''}); resume with the run's own config (config.yaml "
                              f"in its folder) or start a new run")


def load_matching_weights(model, path, log=print) -> list[str]:
    """Copy into `model` every weight of the checkpoint at `path` with the same name and shape, or the same name
    under one more leading module (encoder.* of a CPC model fills features.encoder.* of a few-shot learner).
    Returns the names filled; refuses a checkpoint that fills none."""
    saved = read_checkpoint(path)["model"]
    own = model.state_dict()
    filled = {}
    for name, value in own.items():
        for key in (name, name.split(".", 1)[-1]):
            if key in saved and saved[key].shape == value.shape:
                filled[name] = saved[key]
                break
    if not filled:
        raise CheckpointError(f"train.init_from={path}: none of its weights fits this model (no name and shape in "
                              f"common, e.g. {next(iter(saved), 'none')} there, {next(iter(own), 'none')} here)")
    model.load_state_dict(filled, strict=False)
    log(f"started from {len(filled)} of {len(own)} weights of {path} ({sum(v.numel() for v in filled.values())} "
        f"numbers); the rest are freshly initialised")
    return list(filled)
