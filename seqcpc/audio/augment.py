"""CPC2's augmentation of the past (Kharitonov et al. 2020, "Data augmenting contrastive learning of speech
representations in the time domain", arXiv:2007.00991): the context reads the latents of an augmented copy of
each window, while the targets (positives and negatives) stay the latents of the clean window.

Shapes: B batch, L samples, F rFFT bins, N STFT frames, R impulse-response taps.
Every effect keeps the window's length and its timing (sample i of the copy is heard at sample i of the clean
window, so c[t] still predicts the clean z[t+k]), is drawn per window with its own probability, and runs batched
in torch on the window's device:
  pitch        a phase vocoder along frequency: output bin j takes the magnitude of bin j / f and advances its
               phase at f times that bin's instantaneous frequency (f = 2^(cents / 1200)); one STFT and iSTFT
  reverb       convolution (by FFT) with a synthetic room impulse response: a direct path then exponentially
               decaying Gaussian noise whose RT60 (60 dB decay) is drawn in `rt60`, level kept
  band_reject  the window's spectrum zeroed over a band of width drawn in `band_hz`, centred anywhere
  time_drop    a stretch of up to `time_drop_ms` set to silence
  noise        white Gaussian noise at an SNR drawn in `snr_db` (relative to the window's valid samples)
Padded clips (`lengths`) keep zero padding: the copy is masked to each clip's valid samples at the end.
Why not a library: torch-audiomentations' PitchShift loops over the examples (with torch-pitch-shift and its
resampling), its impulse responses come from files, and it imports torchaudio directly, whose C++ extension does
not load beside CPU torch (seqcpc/audio/torchaudio_compat.py); pyroomacoustics simulates rooms on the CPU in
numpy, one at a time. Each effect here is a few batched tensor ops.
"""
import math
from functools import partial

import torch
from torch import nn

from seqcpc.core.draws import uniform
from seqcpc.core.masking import frame_mask

N_FFT, HOP = 512, 128  # the pitch shift's STFT: 32 ms frames every 8 ms at 16 kHz


def wrapped(angle):
    """Angles brought into [-pi, pi)."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def pitch_shift(x, factor):
    """(B, L) -> (B, L) with every frequency times factor (B,), timing and length kept."""
    L = x.shape[-1]
    window = torch.hann_window(N_FFT, device=x.device)
    X = torch.stft(x, N_FFT, HOP, window=window, return_complex=True)  # (B, F, N)
    F, N = X.shape[1:]
    bins = torch.arange(F, device=x.device)
    expected = (2 * math.pi * HOP / N_FFT * bins)[:, None]  # (F, 1) the phase a bin's centre frequency turns a hop
    phase = X.angle()
    advance = expected + wrapped(torch.diff(phase, dim=-1) - expected)  # (B, F, N - 1) each bin's true turn a hop
    source = (bins / factor[:, None]).round().long()  # (B, F) the bin each output bin reads
    inside = (source < F)[..., None]  # (B, F, 1): bins above the top of a lowered spectrum stay silent
    source = source.clamp(max=F - 1)[..., None].expand(-1, -1, N)  # (B, F, N)
    magnitude = X.abs().gather(1, source) * inside
    turns = advance.gather(1, source[..., 1:]) * factor[:, None, None]  # (B, F, N - 1): f times as fast
    shifted = phase.gather(1, source[..., :1]) + torch.nn.functional.pad(torch.cumsum(turns, -1), (1, 0))
    return torch.istft(torch.polar(magnitude, shifted), N_FFT, HOP, window=window, length=L)


def room_response(rt60, taps: int, sample_rate: int):
    """(B,) RT60s in seconds -> (B, R) impulse responses: 1 then Gaussian noise decaying by 60 dB in rt60."""
    t = torch.arange(taps, device=rt60.device) / sample_rate  # (R,)
    decay = torch.exp(-3 * math.log(10) * t / rt60[:, None])  # amplitude: 10^-3 (-60 dB) at t = rt60
    response = torch.randn(len(rt60), taps, device=rt60.device) * decay * 0.1
    response[:, 0] = 1.0  # the direct path: what the microphone hears first, at lag 0
    return response


def reverberate(x, rt60, sample_rate: int):
    """(B, L) -> (B, L): convolved with a synthetic room response, each window's level kept."""
    L = x.shape[-1]
    response = room_response(rt60, int(rt60.max() * sample_rate) + 1, sample_rate)  # (B, R)
    n = L + response.shape[1] - 1
    wet = torch.fft.irfft(torch.fft.rfft(x, n) * torch.fft.rfft(response, n), n)[:, :L]  # causal: lag >= 0
    return wet * (x.pow(2).sum(-1, keepdim=True) / wet.pow(2).sum(-1, keepdim=True).clamp_min(1e-12)).sqrt()


def band_reject(x, low_hz, width_hz, sample_rate: int):
    """(B, L) -> (B, L) with the band [low_hz, low_hz + width_hz] (B,) of its spectrum zeroed."""
    L = x.shape[-1]
    hz = torch.fft.rfftfreq(L, 1 / sample_rate, device=x.device)  # (F,)
    kept = (hz < low_hz[:, None]) | (hz > (low_hz + width_hz)[:, None])  # (B, F)
    return torch.fft.irfft(torch.fft.rfft(x) * kept, L)


class PastAugment(nn.Module):
    """x (B, 1, L) -> an augmented copy (B, 1, L), each effect drawn per window (CPC calls it in training only).
    Holds no weights or buffers, so checkpoints are the same with and without it."""

    def __init__(self, cfg):
        super().__init__()
        self.cfg = cfg

    def forward(self, x, lengths=None):
        with torch.autocast(x.device.type, enabled=False):  # the FFTs in fp32, also under bf16
            return self.augmented(x[:, 0].float(), lengths).to(x.dtype)[:, None]  # (B, 1, L); padding stays zero

    def augmented(self, y, lengths):  # (B, L), lengths (B,) or None
        cfg, (B, L), device, rate = self.cfg, y.shape, y.device, self.cfg.sample_rate
        valid = torch.full((B,), L, device=device) if lengths is None else lengths.to(device)
        if cfg.pitch_prob > 0:
            cents = uniform(-cfg.pitch_cents, cfg.pitch_cents, B, device)
            y = applied(y, cfg.pitch_prob, pitch_shift, 2 ** (cents / 1200))
        if cfg.reverb_prob > 0:
            y = applied(y, cfg.reverb_prob, partial(reverberate, sample_rate=rate), uniform(*cfg.rt60, B, device))
        if cfg.band_reject_prob > 0:
            width = uniform(*cfg.band_hz, B, device)
            low = torch.rand(B, device=device) * (rate / 2 - width).clamp_min(0)
            y = applied(y, cfg.band_reject_prob, partial(band_reject, sample_rate=rate), low, width)
        if cfg.time_drop_prob > 0:
            width = (torch.rand(B, device=device) * cfg.time_drop_ms * rate / 1000).long()  # (B,) samples
            start = (torch.rand(B, device=device) * (valid - width).clamp_min(0)).long()
            y = applied(y, cfg.time_drop_prob, silenced, start, width)
        if cfg.noise_prob > 0:
            power = y.pow(2).sum(-1) / valid.clamp_min(1)  # (B,) over the valid samples; silence gets no noise
            std = (power / 10 ** (uniform(*cfg.snr_db, B, device) / 10)).sqrt()
            y = applied(y, cfg.noise_prob, noisy, std)
        return y * frame_mask(valid, L)  # the clip's own samples only


def applied(y, prob: float, effect, *params):
    """y (B, L) with `effect(y[i], *params[i])` on the windows i drawn with probability `prob`; each param (B,)."""
    on = (torch.rand(len(y), device=y.device) < prob).nonzero().squeeze(1)  # (B',)
    if not len(on):
        return y
    return y.index_copy(0, on, effect(y[on], *(p[on] for p in params)))


def silenced(x, start, width):
    """(B, L) -> (B, L) with samples start .. start + width (B,) set to 0."""
    at = torch.arange(x.shape[-1], device=x.device)
    return x.masked_fill((at >= start[:, None]) & (at < (start + width)[:, None]), 0.0)


def noisy(x, std):
    """(B, L) -> (B, L) plus white Gaussian noise of standard deviation std (B,)."""
    return x + std[:, None] * torch.randn_like(x)


def active(cfg) -> bool:
    """Whether any effect of an AugmentPastConfig can be drawn."""
    return any(p > 0 for p in (cfg.pitch_prob, cfg.reverb_prob, cfg.band_reject_prob, cfg.time_drop_prob,
                               cfg.noise_prob))
