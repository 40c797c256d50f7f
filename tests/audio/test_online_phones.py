"""The online phone probe: a linear head on every detached context step, trained beside CPC on the frame labels
(phones.txt) the training windows carry, logged and plotted like the online speaker probe."""
import csv
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from audio_fixtures import toy_speech_corpus
from conftest import cli
from seqcpc.builders import build_model
from seqcpc.audio.manifest import read_phones, write_phones
from seqcpc.audio.modality import audio_datasets
from seqcpc.audio.windows import WindowDataset
from seqcpc.builders import check_config, complete_config
from seqcpc.config import load_config
from seqcpc.core.online import FrameProbe, frame_labels
from seqcpc.errors import ConfigError
from seqcpc.train.checkpoint import load_model

TINY = ["model.size=synthetic_tiny", "model.encoder.dim=16", "model.context.dim=16", "objective.predictor.steps=3",
        "objective.loss.num_negatives=8"]


def corpus(tmp_path, **kw):
    return toy_speech_corpus(tmp_path / "c", **{"speakers": 3, "heldout": 1, "utts": 4, "seconds": 0.5, **kw})


def speech(manifest, *more):
    return [*TINY, "data.kind=manifest", f"data.manifest={manifest}", "data.window=4000", *more]


def test_labels_follow_the_steps_by_their_centres():
    labels = torch.tensor([[0, 1, 2, 3, 4, 5, 6, 7]])
    assert frame_labels(labels, 8) is labels
    assert frame_labels(labels, 4).tolist() == [[1, 3, 5, 7]]  # 20 ms steps: the second 10 ms frame of each
    assert frame_labels(labels, 3).tolist() == [[1, 4, 6]]


def test_unknown_and_padded_frames_are_left_out_of_loss_and_accuracy():
    probe = FrameProbe(5, 4)
    c = torch.randn(2, 6, 5)
    labels = torch.tensor([[0, 1, -1, 3, 2, 2], [1, 1, 2, 3, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], dtype=torch.bool)
    padded = c.clone()
    padded[1, 4:] = 1e3  # what the padding gives must not matter
    loss, metrics = probe(padded, labels, mask)
    keep = (labels >= 0) & mask
    logits = probe.to_logits(c)[keep]
    torch.testing.assert_close(loss, F.cross_entropy(logits, labels[keep]))
    assert metrics["online_phone"] == (logits.argmax(1) == labels[keep]).float().mean()
    loss, metrics = probe(c, torch.full((2, 6), -1))  # no known frame: finite, no hits, still in the graph
    assert loss == 0 and metrics["online_phone"] == 0 and loss.requires_grad


def test_the_head_learns_but_sends_no_gradient_into_the_encoder_or_context():
    probed = build_model(load_config(None, [*TINY, "objective.online_phones=true", "objective.phone_classes=4"]))
    plain = build_model(load_config(None, TINY))
    plain.load_state_dict({k: v for k, v in probed.state_dict().items() if not k.startswith("online_frames.")})
    x, groups = torch.randn(4, 1, 1200), torch.zeros(4, dtype=torch.long)
    frames = torch.randint(-1, 4, (4, 1200 * 100 // 16000))

    def grads(model, *batch):
        torch.manual_seed(0)  # the same negatives for both models
        model.zero_grad()
        model(x, groups, *batch)[0].backward()
        return {k: p.grad for k, p in model.named_parameters()}

    with_probe, without = grads(probed, torch.full((4,), 1200), frames), grads(plain)
    assert set(with_probe) - set(without) == {"online_frames.to_logits.weight", "online_frames.to_logits.bias"}
    assert with_probe["online_frames.to_logits.weight"].abs().sum() > 0
    for name, g in without.items():
        torch.testing.assert_close(with_probe[name], g, rtol=0, atol=0, msg=name)
    assert 0 <= probed(x, groups, torch.full((4,), 1200), frames)[1]["online_phone"] <= 1
    assert probed.chance_loss(4, 30) == pytest.approx(plain.chance_loss(4, 30) + math.log(4))


def test_windows_carry_the_labels_of_their_own_frames(tmp_path):
    manifest = corpus(tmp_path)
    labels = read_phones(manifest.parent / "phones.txt")
    ds = WindowDataset(manifest, ["train"], window=4000, sample_rate=16000, frames=labels)
    for i in range(len(ds)):
        rng = np.random.default_rng([ds.seed, ds.epoch, i, 0])
        start = int(rng.integers(0, ds.lengths[i] - 4000 + 1))  # the dataset's own draw
        x, group, length, got = ds[i]
        assert length == 4000 and got.shape == (25,)
        expected = labels[ds.ids[i]][int(np.floor(start / 160 + 0.5)):][:25]
        assert got[:len(expected)].tolist() == expected.tolist()
        assert (got[len(expected):] == -1).all()


def test_short_clips_unlabelled_utterances_and_other_rates(tmp_path):
    manifest = corpus(tmp_path, seconds=0.2, rate=8000)  # 1600 samples a clip at 8 kHz: 20 labels
    labels = read_phones(manifest.parent / "phones.txt")
    first = next(iter(labels))
    labels.pop(first)
    ds = WindowDataset(manifest, ["train"], window=4000, sample_rate=8000, min_clip=1000, frames=labels)
    for i in range(len(ds)):
        x, _, length, got = ds[i]
        assert got.shape == (50,)  # 0.5 s of 10 ms frames
        assert (got[length * 100 // 8000:] == -1).all()  # the padding has no label
        if ds.ids[i] == first:
            assert (got == -1).all()
        else:
            n = min(len(labels[ds.ids[i]]), length * 100 // 8000)
            assert got[:n].tolist() == labels[ds.ids[i]][:n].tolist()


def test_the_class_count_comes_from_the_labels_and_bad_settings_are_refused(tmp_path):
    manifest = corpus(tmp_path)
    cfg = complete_config(load_config(None, speech(manifest, "objective.online_phones=true")))
    check_config(cfg)
    found = max(int(v.max()) for v in read_phones(manifest.parent / "phones.txt").values()) + 1
    assert cfg.objective.phone_classes == found and cfg.data.phones == str(manifest.parent / "phones.txt")
    train, val = audio_datasets(cfg.data, 0)
    assert len(train[0]) == len(val[0]) == 4  # (x, speaker, length, labels)
    cfg = complete_config(load_config(None, speech(manifest, f"data.phones={manifest.parent / 'phones.txt'}")))
    check_config(cfg)  # without the probe the labels are not read: plain (x, speaker) windows
    assert cfg.data.phones == "" and len(audio_datasets(cfg.data, 0)[0][0]) == 2
    with pytest.raises(ConfigError, match=f"objective.phone_classes=2 but .* has phone index {found - 1}"):
        complete_config(load_config(None, speech(manifest, "objective.online_phones=true",
                                                 "objective.phone_classes=2")))
    with pytest.raises(ConfigError, match="'objective.predictor' applies only to objective.name=cpc"):
        load_config(None, ["objective.name=simclr", *speech(manifest, "objective.online_phones=true")])
    with pytest.raises(ConfigError, match="data.kind=manifest"):
        complete_config(load_config(None, [*TINY, "objective.online_phones=true", "data.window=2048"]))
    with pytest.raises(ConfigError, match="nowhere.txt does not exist"):
        complete_config(load_config(None, speech(manifest, "objective.online_phones=true", "data.phones=nowhere.txt")))
    other = tmp_path / "other.txt"
    write_phones(other, {"someone_else": np.array([0, 1])})
    with pytest.raises(ConfigError, match="no train utterance .* has labels"):
        complete_config(load_config(None, speech(manifest, "objective.online_phones=true", f"data.phones={other}")))
    with pytest.raises(ConfigError, match="objective.phone_classes"):
        build_model(load_config(None, [*TINY, "objective.online_phones=true"]))  # not counted yet


def test_a_cli_run_logs_and_plots_both_probes_and_its_checkpoint_loads(tmp_path, capsys):
    manifest = corpus(tmp_path, speakers=4, heldout=0, utts=6, seconds=0.6)
    out = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", *speech(manifest, "objective.online_probe=true", "objective.online_phones=true",
                                                   "data.batch_size=4", "optim.lr=2e-3", "train.max_steps=6",
                                                   "train.log_every=3", "train.val_every=3",
                                                   f"train.out_dir={out}"))
    assert code == 0, err
    with open(out / "metrics.csv", newline="") as f:
        logged = list(csv.DictReader(f))
    for split in ("train", "val"):
        for metric in ("online_phone", "online_speaker"):
            values = [float(r[metric]) for r in logged if r["split"] == split]
            assert len(values) == 2 and all(0 <= v <= 1 for v in values)
    assert (out / "curves.png").stat().st_size > 0
    saved = yaml.safe_load((out / "config.yaml").read_text())["objective"]
    model = load_model(out / "checkpoints" / "last.ckpt")
    assert model.online_frames.to_logits.weight.shape == (saved["phone_classes"], 16)


def test_the_probes_never_change_what_cpc_learns(tmp_path, capsys):
    """Gradient clipping is where a probe could still reach CPC (a shared norm would shrink CPC's step): the
    probes' gradients are clipped apart, so with clipping active every CPC weight trains exactly as without."""
    manifest = corpus(tmp_path, speakers=4, heldout=0, utts=6, seconds=0.6)
    weights = {}
    for name, probes in (("plain", []), ("probed", ["objective.online_probe=true", "objective.online_phones=true"])):
        out = tmp_path / name
        code, _, err = cli(capsys, "pretrain", *speech(manifest, *probes, "data.batch_size=4", "optim.lr=2e-3",
                                                       "optim.grad_clip=1e-3", "train.deterministic=true",
                                                       "train.max_steps=3", f"train.out_dir={out}"))
        assert code == 0, err
        weights[name] = load_model(out / "checkpoints" / "last.ckpt").state_dict()
    assert set(weights["probed"]) - set(weights["plain"]) == {f"online{kind}.to_logits.{p}" for kind in ("", "_frames")
                                                              for p in ("weight", "bias")}
    for key, value in weights["plain"].items():
        torch.testing.assert_close(weights["probed"][key], value, rtol=0, atol=0, msg=key)
