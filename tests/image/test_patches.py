import pytest
import torch

from seqcpc.image.patches import grid_shape, patchify, unpatchify


@pytest.mark.parametrize("height,width,size,stride", [(28, 28, 8, 4), (32, 24, 8, 8), (30, 29, 8, 4), (7, 9, 7, 3)])
def test_patches_map_back_to_their_pixels(height, width, size, stride):
    x = torch.randn(2, 3, height, width)
    patches = patchify(x, size, stride)
    gh, gw = grid_shape(height, width, size, stride)
    assert patches.shape == (2, gh, gw, 3, size, size)
    assert torch.allclose(unpatchify(patches, height, width, stride), x, atol=1e-6)


def test_patch_r_c_is_the_image_window_at_r_times_stride():
    x = torch.arange(28 * 28, dtype=torch.float32).reshape(1, 1, 28, 28)
    patches = patchify(x, 8, 4)  # 28 = 5 * 4 + 8: tiles exactly, no padding
    assert patches.shape[1:3] == (6, 6)
    assert torch.equal(patches[0, 2, 5, 0], x[0, 0, 8:16, 20:28])


def test_a_margin_keeps_the_neighbouring_pixels_around_each_patch():
    x = torch.randn(1, 1, 16, 16)
    plain, wide = patchify(x, 8, 4), patchify(x, 8, 4, margin=2)
    assert wide.shape[-1] == 12 and torch.equal(wide[..., 2:10, 2:10], plain)
    assert torch.equal(wide[0, 1, 1, 0], x[0, 0, 2:14, 2:14])  # an inner patch's margin is real image
