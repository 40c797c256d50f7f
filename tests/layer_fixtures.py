"""A tiny audio CPC checkpoint with a multi-layer context and the paper's strides (one frame per 160 samples)."""
import torch
from lightning_fabric import Fabric

from seqcpc.builders import build_model
from seqcpc.config import load_config, to_dict
from seqcpc.train.checkpoint import save_checkpoint


def tiny_layered_model(norm="batch", layers=2, kind="gru", encoder="conv"):
    """(config, model in eval mode) with weights and batch-norm statistics moved away from a fresh build's: a
    fresh batch norm maps 0 to 0, which would hide what padding does to the frames."""
    cfg = load_config(None, ["model.encoder.dim=24", "model.context.dim=16", f"model.context.layers={layers}",
                             f"model.context.kind={kind}", f"model.encoder.norm={norm}", f"model.encoder.kind={encoder}",
                             "objective.predictor.steps=2",
                             "objective.loss.num_negatives=4"])
    model = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
    return cfg, model.eval()


def save_layered_checkpoint(path, norm="batch", layers=2, kind="gru"):
    """Write tiny_layered_model's checkpoint to `path`; returns (config, model)."""
    cfg, model = tiny_layered_model(norm, layers, kind)
    save_checkpoint(Fabric(accelerator="cpu", devices=1), path, {"model": model, "step": 1, "config": to_dict(cfg)})
    return cfg, model
