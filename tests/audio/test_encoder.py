import pytest
import torch

from seqcpc.builders import cpc_audio_paper
from seqcpc.audio.encoder import NORMS, ConvEncoder


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
