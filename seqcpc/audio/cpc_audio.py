"""Import checkpoints of the CPC reference implementation (facebookresearch/CPC_audio) as seqcpc models.

Shapes: D encoder dim (the reference's hiddenEncoder), E context dim (hiddenGar), G gates of the recurrent cell
(4 for an LSTM, 3 for a GRU), K conv kernel.

The reference's CPCModel is `gEncoder` then `gAR`. gEncoder: five Conv1d with biases, kernels 10 8 4 4 4,
strides 5 4 2 2 2, paddings 3 2 1 1 1 (seqcpc's default encoder, whose padding (K - stride + 1) // 2 gives the
same), each followed by a norm named batchNorm{i} (normMode: batchNorm, layerNorm = a layer norm over channels
with the unbiased variance and weights of shape (1, D, 1), instanceNorm, ID) and a ReLU. gAR: an nn.LSTM or nn.GRU
named baseNet (batch first, nLevelsGRU layers) whose top-layer outputs are c. Only z and c are imported: the
reference's predictors and criterion are left out, and the seqcpc predictors of the result are freshly
initialised. A reference trained with samplingType=sequential carries its recurrent state from one batch to the
next; the imported context starts every sequence from zeros, as the reference's first call does.
"""
import json
from pathlib import Path

import torch

from seqcpc.assembly import build_model, check_config, complete_config
from seqcpc.config import Config, resolve, to_dict
from seqcpc.errors import CheckpointError, ConfigError, DataError
from seqcpc.train.checkpoint import read_data_file, save_checkpoint

# cpc/cpc_default_config.py's defaults of the keys read here: a config that leaves a key out meant these
DEFAULTS = {"hiddenEncoder": 256, "hiddenGar": 256, "nLevelsGRU": 1, "arMode": "LSTM", "normMode": "layerNorm",
            "encoder_type": "cpc", "cpc_mode": None, "nPredicts": 12, "negativeSamplingExt": 128,
            "sizeWindow": 20480}
NORM_MODES = {"batchNorm": "batch", "layerNorm": "layer_unbiased", "instanceNorm": "instance", "ID": "none"}
AR_MODES = {"GRU": "gru", "LSTM": "lstm"}
# the parameters and buffers of each norm, as the reference names them (seqcpc's layer norm keeps its weights in
# a LayerNorm called `norm`)
NORM_PARAMS = {"batch": ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"),
               "layer_unbiased": ("weight", "bias"), "instance": ("weight", "bias"), "none": ()}
CONVS = 5
# the reference's keys behind the fields that a run's config check bounds by one another
CHECKED = {"sizeWindow": "data.window", "nPredicts": "objective.predictor.steps",
           "negativeSamplingExt": "objective.loss.num_negatives"}


def mapping(value, what) -> dict:
    """`value` if it is a dict keyed by names; anything else is refused, naming `what`."""
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        kind = "dict with keys that are not names" if isinstance(value, dict) else type(value).__name__
        raise CheckpointError(f"{what} holds a {kind}, not a mapping of names: not a CPC_audio checkpoint")
    return value


def read_reference(path) -> tuple[dict, dict]:
    """(the run's arguments, the CPCModel state dict) of a published checkpoint ({"config", "weights"}, as its
    hubconf loads) or of a training checkpoint ({"gEncoder": state dict, ...} with checkpoint_args.json beside)."""
    path = Path(path)
    ckpt = read_data_file(path, "CPC_audio checkpoint", "data (tensors and plain values only)")
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{path} holds a {type(ckpt).__name__}, not a CPC_audio checkpoint")
    if "weights" in ckpt and "config" in ckpt:
        return mapping(ckpt["config"], f"{path}: 'config'"), mapping(ckpt["weights"], f"{path}: 'weights'")
    if "gEncoder" in ckpt:
        return training_arguments(path), mapping(ckpt["gEncoder"], f"{path}: 'gEncoder'")
    hint = "; it is a seqcpc checkpoint already" if "model" in ckpt else ""
    raise CheckpointError(f"{path} is not a CPC_audio checkpoint: expected the keys 'config' and 'weights' (a "
                          f"published model) or 'gEncoder' (a training checkpoint), found {sorted(ckpt)[:6]}{hint}")


def training_arguments(path: Path) -> dict:
    """The arguments of a CPC_audio training checkpoint: checkpoint_args.json beside it."""
    args_path = path.parent / "checkpoint_args.json"
    if not args_path.is_file():
        raise DataError(f"{path} is a CPC_audio training checkpoint, whose arguments live in {args_path}, which "
                        f"does not exist; put the run's checkpoint_args.json beside it")
    try:
        return mapping(json.loads(args_path.read_text()), args_path)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{args_path} is not valid JSON: {err}") from err


def reference_arg(args: dict, key: str):
    return args.get(key, DEFAULTS[key])


def reference_size(args: dict, key: str) -> int:
    value = reference_arg(args, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"CPC_audio config key {key}={value!r}: expected a whole number >= 1")
    return value


def model_config(args: dict) -> tuple[dict, dict]:
    """The seqcpc model and objective sections of the reference's arguments; refuses what seqcpc cannot
    represent."""
    encoder_type, norm_mode = reference_arg(args, "encoder_type"), reference_arg(args, "normMode")
    ar_mode, cpc_mode = reference_arg(args, "arMode"), reference_arg(args, "cpc_mode")
    if encoder_type != "cpc":
        raise ConfigError(f"CPC_audio config key encoder_type={encoder_type!r}: only the conv encoder ('cpc') "
                          f"imports; seqcpc has no {encoder_type} encoder")
    if not isinstance(norm_mode, str) or norm_mode not in NORM_MODES:
        raise ConfigError(f"CPC_audio config key normMode={norm_mode!r} is not one of {', '.join(NORM_MODES)}")
    if not isinstance(ar_mode, str) or ar_mode not in AR_MODES:
        raise ConfigError(f"CPC_audio config key arMode={ar_mode!r}: only GRU and LSTM contexts import (seqcpc's "
                          f"transformer context is another network, and it has no plain RNN or no_ar context)")
    if cpc_mode in ("reverse", "bert"):
        raise ConfigError(f"CPC_audio config key cpc_mode={cpc_mode!r}: its context reads the sequence "
                          f"{'backwards' if cpc_mode == 'reverse' else 'in both directions'}; seqcpc's contexts "
                          f"are causal (forward) only")
    model = {"modality": "audio",
            "encoder": {"dim": reference_size(args, "hiddenEncoder"), "norm": NORM_MODES[norm_mode],
                        "bias": True, "kernels": [10, 8, 4, 4, 4], "strides": [5, 4, 2, 2, 2]},
            "context": {"kind": AR_MODES[ar_mode], "dim": reference_size(args, "hiddenGar"),
                        "layers": reference_size(args, "nLevelsGRU")}}
    objective = {"name": "cpc", "predictor": {"steps": reference_size(args, "nPredicts")},
                 "loss": {"num_negatives": reference_size(args, "negativeSamplingExt")}}
    return model, objective


def name_map(norm: str, layers: int) -> dict[str, str]:
    """Reference parameter name -> seqcpc parameter name, for every weight and buffer of z and c."""
    names, inner = {}, ".norm" if norm == "layer_unbiased" else ""
    for i in range(CONVS):
        conv, after = 3 * i, 3 * i + 1  # seqcpc's encoder.net is [conv, norm, ReLU] per layer
        names[f"gEncoder.conv{i}.weight"] = f"encoder.net.{conv}.weight"
        names[f"gEncoder.conv{i}.bias"] = f"encoder.net.{conv}.bias"
        for p in NORM_PARAMS[norm]:
            names[f"gEncoder.batchNorm{i}.{p}"] = f"encoder.net.{after}{inner}.{p}"
    for k in range(layers):
        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            names[f"gAR.baseNet.{p}_l{k}"] = f"context.rnn.{p}_l{k}"
    return names


def mapped_weights(weights: dict, names: dict, own: dict, source) -> dict:
    """seqcpc's state entries for z and c from the reference's, checked name by name and shape by shape."""
    missing = [n for n in names if n not in weights]
    if missing:
        raise CheckpointError(f"{source}: the weights lack {', '.join(missing[:3])}"
                              f"{' ...' if len(missing) > 3 else ''} that its config (hiddenEncoder, normMode, arMode, "
                              f"nLevelsGRU) implies; is it a CPCModel's state dict (a concatenation of models is not)?")
    unused = [n for n in weights if n.startswith(("gEncoder.", "gAR.")) and n not in names]
    if unused:
        raise CheckpointError(f"{source}: {', '.join(unused[:3])} belong to no layer of the model its config "
                              f"describes (normMode, arMode, nLevelsGRU); the config does not match the weights")
    out = {}
    for ref, ours in names.items():
        value = weights[ref]
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{source}: {ref} holds a {type(value).__name__}, not a tensor")
        if ref.startswith("gEncoder.batchNorm") and value.dim() == 3:
            value = value.reshape(-1)  # ChannelNorm's (1, D, 1) -> LayerNorm's (D,)
        if value.shape != own[ours].shape:
            raise CheckpointError(f"{source}: {ref} has shape {tuple(value.shape)}, but the config (hiddenEncoder, "
                                  f"hiddenGar, nLevelsGRU) gives {tuple(own[ours].shape)}")
        out[ours] = value
    return out


def run_config(args: dict, source) -> Config:
    """The seqcpc config of the reference's arguments, completed and checked as a run's is: a window shorter than
    the receptive field, K not shorter than its latent steps or more negatives than positions are refused."""
    model, objective = model_config(args)
    cfg = complete_config(resolve({"model": model, "objective": objective,
                                   "data": {"window": reference_size(args, "sizeWindow"), "sample_rate": 16000}}))
    try:
        check_config(cfg)
    except ConfigError as err:
        given = " ".join(f"{key}={reference_arg(args, key)}" for key in CHECKED)
        raise ConfigError(f"{source}: its arguments {given} (seqcpc's {', '.join(CHECKED.values())}) make a "
                          f"config that a seqcpc run refuses: {err}") from err
    return cfg


def convert_cpc_audio(path) -> tuple[Config, object]:
    """(seqcpc config, CPC model in eval mode) with z and c exactly those of the CPC_audio checkpoint at `path`;
    the predictors are freshly initialised (the reference's are not imported)."""
    args, weights = read_reference(path)
    cfg = run_config(args, path)
    model = build_model(cfg)
    own = model.state_dict()
    names = name_map(cfg.model.encoder.norm, cfg.model.context.layers)
    model.load_state_dict(mapped_weights(weights, names, own, path), strict=False)
    return cfg, model.eval()


def check_out(path, out: Path, overwrite: bool) -> None:
    """Refuse an `out` that is the checkpoint to convert (even with `overwrite`), a folder, or (without
    `overwrite`) any file that exists, such as a run's last.ckpt."""
    if out.exists() and Path(path).exists() and out.samefile(path):
        raise DataError(f"--out {out} is the checkpoint to convert (--checkpoint {path}); write the seqcpc "
                        f"checkpoint to another file")
    if out.is_dir():
        raise DataError(f"--out {out} is a folder; give the file to write, e.g. --out {out / 'cpc.ckpt'}")
    if out.exists() and not overwrite:
        raise DataError(f"--out {out} exists; give --overwrite to replace it, or another --out")


def import_cpc_audio(path, out, overwrite: bool = False) -> tuple[Config, Path]:
    """Convert the CPC_audio checkpoint at `path` and write it as a seqcpc checkpoint at `out` (for `seqcpc
    extract` and `seqcpc probe`), atomically; returns (its config, `out`). Nothing is written when `out` exists
    (unless `overwrite`), is `path` itself, or the conversion is refused."""
    from lightning_fabric import Fabric

    out = Path(out)
    check_out(path, out, overwrite)
    cfg, model = convert_cpc_audio(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(Fabric(accelerator="cpu", devices=1), out,
                    {"model": model, "step": 0, "config": to_dict(cfg), "imported_from": str(path)})
    return cfg, out
