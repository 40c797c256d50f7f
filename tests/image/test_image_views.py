import pytest
import torch

from seqcpc.image.config import ImageViewsConfig
from seqcpc.image.views import ImageViews, image_views_from_config

PLAIN = dict(crop_scale=(1, 1), crop_ratio=(1, 1), flip=0.0, jitter=0.0, jitter_prob=0.0, grey=0.0, blur=0.0)


def test_views_keep_shape_and_range_and_eval_mode_is_the_identity():
    x = torch.rand(4, 3, 16, 12)
    views = ImageViews(blur=0.5)
    out = views(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= 1
    assert views.eval()(x) is x


def test_each_image_and_each_call_gets_its_own_draw():
    x = torch.rand(1, 3, 16, 16).expand(6, -1, -1, -1)  # one image six times
    views = ImageViews()
    first, second = views(x), views(x)
    assert not torch.allclose(first, second)
    assert all(not torch.allclose(first[i], first[j]) for i in range(6) for j in range(i))


def test_full_crop_without_other_changes_returns_the_input():
    x = torch.rand(3, 3, 12, 12)
    torch.testing.assert_close(ImageViews(**PLAIN)(x), x, atol=1e-5, rtol=0)
    wide = torch.rand(3, 3, 10, 14)  # the ratio is width / height in pixels: only 1.4 covers this image
    torch.testing.assert_close(ImageViews(**{**PLAIN, "crop_ratio": (1.4, 1.4)})(wide), wide, atol=1e-5, rtol=0)


def test_a_crop_is_a_zoomed_part_of_the_image():
    # a horizontal ramp: a crop of width w resized back spans a ramp with slope 1 / w of the original's
    x = torch.linspace(0, 1, 32).expand(2, 1, 32, 32).contiguous()
    out = ImageViews(**{**PLAIN, "crop_scale": (0.25, 0.25)})(x)
    slope = (out[..., 1:] - out[..., :-1]).mean(dim=(1, 2, 3)) / (x[..., 1:] - x[..., :-1]).mean()
    torch.testing.assert_close(slope, torch.full((2,), 0.5), atol=0.02, rtol=0)  # w = sqrt(0.25)


def test_crops_draw_their_ratio_within_the_range_and_fit_in_the_image():
    views = ImageViews(crop_scale=(0.1, 1.0), crop_ratio=(0.5, 2.0))
    w, h = views.crop_sizes(1000, 20, 40, "cpu")
    assert (w <= 1).all() and (h <= 1).all()
    ratio = w * 40 / (h * 20)
    fitted = (w < 1) & (h < 1)  # the draws that were not cut to the image keep their ratio
    assert fitted.float().mean() > 0.9
    assert (ratio[fitted] >= 0.5 - 1e-5).all() and (ratio[fitted] <= 2.0 + 1e-5).all()


def test_flip_only_mirrors_the_image():
    x = torch.rand(3, 3, 8, 8)
    out = ImageViews(**{**PLAIN, "flip": 1.0})(x)
    torch.testing.assert_close(out, x.flip(-1), atol=1e-5, rtol=0)


def test_grey_views_have_equal_channels_and_grey_images_pass_grey_scale():
    x = torch.rand(4, 3, 8, 8)
    out = ImageViews(**{**PLAIN, "grey": 1.0})(x)
    assert torch.allclose(out[:, 0], out[:, 1]) and torch.allclose(out[:, 1], out[:, 2])
    mono = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(ImageViews(**{**PLAIN, "grey": 1.0})(mono), mono, atol=1e-5, rtol=0)


def test_colour_jitter_changes_colours_within_range_on_one_and_three_channels():
    for channels in (1, 3):
        x = torch.rand(8, channels, 8, 8)
        out = ImageViews(**{**PLAIN, "jitter": 0.8, "jitter_prob": 1.0})(x)
        assert out.min() >= 0 and out.max() <= 1
        assert (out - x).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every image changed


def test_blur_lowers_the_high_frequency_energy_of_a_checkerboard():
    i = torch.arange(20)
    board = ((i[:, None] + i[None, :]) % 2).float().expand(3, 3, 20, 20)
    out = ImageViews(**{**PLAIN, "blur": 1.0, "blur_sigma": (1.0, 2.0)})(board)
    energy = lambda y: (y[..., 1:] - y[..., :-1]).pow(2).mean()  # noqa: E731
    assert energy(out) < 0.1 * energy(board)
    assert out.shape == board.shape


def test_config_builds_the_module_and_bad_ranges_are_refused():
    views = image_views_from_config(ImageViewsConfig(blur=0.5))
    assert views.blur == 0.5 and views.crop_scale == (0.2, 1.0)
    with pytest.raises(ValueError, match="crop_scale"):
        ImageViews(crop_scale=(0.9, 0.2))
