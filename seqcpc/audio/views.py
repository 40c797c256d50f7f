"""Random views of raw audio windows for SimCLR, MoCo v2 and SDCLR, batched in torch.

Shapes: B batch, L input samples (the window), n view samples (`length`), F = n // 2 + 1 rFFT bins.
In training mode each window gets its own draws: a speed change (linear-interpolation resampling by a factor
in `speed`; a view of n samples reads about n * factor input samples, and the pitch moves with it), a crop at a
random offset (two views of one window cover different, overlapping stretches), a gain in +-gain_db dB, a
spectral tilt (a gain going linearly in dB from -a to +a across frequency, a uniform in +-eq_db) and white
Gaussian noise at an SNR in snr_db relative to the view's own power (silent views stay silent). In eval mode a
view is the centre crop of n samples. The objectives call the module twice for two views of a batch.
"""
import math

import torch
from einops import rearrange
from torch import nn

from seqcpc.errors import ConfigError
from seqcpc.core.draws import check_pair, uniform


class AudioViews(nn.Module):
    def __init__(self, length: int, gain_db: float = 6.0, snr_db=(10.0, 30.0), noise_prob: float = 0.8,
                 speed=(0.9, 1.1), speed_prob: float = 0.5, eq_prob: float = 0.5, eq_db: float = 6.0):
        super().__init__()
        if length < 1:
            raise ConfigError(f"views: length={length} must be >= 1 sample")
        self.length, self.gain_db, self.eq_db = length, gain_db, eq_db
        self.snr_db = check_pair("snr_db", snr_db, low=-math.inf)
        self.speed = check_pair("speed", speed)
        self.noise_prob, self.speed_prob, self.eq_prob = noise_prob, speed_prob, eq_prob

    def min_input(self) -> int:
        """The shortest input (in samples) that a training view can be read from: length * the top speed."""
        top = max(1.0, self.speed[1]) if self.speed_prob > 0 else 1.0
        return math.ceil(self.length * top - 1e-9)  # - 1e-9: 1.1 * 100 is 110.00000000000001 in floats

    def check_input(self, L: int) -> None:
        need = self.min_input() if self.training else self.length
        if L < need:
            raise ConfigError(f"audio views of {self.length} samples at speed factors up to {self.speed[1]} "
                              f"read {need} samples, but the windows have {L}: data.window must be at least "
                              f"{need} (or shorten the views' length, or lower their top speed)")

    def speed_and_crop(self, x):
        """(B, L) -> (B, n): view sample i reads the input at offset + factor * i, linearly interpolated."""
        B, L = x.shape
        on = torch.rand(B, device=x.device) < self.speed_prob
        factor = torch.where(on, uniform(*self.speed, B, x.device), 1.0)  # (B,)
        span = factor * (self.length - 1)  # input samples between the first and last sample read
        room = (L - 1 - span).floor().clamp_min(0) + 1  # the number of integer offsets that fit
        offset = (torch.rand(B, device=x.device) * room).floor()  # (B,); integer, so factor 1 copies samples
        pos = offset[:, None] + factor[:, None] * torch.arange(self.length, device=x.device)  # (B, n)
        left = pos.floor().long().clamp(max=L - 1)
        right = (left + 1).clamp(max=L - 1)
        frac = (pos - left).to(x.dtype)
        return x.gather(1, left) * (1 - frac) + x.gather(1, right) * frac

    def tilt(self, x):
        """(B, n) -> (B, n): with probability eq_prob, the spectrum times a gain linear in dB over frequency."""
        B, n = x.shape
        on = torch.rand(B, device=x.device) < self.eq_prob
        slope = torch.where(on, uniform(-self.eq_db, self.eq_db, B, x.device), 0.0)  # dB at the top bin
        ramp = torch.linspace(-1, 1, n // 2 + 1, device=x.device)  # (F,)
        gain = 10 ** (slope[:, None] * ramp / 20)  # (B, F)
        return torch.fft.irfft(torch.fft.rfft(x.float(), dim=-1) * gain, n=n, dim=-1).to(x.dtype)

    def add_noise(self, x):
        """(B, n) -> (B, n): with probability noise_prob, white noise at an SNR uniform in snr_db."""
        B = len(x)
        on = torch.rand(B, device=x.device) < self.noise_prob
        snr = uniform(*self.snr_db, B, x.device)
        power = x.float().pow(2).mean(-1)  # (B,); 0 for a silent view, which then gets no noise
        std = torch.where(on, (power / 10 ** (snr / 10)).sqrt(), 0.0).to(x.dtype)
        return x + std[:, None] * torch.randn_like(x)

    def forward(self, x):
        """(B, 1, L) or (B, L) -> one view (B, 1, n): random in training mode, the centre crop in eval mode."""
        if x.dim() == 3:
            x = rearrange(x, "b 1 l -> b l")
        B, L = x.shape
        self.check_input(L)
        if not self.training:
            start = (L - self.length) // 2
            return rearrange(x[:, start: start + self.length], "b n -> b 1 n")
        x = self.speed_and_crop(x)
        x = x * 10 ** (uniform(-self.gain_db, self.gain_db, B, x.device) / 20).to(x.dtype)[:, None]
        if self.eq_prob > 0 and self.eq_db > 0:
            x = self.tilt(x)
        if self.noise_prob > 0:
            x = self.add_noise(x)
        return rearrange(x, "b n -> b 1 n")


def audio_views_from_config(cfg, window: int = 0) -> AudioViews:
    """An AudioViews from an AudioViewsConfig (seqcpc/audio/config.py) for windows of `window` samples (0: of
    any length, checked when views are drawn); refuses a window too short for its views."""
    views = AudioViews(cfg.length or window * 3 // 4, gain_db=cfg.gain_db, snr_db=cfg.snr_db,
                       noise_prob=cfg.noise_prob, speed=cfg.speed, speed_prob=cfg.speed_prob, eq_prob=cfg.eq_prob,
                       eq_db=cfg.eq_db)
    if window:
        views.check_input(window)
    return views
