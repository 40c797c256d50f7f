"""The online speaker probe: a linear head on the detached context trained beside CPC, whose accuracy the loop
logs and plots like any metric."""
import csv

import pytest
import torch
import yaml

from audio_fixtures import toy_speech_corpus
from conftest import cli
from seqcpc.builders import build_model
from seqcpc.audio.manifest import read_manifest, write_manifest
from seqcpc.builders import check_config, complete_config
from seqcpc.config import load_config
from seqcpc.core.online import OnlineProbe
from seqcpc.errors import ConfigError
from seqcpc.train.checkpoint import load_model

TINY = ["model.size=synthetic_tiny", "model.encoder.dim=16", "model.context.dim=16", "objective.predictor.steps=3",
        "objective.loss.num_negatives=8"]


def grads(model, x, groups):
    torch.manual_seed(0)  # the same negatives for both models
    model.zero_grad()
    model(x, groups)[0].backward()
    return {k: p.grad for k, p in model.named_parameters()}


def test_the_head_learns_but_sends_no_gradient_into_the_encoder_or_context():
    probed = build_model(load_config(None, [*TINY, "objective.online_probe=true", "objective.classes=3"]))
    plain = build_model(load_config(None, TINY))
    plain.load_state_dict({k: v for k, v in probed.state_dict().items() if not k.startswith("online.")})
    x, groups = torch.randn(4, 1, 1200), torch.tensor([0, 1, 2, 1])
    with_probe, without = grads(probed, x, groups), grads(plain, x, groups)
    assert set(with_probe) - set(without) == {"online.to_logits.weight", "online.to_logits.bias"}
    assert with_probe["online.to_logits.weight"].abs().sum() > 0
    for name, g in without.items():
        torch.testing.assert_close(with_probe[name], g, rtol=0, atol=0, msg=name)
    loss, metrics = probed(x, groups)
    assert 0 <= metrics["online_speaker"] <= 1
    assert probed.chance_loss(4, 30) == pytest.approx(plain.chance_loss(4, 30) + torch.log(torch.tensor(3.)).item())


def test_unknown_labels_are_left_out_of_loss_and_accuracy():
    probe = OnlineProbe(5, 3)
    c = torch.randn(4, 7, 5)
    logits = probe.to_logits(c.mean(1))
    loss, metrics = probe(c, torch.tensor([0, -1, 2, -1]))
    known = logits[[0, 2]]
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(known, torch.tensor([0, 2])))
    assert metrics["online_speaker"] == (known.argmax(1) == torch.tensor([0, 2])).float().mean()
    loss, metrics = probe(c, torch.full((4,), -1))  # a batch of unknown speakers only: finite, no hits
    assert loss == 0 and metrics["online_speaker"] == 0 and loss.requires_grad


def test_padded_steps_are_left_out_of_the_pooling():
    probe = OnlineProbe(5, 3)
    c, labels = torch.randn(2, 6, 5), torch.tensor([0, 2])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    padded = c.clone()
    padded[1, 3:] = 1e3  # what the padding gives must not matter
    expected = torch.nn.functional.cross_entropy(probe.to_logits(torch.stack([c[0].mean(0), c[1, :3].mean(0)])),
                                                 labels)
    torch.testing.assert_close(probe(padded, labels, mask)[0], expected)


def test_the_class_count_comes_from_the_data_and_bad_settings_are_refused(tmp_path):
    manifest = toy_speech_corpus(tmp_path / "c", speakers=3, heldout=1, utts=4, seconds=0.5)
    speech = [*TINY, "data.kind=manifest", f"data.manifest={manifest}", "data.window=4000"]
    cfg = complete_config(load_config(None, [*speech, "objective.online_probe=true"]))
    check_config(cfg)
    assert cfg.objective.classes == 3  # the train split's speakers; the held-out one is not trained on
    cfg = complete_config(load_config(None, [*TINY, "objective.online_probe=true", "data.groups=5",
                                             "data.window=2048"]))
    check_config(cfg)
    assert cfg.objective.classes == 5
    with pytest.raises(ConfigError, match="objective.classes=2 but .* has 3 speakers"):
        complete_config(load_config(None, [*speech, "objective.online_probe=true", "objective.classes=2"]))
    with pytest.raises(ConfigError, match="'objective.predictor' applies only to objective.name=cpc"):
        load_config(None, ["objective.name=simclr", *speech, "objective.online_probe=true"])
    with pytest.raises(ConfigError, match="objective.classes"):
        build_model(load_config(None, [*TINY, "objective.online_probe=true"]))  # not counted yet


def test_a_cli_run_logs_and_plots_the_probe_and_its_checkpoint_loads(tmp_path, capsys):
    manifest = toy_speech_corpus(tmp_path / "c", speakers=4, heldout=0, utts=6, seconds=0.6)
    rows = list(read_manifest(manifest))  # s3 keeps only test utterances: its validation windows have group -1
    write_manifest(manifest, [r for r in rows if not (r.speaker == "s3" and r.split == "train")])
    out = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", *TINY, "objective.online_probe=true", "data.kind=manifest",
                       f"data.manifest={manifest}", "data.window=4000", "data.batch_size=4", "optim.lr=2e-3",
                       "train.max_steps=6", "train.log_every=3", "train.val_every=3", f"train.out_dir={out}")
    assert code == 0, err
    with open(out / "metrics.csv", newline="") as f:
        logged = list(csv.DictReader(f))
    for split in ("train", "val"):
        values = [float(r["online_speaker"]) for r in logged if r["split"] == split]
        assert len(values) == 2 and all(0 <= v <= 1 for v in values)
    assert (out / "curves.png").stat().st_size > 0
    assert yaml.safe_load((out / "config.yaml").read_text())["objective"]["classes"] == 3
    model = load_model(out / "checkpoints" / "last.ckpt")
    assert model.online.to_logits.weight.shape == (3, 16)
