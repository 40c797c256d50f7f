"""Clips shorter than the window (data.min_clip): zero-padded, with a valid length that keeps the padding out of
every statistic and every score, so the loss does not depend on what the padding holds."""
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import TINY_TASK, cli
from seqcpc.audio.encoder import ConvEncoder, shortest_clip, valid_length
from seqcpc.audio.io import write_flac
from seqcpc.audio.manifest import Utterance, write_manifest
from seqcpc.audio.windows import WindowDataset
from seqcpc.builders import build_model, check_config
from seqcpc.objectives.pruning import SelfDamage
from seqcpc.config import resolve
from seqcpc.errors import ConfigError

RATE, WINDOW = 16000, 8000
SECONDS = [0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.9, 1.5]  # five of eight clips are shorter than the 0.5 s window


def short_clip_corpus(root: Path, speakers: int = 3) -> Path:
    """Tone clips of SECONDS per speaker (train split) plus the same in the test split; returns the manifest."""
    rows, rng = [], np.random.default_rng(0)
    for s in range(speakers):
        for split in ("train", "test"):
            for i, secs in enumerate(SECONDS):
                n = int(secs * RATE)
                wave = 0.3 * np.sin(2 * np.pi * (200 + 60 * s + 15 * i) * np.arange(n) / RATE)
                uid = f"s{s}_{split}_{i}"
                write_flac(root / f"{uid}.flac", wave + 0.01 * rng.standard_normal(n), RATE)
                rows.append(Utterance(uid, f"{uid}.flac", f"s{s}", split, secs, RATE, 1, n))
    write_manifest(root / "manifest.tsv", rows)
    return root / "manifest.tsv"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return short_clip_corpus(tmp_path_factory.mktemp("short"))


def tiny_model(norm="batch", context="gru", negatives="batch"):
    return build_model(resolve({
        "model": {"encoder": {"dim": 16, "kernels": [10, 8, 4], "strides": [5, 4, 2], "norm": norm},
                  "context": {"kind": context, "dim": 16, "heads": 2}},
        "objective": {"predictor": {"steps": 3}, "loss": {"negatives": negatives, "num_negatives": 8}}}))


def padded_batch(length=1600, valid=(1600, 900, 500, 1200)):
    """x (B, 1, L) twice: zeros and loud noise after each clip's valid samples; lengths (B,); groups (B,)."""
    g = torch.Generator().manual_seed(0)
    lengths = torch.tensor(valid)
    x = torch.randn(len(valid), 1, length, generator=g)
    pad = (torch.arange(length) >= lengths[:, None])[:, None]  # (B, 1, L)
    noise = 5 * torch.randn(x.shape, generator=g)
    return x.masked_fill(pad, 0.0), torch.where(pad, noise, x), lengths, torch.tensor([0, 0, 1, 1])


def test_valid_frames_are_the_steps_the_padding_cannot_reach():
    enc = ConvEncoder(dim=4, kernels=[10, 8, 4], strides=[5, 4, 2], norm="none").double()
    x = torch.randn(1, 1000, dtype=torch.float64, requires_grad=True)
    z = enc(x)[0].sum(-1)  # (T,)
    reach = torch.stack([torch.autograd.grad(z[t], x, retain_graph=True)[0][0].nonzero().max() for t in range(len(z))])
    for n in (1000, 999, 640, 333, 106, 72, 50):
        expected = len(z) if n == 1000 else int((reach < n).sum())  # a full window keeps the conv's own edge
        assert int(enc.valid_frames(torch.tensor([n]), 1000)[0]) == expected, n
    assert valid_length([72], 1000, enc.kernels, enc.strides).item() == 1  # first step: 72 samples, left pad 33
    assert shortest_clip(4, 1000, enc.kernels, enc.strides) == 72 + 3 * 40


@pytest.mark.parametrize("norm,context,negatives", [
    ("batch", "gru", "batch"), ("batch", "lstm", "sequence"), ("batch", "transformer", "all"),
    ("layer", "gru", "group"), ("layer", "lstm", "batch"), ("instance", "gru", "batch"), ("none", "lstm", "all")])
def test_the_loss_and_its_gradients_do_not_depend_on_the_padding(norm, context, negatives):
    zeros, noise, lengths, groups = padded_batch()
    results = []
    for x in (zeros, noise):
        torch.manual_seed(0)
        model = tiny_model(norm, context, negatives).train()  # batch norm in training mode: batch statistics
        torch.manual_seed(1)
        loss, metrics = model(x, groups, lengths)
        loss.backward()
        grads = {n: p.grad for n, p in model.named_parameters()}
        results.append((loss, metrics, grads, {n: b.clone() for n, b in model.named_buffers()}))
    (loss0, m0, g0, b0), (loss1, m1, g1, b1) = results
    assert torch.isfinite(loss1) and loss0.item() == loss1.item()
    assert m0 == m1
    for name in g0:
        torch.testing.assert_close(g0[name], g1[name], rtol=0, atol=0, msg=name)
    for name in b0:  # batch norm's running statistics too
        torch.testing.assert_close(b0[name], b1[name], rtol=0, atol=0, msg=name)
    torch.manual_seed(1)
    assert model(noise, groups)[0].item() != loss1.item()  # without lengths the noise is scored: the test can fail


@pytest.mark.parametrize("extra", ["pruned_competitor", "online_probe"])
def test_the_pruned_competitor_and_the_online_probe_ignore_the_padding_too(extra):
    zeros, noise, lengths, groups = padded_batch()
    losses = []
    for x in (zeros, noise):
        torch.manual_seed(0)
        model = tiny_model()
        if extra == "pruned_competitor":
            model.damage = SelfDamage(model, 0.5)
            model.on_epoch_start(0)
        else:
            model.add_online_probe(16, 2, "speaker")
        torch.manual_seed(1)
        losses.append(model(x, groups, lengths)[0].item())
    assert losses[0] == losses[1]


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_lengths_that_fill_the_window_give_the_loss_without_lengths(norm):
    _, x, _, groups = padded_batch()
    full = torch.full((4,), x.shape[-1])
    torch.manual_seed(0)
    model = tiny_model(norm)
    out = []
    for lengths in (None, full):
        torch.manual_seed(1)
        out.append(model(x, groups, lengths)[0])
    if norm == "layer":  # no statistic over steps: bit for bit
        assert out[0].item() == out[1].item()
    else:  # batch norm's masked statistics sum in another order
        torch.testing.assert_close(out[0], out[1], rtol=1e-6, atol=1e-6)


def test_a_padded_dataset_reads_short_clips_whole_and_says_how_much_it_uses(corpus):
    plain = WindowDataset(corpus, ["train"], window=WINDOW, sample_rate=RATE)
    assert len(plain) == 3 * 3 and plain.skipped_short == 3 * 5 and len(plain[0]) == 2  # (x, group) as before
    assert plain.usage().startswith("using 9 of 24 clips (73% of the audio); 15 shorter than the window")
    ds = WindowDataset(corpus, ["train"], window=WINDOW, sample_rate=RATE, min_clip=1600)
    assert len(ds) == 3 * 7 and ds.skipped_short == 3
    assert ds.usage() == ("using 21 of 24 clips (99% of the audio); 3 shorter than data.min_clip (1600 samples), "
                          "0 unreadable; to keep short clips, zero-padded (objectives that leave padding out, such "
                          "as cpc), set data.min_clip=800 (keeps 3)")
    for i in range(len(ds)):
        x, group, length = ds[i]
        n = int(ds.lengths[i])
        assert x.shape == (1, WINDOW) and int(length) == min(n, WINDOW)
        if n < WINDOW:
            assert (x[0, n:] == 0).all() and x[0, :n].abs().max() > 0.1  # the whole clip, then zeros
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert [t.shape for t in batch] == [(4, 1, WINDOW), (4,), (4,)]
    with pytest.raises(ValueError, match="min_clip"):
        WindowDataset(corpus, ["train"], window=WINDOW, sample_rate=RATE, min_clip=WINDOW + 1)


def config(corpus, objective=None, **data):
    return resolve({"model": {"size": "synthetic_tiny"}, "objective": objective or TINY_TASK,
                    "data": {"kind": "manifest", "manifest": str(corpus), "window": WINDOW, "min_clip": 1600, **data}})


def test_the_config_checks_refuse_what_padding_cannot_serve(corpus):
    assert check_config(config(corpus)) == 200
    tiny = config(corpus)
    enc = tiny.model.encoder
    shortest = shortest_clip(tiny.objective.predictor.steps + 1, WINDOW, enc.kernels, enc.strides)
    assert check_config(config(corpus, min_clip=shortest)) == 200
    with pytest.raises(ConfigError, match=f"data.min_clip={shortest - 1} samples give 6 latent steps .* "
                                          f"data.min_clip >= {shortest}"):
        check_config(config(corpus, min_clip=shortest - 1))
    refusals = [({"min_clip": WINDOW + 1}, "longer than data.window"),
                ({"kind": "synthetic"}, "synthetic sequences"),
                ({"batching": "utterance"}, "the same padded clip")]
    for data, message in refusals:
        with pytest.raises(ConfigError, match=message):
            check_config(config(corpus, **data))
    for objective in ("simclr", "protonet", "supervised"):
        with pytest.raises(ConfigError, match=f"objective.name={objective} would learn from"):
            check_config(config(corpus, {"name": objective}))


def test_pretrain_on_short_clips_says_how_much_of_the_corpus_it_uses(corpus, tmp_path, capsys):
    code, out, err = cli(capsys, "pretrain", "model.size=synthetic_tiny", "data.kind=manifest",
                         f"data.manifest={corpus}", f"data.window={WINDOW}", "data.min_clip=1600", "data.batch_size=4",
                         "objective.loss.num_negatives=16", "train.max_steps=4", "train.log_every=2", "train.val_every=4",
                         f"train.out_dir={tmp_path / 'run'}")
    assert code == 0, err
    assert "training data: using 21 of 24 clips (99% of the audio); 3 shorter than data.min_clip" in out
    assert "validation data: using 21 of 24 clips" in out
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["step"] == 4 and math.isfinite(summary["val_loss"])


def test_the_usage_line_says_which_min_clip_keeps_the_short_clips_and_it_does(corpus, tmp_path, capsys):
    """By default most clips of a corpus of short recordings are left out ("15 shorter than the window"): the
    log names data.min_clip, with values that keep half and 90% of them, and a run with one keeps that many."""
    run = ["pretrain", "model.size=synthetic_tiny", "data.kind=manifest", f"data.manifest={corpus}",
           f"data.window={WINDOW}", "data.batch_size=4", "objective.loss.num_negatives=16", "train.max_steps=2",
           "train.log_every=2", "train.val_every=2"]
    code, out, err = cli(capsys, *run, f"train.out_dir={tmp_path / 'a'}")
    assert code == 0, err
    assert ("training data: using 9 of 24 clips (73% of the audio); 15 shorter than the window (8000 samples), "
            "0 unreadable; to keep short clips, zero-padded (objectives that leave padding out, such as cpc), set "
            "data.min_clip=3200 (keeps 9) or data.min_clip=800 (keeps 15)") in out
    code, out, err = cli(capsys, *run, "data.min_clip=3200", f"train.out_dir={tmp_path / 'b'}")
    assert code == 0, err
    assert "training data: using 18 of 24 clips" in out
