"""A modality and an objective that seqcpc has never seen, registered from outside, train through the unchanged
loop: their own config sections, the metrics in the log and the plot, the chance level in the summary, and the
per-step and per-epoch hooks called when they should be. The modality offers one part (pooled features), so the
built-in objectives that assemble only that part work on it too."""
import csv
import json
import math
from dataclasses import dataclass
from typing import Optional

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from seqcpc import modalities
from seqcpc.config import FewShotConfig, load_config
from seqcpc.modalities import Geometry
from seqcpc.objectives import registry
from seqcpc.core.pretrainable import Pretrainable
from seqcpc.errors import ConfigError
from seqcpc.train.checkpoint import load_model
from seqcpc.train.loop import pretrain


@dataclass
class ToyModelConfig:
    size: Optional[str] = None
    modality: str = "toy"
    dim: int = 8


@dataclass
class ToyDataConfig:
    batch_size: int = 4
    num_workers: int = 0
    items: int = 16


class Points(Dataset):
    """Items (x (2,), class id): two classes of noisy points."""

    def __init__(self, items: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.y = torch.arange(items) % 2
        self.x = torch.randn(items, 2, generator=g) * 0.1 + self.y[:, None].float()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


class ToyParts:
    """The toy modality's one part: pooled features of a point, (B, 2) -> (B, D)."""

    def __init__(self, cfg: ToyModelConfig):
        self.dim = cfg.dim

    def pooled(self, pool: int = 1, augment: bool = True):
        features = nn.Linear(2, self.dim)
        features.dim = self.dim
        return features


@dataclass
class CountingConfig:
    temperature: float = 0.5


class CountingObjective(Pretrainable):
    """A toy contrastive objective (each item against the batch) that counts its hook calls in buffers, so that
    checkpoints hold the counts."""

    def __init__(self, features: nn.Module, temperature: float):
        super().__init__()
        self.to_latent, self.temperature = features, temperature
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def forward(self, x, groups=None):
        z = F.normalize(self.to_latent(x), dim=-1)  # (B, D)
        logits = z @ (z + 0.01 * torch.randn_like(z)).T / self.temperature  # (B, B): an item's noisy copy is its positive
        target = torch.arange(len(x))
        return F.cross_entropy(logits, target), {"hit": (logits.argmax(1) == target).float().mean(),
                                                 "margin/top": logits.max(1).values.mean()}

    @torch.no_grad()
    def embed(self, x):
        return self.to_latent(x)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return math.log(batch_size)

    def on_step_end(self, step: int) -> None:
        self.steps_seen += 1

    def on_epoch_start(self, epoch: int) -> None:
        self.epochs_seen += 1


def check_toy(cfg, objective) -> Geometry:
    if cfg.model.dim < 1:
        raise ConfigError("model.dim must be >= 1")
    return Geometry(1, 1, 1, "points")


TOY = modalities.register(modalities.Modality(
    name="toy", model_config=ToyModelConfig, data_config=ToyDataConfig, probe_config=FewShotConfig,
    parts=ToyParts, check=check_toy, gives=frozenset({"labels"}), count_classes=lambda cfg: (2, "2 classes of toy points"),
    datasets=lambda cfg, seed: (Points(cfg.items, seed), Points(cfg.items, seed + 1)),
    evaluate=lambda cfg, model, out_dir, log=print: {},
))
COUNTING = registry.register(registry.Objective(
    name="counting", config=CountingConfig, parts=("pooled",),
    build=lambda parts, cfg: CountingObjective(parts.pooled(), cfg.temperature),
))


def test_a_registered_modality_trains_through_the_unchanged_loop(tmp_path):
    cfg = load_config(None, ["model.modality=toy", "objective.name=counting", "model.dim=4", "data.items=16",
                             "data.batch_size=4",
                             "train.max_steps=10", "train.log_every=5", "train.val_every=5", "train.ckpt_every=5",
                             "optim.warmup_steps=1", f"train.out_dir={tmp_path}"])
    summary = pretrain(cfg)
    assert summary["step"] == 10 and summary["chance_loss"] == math.log(4)
    assert set(summary["val_metrics"]) == {"hit", "margin/top"}
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {"hit", "margin/top"} <= set(rows[0]) and [r["step"] for r in rows] == ["5", "5", "10", "10"]
    assert (tmp_path / "curves.png").is_file()
    model = load_model(tmp_path / "checkpoints" / "last.ckpt")
    # 4 batches an epoch, 10 steps: epochs 0, 1 and 2 start, and the hook ran after every step
    assert int(model.steps_seen) == 10 and int(model.epochs_seen) == 3
    assert json.loads((tmp_path / "summary.json").read_text())["step"] == 10


def test_fields_of_a_registered_modality_are_checked_like_any_other():
    with pytest.raises(ConfigError, match="unknown config key 'model.window'"):
        load_config(None, ["model.modality=toy", "objective.name=counting", "model.window=3"])
    with pytest.raises(ConfigError, match="'model.patches' applies only to image models"):
        load_config(None, ["model.modality=toy", "objective.name=counting", "model.patches.size=3"])
    with pytest.raises(ConfigError, match="objective.name=cpc does not work on toy data"):
        load_config(None, ["model.modality=toy"])


def test_a_built_in_objective_that_needs_only_the_parts_it_offers_trains_on_it(tmp_path):
    summary = pretrain(load_config(None, ["model.modality=toy", "objective.name=supervised", "data.items=16",
                                          "data.batch_size=4", "train.max_steps=4", "train.log_every=2",
                                          "train.val_every=2", f"train.out_dir={tmp_path}"]))
    assert summary["chance_loss"] == pytest.approx(math.log(2)) and "acc" in summary["val_metrics"]
