"""CPC_audio's later recipe as options: the real `seqcpc pretrain` on the tiny synthetic config with the transformer
prediction head, CPC2's augmentation of the past, and the log mel filterbank encoder, each lowering the loss."""
import csv
import json

import pytest

from conftest import TINY, run_cli

OPTIONS = {
    "transformer_head": ["objective.predictor.kind=transformer", "objective.predictor.hidden=64"],
    # mild effects: the synthetic sequences are sines, whose frequency and phase (which pitch and reverb move) are
    # all there is to predict; tests/audio/test_augment_past.py checks every effect
    "augment_past": ["objective.augment_past.noise_prob=1", "objective.augment_past.snr_db=[20,30]",
                     "objective.augment_past.time_drop_prob=0.5", "objective.augment_past.time_drop_ms=5"],
    "lfb_encoder": ["model.encoder.kind=lfb", "data.window=4096"],  # 25 frames of 10 ms
}


@pytest.mark.parametrize("name", list(OPTIONS))
def test_a_tiny_run_with_the_option_lowers_the_loss(name, tmp_path):
    run_cli("pretrain", *TINY, *OPTIONS[name], "train.max_steps=60", "train.log_every=5", "train.val_every=60",
            "train.ckpt_every=60", f"train.out_dir={tmp_path}")
    with open(tmp_path / "metrics.csv", newline="") as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f) if r["split"] == "train"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert losses[0] > summary["chance_loss"] - 0.2  # starts near chance, log(1 + 32)
    assert losses[-1] < losses[0] - 0.15 and summary["val_loss"] < summary["chance_loss"] - 0.15
