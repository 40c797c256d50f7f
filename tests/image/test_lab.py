"""sRGB to CIE Lab (seqcpc/image/lab.py) against published values and scikit-image's rgb2lab."""
import numpy as np
import pytest
import torch

from seqcpc.image.lab import rgb_to_lab, split_lab

# Lab (D65) of the sRGB primaries, black and white, as published (e.g. the CIE 1976 L*a*b* values that colour
# references list for sRGB #FF0000, #00FF00, #0000FF)
PUBLISHED = {(1, 0, 0): (53.24, 80.09, 67.20), (0, 1, 0): (87.73, -86.18, 83.18), (0, 0, 1): (32.30, 79.19, -107.86),
             (1, 1, 1): (100.0, 0.0, 0.0), (0, 0, 0): (0.0, 0.0, 0.0)}


def test_the_primaries_black_and_white_have_their_published_lab():
    rgb = torch.tensor(list(PUBLISHED), dtype=torch.float32).T[:, :, None]  # (3, 5, 1): five pixels in a column
    lab = rgb_to_lab(rgb)[:, :, 0].T  # (5, 3)
    assert torch.allclose(lab, torch.tensor(list(PUBLISHED.values())), atol=0.01)


def test_it_matches_scikit_image_on_random_colours_of_any_leading_shape():
    skimage_color = pytest.importorskip("skimage.color")  # the dev extra installs it
    rgb = torch.rand(2, 3, 3, 8, 8, generator=torch.Generator().manual_seed(0))  # e.g. a (B, G, 3, p, p) grid
    reference = skimage_color.rgb2lab(rgb.movedim(-3, -1).double().numpy())  # channels last
    ours = rgb_to_lab(rgb).movedim(-3, -1).numpy()
    # scikit-image's white is 0.005 off a = b = 0 (its D65 white has more digits than its matrix's rows add to)
    assert np.abs(ours - reference).max() < 0.01


def test_split_lab_scales_l_and_ab_to_about_minus_one_to_one():
    light, ab = split_lab(torch.rand(4, 3, 16, 16))
    assert light.shape == (4, 1, 16, 16) and ab.shape == (4, 2, 16, 16)
    assert light.min() >= -1 and light.max() <= 1 and ab.abs().max() <= 1
    grey = torch.full((1, 3, 2, 2), 0.5)
    assert split_lab(grey)[1].abs().max() < 1e-4  # a grey has no colour


def test_half_precision_input_and_autocast_still_convert_in_float32():
    rgb = torch.rand(2, 3, 4, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        lab = rgb_to_lab(rgb.bfloat16())
    assert lab.dtype == torch.float32
    assert torch.allclose(lab, rgb_to_lab(rgb.bfloat16().float()), atol=1e-4)
