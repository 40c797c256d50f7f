import math

import pytest
import torch

from seqcpc.audio.config import AudioViewsConfig
from seqcpc.audio.views import AudioViews, audio_views_from_config

PLAIN = dict(gain_db=0.0, noise_prob=0.0, speed_prob=0.0, eq_prob=0.0)


def test_views_have_the_view_length_and_eval_mode_is_the_centre_crop():
    x = torch.randn(4, 1, 100)
    views = AudioViews(60)
    assert views(x).shape == (4, 1, 60)
    assert views(x[:, 0]).shape == (4, 1, 60)
    assert torch.equal(views.eval()(x), x[..., 20:80])


def test_each_window_and_each_call_gets_its_own_draw():
    x = torch.randn(1, 1, 400).expand(6, -1, -1)
    views = AudioViews(300)
    first, second = views(x), views(x)
    assert not torch.allclose(first, second)
    assert all(not torch.allclose(first[i], first[j]) for i in range(6) for j in range(i))


def test_a_plain_view_is_a_crop_of_the_window_at_a_random_offset():
    x = torch.randn(8, 1, 50)
    out = AudioViews(20, **PLAIN)(x)
    crops = x[:, 0].unfold(-1, 20, 1)  # (B, 31, 20): every crop of the window
    offsets = [int((crops[b] == out[b, 0]).all(-1).nonzero()[0]) for b in range(8)]
    assert len(set(offsets)) > 1


def test_noise_is_added_at_the_drawn_snr():
    x = torch.randn(4, 1, 20_000) * torch.tensor([0.01, 0.1, 1.0, 10.0])[:, None, None]
    torch.manual_seed(0)
    out = AudioViews(20_000, **{**PLAIN, "noise_prob": 1.0, "snr_db": (12.0, 12.0)})(x)
    snr = 10 * torch.log10(x.pow(2).mean(-1) / (out - x).pow(2).mean(-1))
    torch.testing.assert_close(snr, torch.full_like(snr, 12.0), atol=1.0, rtol=0)


def test_gain_stays_within_its_range_in_db():
    x = torch.randn(64, 1, 200)
    out = AudioViews(200, **{**PLAIN, "gain_db": 6.0})(x)
    gain = 20 * torch.log10(out.norm(dim=-1) / x.norm(dim=-1))
    assert gain.abs().max() <= 6.0 + 1e-4 and gain.abs().max() > 3.0
    assert gain.std() > 1.0  # drawn per window


def test_speed_factor_two_halves_the_period():
    t = torch.arange(2000.0)
    sine = torch.sin(2 * math.pi * t / 100)[None, None]  # period 100 samples
    crossings = lambda y: int(((y[1:] > 0) != (y[:-1] > 0)).sum())  # noqa: E731; two a period
    assert abs(crossings(AudioViews(1000, **PLAIN)(sine)[0, 0]) - 20) <= 1  # period 100
    out = AudioViews(1000, **{**PLAIN, "speed_prob": 1.0, "speed": (2.0, 2.0)})(sine)[0, 0]
    assert abs(crossings(out) - 40) <= 1  # period 50


def test_tilt_changes_the_spectrum_but_keeps_the_length():
    x = torch.randn(16, 1, 256)
    out = AudioViews(256, **{**PLAIN, "eq_prob": 1.0, "eq_db": 6.0})(x)
    assert out.shape == x.shape
    low, high = (torch.fft.rfft(y[:, 0]).abs().pow(2) for y in (x, out))
    ratio = (high / low)[:, 1:-1]  # the gain squared of each bin
    tilt_db = 10 * torch.log10(ratio[:, -1] / ratio[:, 0])  # from the first to the last bin
    assert tilt_db.abs().max() <= 12.0 + 0.1 and tilt_db.abs().max() > 3.0


def test_silent_windows_give_finite_views():
    out = AudioViews(100, noise_prob=1.0, eq_prob=1.0, speed_prob=1.0)(torch.zeros(3, 1, 120))
    assert torch.isfinite(out).all() and (out == 0).all()


def test_short_windows_are_refused_naming_data_window():
    views = AudioViews(100, speed=(0.9, 1.1))
    assert views.min_input() == 110
    views(torch.randn(2, 1, 110))
    with pytest.raises(ValueError, match="data.window must be at least 110"):
        views(torch.randn(2, 1, 109))
    with pytest.raises(ValueError, match="data.window"):
        audio_views_from_config(AudioViewsConfig(length=100), window=105)


def test_config_length_zero_is_three_quarters_of_the_window():
    views = audio_views_from_config(AudioViewsConfig(), window=20480)
    assert views.length == 15360 and views.min_input() <= 20480
