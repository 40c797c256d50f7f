import pytest
import torch
from torch import nn

from conftest import ROOT
from seqcpc.builders import build_model, cpc_audio_paper
from seqcpc.audio.encoder import NORMS, ConvEncoder
from seqcpc.audio.lfb import LogMelEncoder
from seqcpc.audio.parts import check_audio_config
from seqcpc.config import load_config
from seqcpc.errors import ConfigError
from seqcpc.objectives import registry as objectives


def test_paper_encoder_downsamples_160x_to_one_latent_per_10ms():
    enc = cpc_audio_paper().encoder
    assert enc.downsample == 160  # 16 kHz / 160 = 100 latents per second
    z = enc(torch.randn(2, 20480))
    assert z.shape == (2, 128, 512)  # (B, T, D)


@pytest.mark.parametrize("norm", NORMS)
def test_every_norm_gives_the_predicted_shape(norm):
    enc = ConvEncoder(in_channels=2, dim=16, kernels=[10, 8, 4], strides=[5, 4, 2], norm=norm)
    x = torch.randn(3, 2, 1000)  # (B, C, L)
    z = enc(x)
    assert z.shape == (3, enc.output_length(1000), 16)
    assert torch.isfinite(z).all()


def test_receptive_field_matches_the_span_that_changes_an_output():
    enc = ConvEncoder(dim=4, kernels=[10, 8, 4], strides=[5, 4, 2], norm="none").double()
    x = torch.randn(1, 2000, dtype=torch.float64, requires_grad=True)
    t = 20
    enc(x)[0, t].sum().backward()
    touched = x.grad[0].nonzero().squeeze(1)
    assert touched.max() - touched.min() + 1 <= enc.receptive_field
    assert touched.max() - touched.min() + 1 > enc.receptive_field - enc.downsample


def test_layer_norm_does_not_mix_the_batch():
    enc = ConvEncoder(dim=8, kernels=[10, 8], strides=[5, 4], norm="layer")
    x = torch.randn(4, 800)
    alone = enc(x[:1])
    together = enc(x)[:1]
    torch.testing.assert_close(alone, together)


def test_mismatched_kernels_and_strides_are_refused():
    with pytest.raises(ValueError, match="differ in length"):
        ConvEncoder(kernels=[10, 8], strides=[5])


NO_ONLINE = ["objective.online_probe=false", "objective.online_phones=false"]  # their heads count the corpus's labels


class Unnormalised(nn.Module):
    def forward(self, x, valid=None):
        return x


def test_log_mel_encoder_gives_the_conv_encoders_steps_for_the_recipe_window():
    cfg = load_config(ROOT / "recipes/speech/cpu.yaml", ["model.encoder.kind=lfb", *NO_ONLINE])
    lfb, conv = build_model(cfg).encoder, cpc_audio_paper().encoder
    assert isinstance(lfb, LogMelEncoder) and lfb.downsample == conv.downsample == 160
    z = lfb(torch.randn(2, 1, cfg.data.window))
    assert z.shape == (2, conv.output_length(cfg.data.window), cfg.model.encoder.dim) == (2, 128, 256)
    assert lfb.output_length(cfg.data.window) == 128 and torch.isfinite(z).all()


@pytest.mark.parametrize("length", [2048, 4000, 1000])
def test_log_mel_frames_follow_the_conv_helpers(length):
    enc = LogMelEncoder(dim=8)
    assert enc(torch.randn(3, length)).shape == (3, enc.output_length(length), 8) == (3, length // 160, 8)


def test_log_mel_frame_reads_its_window_only():
    """Frame t depends on the samples of its own 400-sample window: the conv helpers' receptive field."""
    enc = LogMelEncoder(dim=4).double()
    enc.norm = Unnormalised()  # the per-window normalisation mixes frames on purpose; the frames themselves do not
    x = torch.randn(1, 3200, dtype=torch.float64, requires_grad=True)
    enc(x)[0, 10].sum().backward()
    touched = x.grad[0].nonzero().squeeze(1)
    assert touched.max() - touched.min() + 1 <= enc.receptive_field == 400
    assert touched.min() >= 10 * 160 - 120 and touched.max() < 10 * 160 - 120 + 400


def test_log_mel_valid_frames_ignore_the_padding():
    enc = LogMelEncoder(dim=8)
    x, lengths = torch.randn(2, 1, 4000), torch.tensor([4000, 2500])
    valid = enc.valid_frames(lengths, 4000)
    assert valid.tolist() == [25, 14]  # frame t ends at 160 t + 280
    noisy = x.clone()
    noisy[1, :, 2500:] = torch.randn(1500)
    x[1, :, 2500:] = 0
    a, b = enc(x, lengths), enc(noisy, lengths)
    torch.testing.assert_close(a[1, :14], b[1, :14])
    torch.testing.assert_close(a[0], b[0])


def test_lfb_refuses_another_sample_rate():
    cfg = load_config(ROOT / "recipes/speech/cpu.yaml", ["model.encoder.kind=lfb", "data.sample_rate=8000"])
    with pytest.raises(ConfigError, match="model.encoder.kind=lfb reads one channel of 16000 Hz audio"):
        check_audio_config(cfg, objectives.get("cpc"))
