"""An upstream model for speech benchmarks: an audio CPC model behind the interface that SUPERB-style toolkits
load (a list of 1-D waves of different lengths in, every layer's frames out, with their downsample rate).

Shapes: B waves, L samples of the longest wave, T frames (L // downsample_rate), D latent dim, E context dim.

"hidden_states" holds the context layers c_1 .. c_L, each (B, T, E), and "last_hidden_state" is c_L (the
context's output). The encoder's z is under its own key "z", (B, T, D): z and c differ in width (512 and 256
in the paper's model), and a benchmark's weighted sum of layers needs one width, which only an invented
projection or zero padding would give z. Select "z" by its key where a benchmark takes one tensor by name.

Padding: the waves are zero-padded to the longest and wave i has len_i // downsample_rate frames; the frames
after those are padding (padding_mask True, set to 0). The encoder's convolutions look a few samples ahead,
so each conv's input is zeroed beyond the wave's own length at that depth, which is what its zero padding
gives the wave alone; the context is causal and the model runs in eval mode (batch norm uses its running
statistics), so a wave's frames do not depend on the batch it came in. An encoder with instance norm averages
over time, padding included: its waves are encoded one at a time.

Samples: float waves within about [-1, 1], as soundfile and torchaudio read audio. int16 and int32 PCM (what
scipy.io.wavfile reads) are scaled into [-1, 1) the same way, dividing by 2 ** 15 or 2 ** 31, so a file read as
integers gives the features of the same file read as floats; other integers (int64 from Python ints, offset
uint8) have no PCM width to scale by and are refused. NaN or infinite samples are refused, and so is a peak
above MAX_AMPLITUDE: a wave standardised to unit variance peaks at about 5 to 30, while int16 PCM stored as
floats peaks in the thousands for speech, and the features of either would be silently meaningless.
"""
from pathlib import Path

import torch
from einops import rearrange
from torch import nn
from torch.nn.utils.rnn import pad_sequence

from seqcpc.audio.encoder import ConvEncoder, StridedFrames
from seqcpc.core.masking import frame_mask
from seqcpc.core.model import CPC
from seqcpc.errors import ConfigError, DataError

# integer PCM -> [-1, 1), as audio libraries read it
PCM_SCALE = {torch.int16: 2.0 ** 15, torch.int32: 2.0 ** 31}
MAX_AMPLITUDE = 100.0  # 40 dB above full scale: integer samples stored as floats, not audio in [-1, 1]


def conv_length(lengths, conv: nn.Conv1d):
    """Output steps of `conv` for inputs of `lengths` (B,) steps."""
    (k,), (s,), (p,) = conv.kernel_size, conv.stride, conv.padding
    return ((lengths + 2 * p - k) // s + 1).clamp(min=0)


def samples(i: int, wave) -> torch.Tensor:
    """Wave i's float samples within about [-1, 1] (see the module's docstring), or a DataError naming it."""
    try:
        w = torch.as_tensor(wave)
    except (TypeError, ValueError, RuntimeError) as err:
        raise DataError(f"wave {i} is not an array of numbers ({err})") from err
    if w.dtype in PCM_SCALE:
        return w.float() / PCM_SCALE[w.dtype]
    if not w.is_floating_point():
        raise DataError(f"wave {i} holds {w.dtype} samples; give float samples in [-1, 1], or int16 / int32 PCM")
    bad = ~torch.isfinite(w)
    if bad.any():
        raise DataError(f"wave {i} holds {int(bad.sum())} NaN or infinite sample(s), the first at sample "
                        f"{int(bad.flatten().nonzero()[0])}")
    peak = float(w.abs().max()) if w.numel() else 0.0
    if peak > MAX_AMPLITUDE:
        raise DataError(f"wave {i} peaks at {peak:.4g}, far outside [-1, 1]: integer PCM stored as floats? divide "
                        f"16-bit samples by 32768, or pass the int16 array as it is")
    return w.float()


def check_audio_cpc(model, source) -> None:
    if not isinstance(model, CPC) or not isinstance(model.encoder, StridedFrames):
        raise ConfigError(f"{source} holds a {type(model).__name__}, not an audio CPC model (model.modality=audio "
                          f"objective.name=cpc): the upstream interface needs its audio encoder and context")
    if getattr(model.encoder, "in_channels", 1) != 1:  # the log mel encoder reads mono waves
        raise ConfigError(f"{source}: the model reads {model.encoder.in_channels} channels "
                          f"(model.encoder.in_channels) and the upstream interface takes mono 1-D waves")


class Upstream(nn.Module):
    """`Upstream(checkpoint_path)` or `Upstream(model, sample_rate=16000)`; `sample_rate` given with a checkpoint
    must be the one its model was trained at (data.sample_rate). The model stays in eval mode, even under
    .train(): gradients still flow, with batch norm on its running statistics."""

    def __init__(self, source, sample_rate: int = None, device="cpu"):
        super().__init__()
        if isinstance(source, (str, Path)):
            from seqcpc.train.checkpoint import load_config_and_model

            cfg, model = load_config_and_model(source, device)
            if cfg.model.modality != "audio":
                raise ConfigError(f"{source} holds a model.modality={cfg.model.modality} model; the upstream "
                                  f"interface takes an audio CPC checkpoint (model.modality=audio objective.name=cpc)")
            own_rate = cfg.data.sample_rate
        else:
            model, own_rate = source, sample_rate or 16000
        check_audio_cpc(model, source if isinstance(source, (str, Path)) else "the model given")
        self.model, self.sample_rate = model.eval(), own_rate
        self.check_rate(sample_rate)
        self.downsample_rate = model.encoder.downsample  # samples per frame: the product of the encoder's strides
        self.one_at_a_time = any(isinstance(m, nn.InstanceNorm1d) for m in model.encoder.modules())

    def check_rate(self, sample_rate) -> None:
        if sample_rate is not None and sample_rate != self.sample_rate:
            raise ConfigError(f"waves at {sample_rate} Hz given to a model trained at {self.sample_rate} Hz "
                              f"(data.sample_rate); resample them to {self.sample_rate} Hz first")

    def train(self, mode: bool = True):
        super().train(mode)
        self.model.eval()
        return self

    def get_downsample_rates(self, key: str = "hidden_states") -> int:
        """Samples per frame, the same for every key."""
        return self.downsample_rate

    def encode(self, waves, lengths):  # (B, L), (B,) samples
        """z (B, T', D) of zero-padded waves, each conv's input zeroed beyond its wave's length at that depth (the
        log mel encoder's frames read only zeros past a wave's end, and its norm counts the valid frames)."""
        if not isinstance(self.model.encoder, ConvEncoder):
            return self.model.encoder(waves, lengths)
        h = rearrange(waves, "b l -> b 1 l")
        for layer in self.model.encoder.net:
            if isinstance(layer, nn.Conv1d):
                h = h.masked_fill(~frame_mask(lengths, h.shape[-1])[:, None], 0)  # (B, C, steps)
                lengths = conv_length(lengths, layer)
            h = layer(h)
        return rearrange(h, "b d t -> b t d")  # (B, T', D)

    def padded(self, wavs) -> tuple:
        """(waves (B, L) zero-padded, lengths (B,) in samples), refusing what is not a list of 1-D waves."""
        if isinstance(wavs, torch.Tensor) or not len(wavs):
            raise DataError("the upstream takes a non-empty list of 1-D waves (each its own length), not "
                            f"{'a tensor' if isinstance(wavs, torch.Tensor) else 'an empty list'}")
        device = next(self.model.parameters()).device
        waves = [samples(i, w).to(device) for i, w in enumerate(wavs)]
        for i, w in enumerate(waves):
            if w.dim() != 1 or len(w) < self.downsample_rate:
                raise DataError(f"wave {i} has shape {tuple(w.shape)}; each wave must be 1-D (mono samples) and at "
                                f"least one frame long ({self.downsample_rate} samples)")
        return pad_sequence(waves, batch_first=True), torch.tensor([len(w) for w in waves], device=device)

    def forward(self, wavs, sample_rate: int = None) -> dict:
        """wavs: a list of B 1-D float waves at self.sample_rate -> {"last_hidden_state" (B, T, E), "hidden_states"
        [c_1 .. c_L] each (B, T, E), "z" (B, T, D), "lengths" (B,) frames of each wave, "padding_mask" (B, T) True
        at padding}."""
        self.check_rate(sample_rate)
        waves, lengths = self.padded(wavs)  # (B, L), (B,)
        if self.one_at_a_time:
            z = pad_sequence([self.encode(w[None, :n], n[None])[0] for w, n in zip(waves, lengths)], batch_first=True)
        else:
            z = self.encode(waves, lengths)  # (B, T', D)
        frames = (lengths // self.downsample_rate).clamp(max=z.shape[1])  # (B,)
        z = z[:, : int(frames.max())]  # (B, T, D)
        mask = ~frame_mask(frames, z.shape[1])  # (B, T)
        layers = [c.masked_fill(mask[..., None], 0) for c in self.model.context.layers(z)]  # each (B, T, E)
        return {"last_hidden_state": layers[-1], "hidden_states": layers, "z": z.masked_fill(mask[..., None], 0),
                "lengths": frames, "padding_mask": mask}
