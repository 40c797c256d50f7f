"""An objective that seqcpc has never seen, defined and registered here (no file of the package is edited for it),
trains through the unchanged command line on both modalities: its own config section (with the modality's view
options inside it), its metrics in the log, its chance level in the summary, its hooks called when they should be,
and its options refused on any other objective.

The objective is a small BYOL (Grill et al. 2020): an online network with a predictor chases a momentum copy of
itself across two views of each sample; no negatives. It assembles two parts every modality may offer: pooled
features and views."""
import copy
import csv
import json
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

from conftest import TINY, TINY_ANY, cli
from image_fixtures import toy_image_store
from seqcpc import modalities
from seqcpc.config import load_config
from seqcpc.core.pretrainable import Pretrainable
from seqcpc.errors import ConfigError
from seqcpc.fields import number
from seqcpc.objectives import registry
from seqcpc.objectives.two_views import projection_head
from seqcpc.train.checkpoint import load_config_and_model


@dataclass
class TinyBYOLConfig:
    hidden: int = number(32, min=1)  # the heads' hidden layer
    projection: int = number(16, min=1)  # what the online prediction and the target are compared in
    momentum: float = number(0.9, min=0, max=1)  # the target network keeps this much of itself a step
    pool: int = number(1, min=1)


class TinyBYOL(Pretrainable):
    def __init__(self, features, views, cfg: TinyBYOLConfig):
        super().__init__()
        self.features, self.views, self.momentum = features, views, cfg.momentum
        self.head = projection_head(features.dim, cfg.hidden, cfg.projection)
        self.to_pred = projection_head(cfg.projection, cfg.hidden, cfg.projection)
        self.target = copy.deepcopy(torch.nn.ModuleList([self.features, self.head])).requires_grad_(False)
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        self.register_buffer("epochs_seen", torch.zeros((), dtype=torch.long))

    def train(self, mode: bool = True):
        super().train(mode)
        self.views.train(True)  # the loss compares views in validation too
        return self

    def forward(self, x, groups=None):
        p = F.normalize(self.to_pred(self.head(self.features(self.views(x)))), dim=-1)  # (B, P)
        with torch.no_grad():
            t = F.normalize(self.target[1](self.target[0](self.views(x))), dim=-1)  # (B, P)
        cosine = (p * t).sum(-1)  # (B,)
        return (2 - 2 * cosine).mean(), {"cosine": cosine.mean()}

    @torch.no_grad()
    def embed(self, x):
        return self.features.latents(x)

    def chance_loss(self, batch_size: int, positions: int) -> float:
        return 2.0  # unrelated directions: cosine 0

    @torch.no_grad()
    def on_step_end(self, step: int) -> None:
        online = [*self.features.parameters(), *self.head.parameters()]
        for t, o in zip(self.target.parameters(), online):
            t.mul_(self.momentum).add_(o, alpha=1 - self.momentum)
        self.steps_seen += 1

    def on_epoch_start(self, epoch: int) -> None:
        self.epochs_seen += 1


TINY_BYOL = registry.register(registry.Objective(
    name="tiny_byol", config=TinyBYOLConfig, parts=("pooled", "views"),
    build=lambda parts, cfg: TinyBYOL(parts.pooled(cfg.pool, augment=False), parts.views(cfg.views), cfg),
    summary="a small BYOL: the online network predicts a momentum copy's projection of another view",
))

RUN = ["objective.name=tiny_byol", "objective.momentum=0.8", "train.max_steps=6", "train.log_every=3",
       "train.val_every=3", "train.ckpt_every=3", "train.val_batches=2", "optim.warmup_steps=1"]
AUDIO = [*TINY_ANY, "data.num_sequences=32", "data.val_sequences=16", "objective.views.length=1024"]
IMAGE = ["model.size=image_small", "model.encoder.dim=16", "model.patches.widths=[8,16]", "data.batch_size=8"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_image_store(tmp_path_factory.mktemp("byol") / "stripes")


@pytest.mark.parametrize("modality", ["audio", "image"])
def test_a_plugin_objective_trains_through_the_unchanged_cli_on_both_modalities(modality, store, tmp_path,
                                                                                   capsys):
    args = AUDIO if modality == "audio" else [*IMAGE, f"data.images={store}"]
    code, out, err = cli(capsys, "pretrain", *args, *RUN, f"train.out_dir={tmp_path}")
    assert code == 0, err
    assert f"{modality} model, objective tiny_byol" in out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["step"] == 6 and summary["chance_loss"] == 2.0 and set(summary["val_metrics"]) == {"cosine"}
    with open(tmp_path / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert "cosine" in rows[0] and [r["step"] for r in rows] == ["3", "3", "6", "6"]
    cfg, model = load_config_and_model(tmp_path / "checkpoints" / "last.ckpt")
    assert cfg.objective.name == "tiny_byol" and cfg.objective.momentum == 0.8 and type(model) is TinyBYOL
    assert int(model.steps_seen) == 6 and int(model.epochs_seen) >= 1  # the hooks ran, and the checkpoint holds it
    assert type(cfg.objective.views).__name__ == ("AudioViewsConfig" if modality == "audio" else "ImageViewsConfig")


def test_its_options_are_its_own():
    with pytest.raises(ConfigError, match="'objective.momentum' applies only to objective.name=moco and "
                                          "objective.name=tiny_byol"):
        load_config(None, [*TINY, "objective.momentum=0.5"])
    with pytest.raises(ConfigError, match="'objective.queue' applies only to objective.name=moco"):
        load_config(None, [*TINY_ANY, "objective.name=tiny_byol", "objective.queue=8"])
    with pytest.raises(ConfigError, match="unknown config key 'objective.momentun' .did you mean 'momentum'"):
        load_config(None, [*TINY_ANY, "objective.name=tiny_byol", "objective.momentun=0.5"])
    assert {"tiny_byol", "cpc"} <= set(registry.supported(modalities.get("audio")))
