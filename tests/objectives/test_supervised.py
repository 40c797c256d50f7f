"""The supervised ceiling: the CPC encoder and context trained to name the speaker, through the same loop."""
import json
import math

import numpy as np
import pytest
import torch

from audio_fixtures import tone, write
from conftest import cli
from seqcpc.builders import build_model
from seqcpc.audio.manifest import Utterance, write_manifest
from seqcpc.config import load_config
from seqcpc.errors import ConfigError
from seqcpc.train.checkpoint import load_model

TINY = ["model.size=synthetic_tiny", "model.encoder.dim=16", "model.context.dim=16", "objective.name=supervised"]


def tone_speakers(out, speakers=4, utts=6, seconds=0.6, rate=16000):
    """Speakers that are tones a fifth apart, each utterance slightly detuned; the first two utterances of each
    are its test split. Returns the manifest path."""
    rows = []
    for s in range(speakers):
        for u in range(utts):
            uid, freq = f"s{s}_u{u}", 150 * 1.5 ** s * (1 + 0.02 * (u - utts / 2))
            write(out / f"s{s}" / f"{uid}.flac", tone(seconds, rate, freq, seed=u), rate)
            rows.append(Utterance(uid, f"s{s}/{uid}.flac", f"s{s}", "test" if u < 2 else "train", seconds, rate, 1,
                                  int(seconds * rate)))
    write_manifest(out / "manifest.tsv", rows)
    return out / "manifest.tsv"


def test_the_model_scores_its_labels_and_embeds_like_cpc():
    model = build_model(load_config(None, [*TINY, "objective.classes=3"]))
    x, groups = torch.randn(4, 1, 1200), torch.tensor([0, 1, 2, -1])
    loss, metrics = model(x, groups)
    logits = model.to_logits(model.features(x))[:3]
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, groups[:3]))  # -1 left out
    assert set(metrics) == {"acc"} and model.chance_loss(4, 30) == pytest.approx(math.log(3))
    z, c = model.embed(x)
    assert z.shape == (4, 30, 16) and c.shape == (4, 30, 16) and not c.requires_grad
    with pytest.raises(ConfigError, match="objective.classes"):
        build_model(load_config(None, TINY))  # the class count is not known yet


def test_a_cli_run_learns_the_speakers_and_its_checkpoint_extracts(tmp_path, capsys):
    manifest = tone_speakers(tmp_path / "c")
    out = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", *TINY, "data.kind=manifest", f"data.manifest={manifest}",
                       "data.window=4000", "data.batch_size=8", "optim.lr=1e-2", "optim.warmup_steps=2",
                       "train.max_steps=30", "train.log_every=10", "train.val_every=30", f"train.out_dir={out}")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["chance_loss"] == pytest.approx(math.log(4))
    assert summary["val_loss"] < 0.5 * summary["chance_loss"] and summary["val_metrics"]["acc"] > 0.75  # chance 0.25
    code, _, err = cli(capsys, "extract", "--checkpoint", out / "checkpoints" / "last.ckpt", "--out", tmp_path / "f",
                       "--split", "val")
    assert code == 0, err
    c, groups = np.load(tmp_path / "f" / "c.npy"), np.load(tmp_path / "f" / "groups.npy")
    assert c.shape == (8, 100, 16) and groups.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    model = load_model(out / "checkpoints" / "last.ckpt")
    assert model.to_logits.out_features == 4
