"""CPC2's augmentation of the past (seqcpc/audio/augment.py): the context reads an augmented copy, the targets stay
the clean window's; each effect keeps length and timing; padded clips keep their padding zero."""
import math

import pytest
import torch

from seqcpc.audio.augment import band_reject, pitch_shift, reverberate
from seqcpc.builders import build_model, check_config, complete_config
from seqcpc.config import resolve
from seqcpc.errors import ConfigError

RATE = 16000
ALL = {"pitch_prob": 1.0, "reverb_prob": 1.0, "band_reject_prob": 1.0, "time_drop_prob": 1.0, "noise_prob": 1.0}


def tiny_cpc(augment: dict, **data):
    cfg = complete_config(resolve({"model": {"size": "synthetic_tiny"}, "data": {"window": 2048, **data},
                                   "objective": {"predictor": {"steps": 6}, "loss": {"num_negatives": 32},
                                                 "augment_past": augment}}))
    check_config(cfg)
    return build_model(cfg).train()


def tone(hz: float, length: int = 8192, start: int = 0):
    t = torch.arange(length) / RATE
    return torch.sin(2 * math.pi * hz * t) * (torch.arange(length) >= start)


def peak_hz(x):
    return torch.fft.rfftfreq(x.shape[-1], 1 / RATE)[torch.fft.rfft(x).abs().argmax(-1)]


def test_the_context_reads_the_augmented_copy_and_the_targets_the_clean_window():
    model = tiny_cpc(ALL)
    x = torch.randn(8, 1, 2048)
    torch.manual_seed(3)
    (_, targets), = model.predict(x)
    torch.manual_seed(3)
    z, c = model.latents(x)
    assert torch.equal(targets, model.encoder(x)) and torch.equal(z, targets)  # exactly the clean latents
    torch.manual_seed(3)
    copy = model.augment_past(x)
    assert not torch.allclose(copy, x)
    torch.testing.assert_close(c, model.context(model.encoder(copy)))
    assert not torch.allclose(c, model.context(z))


def test_windows_that_draw_no_effect_keep_their_clean_context():
    model = tiny_cpc({"noise_prob": 0.5})
    x = torch.randn(16, 1, 2048)
    torch.manual_seed(0)
    copy = model.augment_past(x)
    torch.manual_seed(0)
    z, c = model.latents(x)
    changed = (copy != x).flatten(1).any(1)
    assert 0 < changed.sum() < 16  # some windows drew the noise, some did not
    torch.testing.assert_close(c[~changed], model.context(z)[~changed])
    torch.testing.assert_close(c[changed], model.context(model.encoder(copy))[changed])


def test_no_augmentation_in_eval_mode_or_by_default():
    model = tiny_cpc(ALL).eval()
    x = torch.randn(4, 1, 2048)
    z, c = model.latents(x)
    assert torch.equal(c, model.context(z))
    assert tiny_cpc({}).augment_past is None


def test_the_copy_is_determined_by_the_seed():
    model = tiny_cpc(ALL)
    x = torch.randn(4, 1, 2048)
    copies = []
    for seed in (5, 5, 6):
        torch.manual_seed(seed)
        copies.append(model.augment_past(x))
    assert torch.equal(copies[0], copies[1]) and not torch.allclose(copies[0], copies[2])


def test_padded_clips_keep_their_length_and_zero_padding():
    model = tiny_cpc(ALL)
    lengths = torch.tensor([2048, 1500, 900])
    x = torch.randn(3, 1, 2048) * (torch.arange(2048) < lengths[:, None])[:, None]
    copy = model.augment_past(x, lengths)
    assert copy.shape == x.shape and copy.dtype == x.dtype
    assert (copy[1, :, 1500:] == 0).all() and (copy[2, :, 900:] == 0).all()
    assert (copy[1, :, :1500] != 0).any()
    loss, _ = model(x, None, lengths)
    assert torch.isfinite(loss)


@pytest.mark.parametrize("cents", [300.0, -300.0])
def test_pitch_shift_moves_every_frequency_and_keeps_the_timing(cents):
    factor = 2 ** (cents / 1200)
    x = torch.stack([tone(440.0, start=4096), tone(1000.0, start=4096)])
    y = pitch_shift(x, torch.full((2,), factor))
    assert y.shape == x.shape
    assert peak_hz(y[:, 5000:]).tolist() == pytest.approx([440 * factor, 1000 * factor], abs=3)
    assert y[:, :3500].abs().max() < 0.05 * y[:, 5000:].abs().max()  # silent before the onset, as the input


def test_reverb_is_causal_and_keeps_the_level():
    x = torch.zeros(2, 8000)
    x[:, 4000] = 1.0  # a click
    y = reverberate(x, torch.tensor([0.2, 0.5]), RATE)
    assert y[:, :4000].abs().max() < 1e-6  # nothing before the click
    assert (y[:, 4001:].pow(2).sum(-1) > 0.01).all()  # and a tail after it
    torch.testing.assert_close(y.pow(2).sum(-1), x.pow(2).sum(-1))


def test_band_reject_removes_the_band_only():
    x = tone(1000.0) + tone(3000.0)
    y = band_reject(x[None], torch.tensor([900.0]), torch.tensor([200.0]), RATE)[0]
    assert peak_hz(y) == pytest.approx(3000, abs=3)
    spectrum = torch.fft.rfft(y).abs()
    assert spectrum[512] < 1e-3 * spectrum[1536]  # the 1000 Hz and 3000 Hz bins of 8192 samples


def test_reversed_ranges_are_refused():
    with pytest.raises(ConfigError, match=r"objective.augment_past.rt60=\[0.5, 0.1\] must be two numbers"):
        tiny_cpc({"reverb_prob": 1.0, "rt60": [0.5, 0.1]})


def test_images_have_no_augmentation_of_the_past():
    with pytest.raises(ConfigError, match="augment_past"):
        resolve({"model": {"modality": "image"}, "objective": {"augment_past": {"pitch_prob": 1.0}}})
