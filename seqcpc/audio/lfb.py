"""A log mel filterbank encoder (model.encoder.kind=lfb): the fixed front end that CPC_audio offers beside its conv
encoder (its LFBEnconder), here as a mel spectrogram.

Shapes: B batch, L input samples, M mel bins, T frames (L // hop), D latent dim.
Frame t is the `frame`-sample window starting `(frame - hop) // 2` samples before sample t * hop, so the frames
sit where a conv layer with kernel `frame`, stride `hop` and seqcpc's padding (k - s + 1) // 2 puts its outputs:
the conv helpers of seqcpc/audio/encoder.py (output_length, valid_length, receptive_field) describe it with
kernels [frame] and strides [hop]. With 400 and 160 (25 ms and 10 ms at 16 kHz) a window gives the conv
encoder's T. Each mel bin's log energy is normalised over the window's valid frames (per-window mean and
variance, CMVN), then a 1x1 projection maps the M bins to D.
"""
import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from seqcpc.audio.encoder import StridedFrames
from seqcpc.audio.torchaudio_compat import import_torchaudio
from seqcpc.core.masking import MaskedInstanceNorm1d

SAMPLE_RATE = 16000  # the mel scale's rate (check_audio_config refuses other data.sample_rate)


class LogMelEncoder(StridedFrames, nn.Module):
    def __init__(self, dim: int = 512, mels: int = 40, frame: int = 400, hop: int = 160):
        super().__init__()
        self.dim, self.frame, self.hop = dim, frame, hop
        self.kernels, self.strides = (frame,), (hop,)  # the conv layer with the same frames
        self.mel = import_torchaudio().transforms.MelSpectrogram(
            SAMPLE_RATE, n_fft=frame, hop_length=hop, n_mels=mels, center=False, power=2.0)
        self.norm = MaskedInstanceNorm1d(mels, affine=True)
        self.to_latent = nn.Conv1d(mels, dim, 1)

    def forward(self, x, lengths=None):  # (B, L) or (B, 1, L); lengths (B,) valid samples of padded inputs
        if x.dim() == 3:
            x = rearrange(x, "b 1 l -> b l")
        left = (self.frame - self.hop + 1) // 2
        padded = F.pad(x.float(), (left, left))  # the edges' frames read zeros, as a padded conv does
        with torch.autocast(x.device.type, enabled=False):  # the STFT and the log in fp32, also under bf16
            energy = torch.log(self.mel(padded) + 1e-6)  # (B, M, T)
        valid = None if lengths is None else self.valid_frames(lengths, x.shape[-1]).to(x.device)
        return rearrange(self.to_latent(self.norm(energy, valid)), "b d t -> b t d")  # (B, T, D)
