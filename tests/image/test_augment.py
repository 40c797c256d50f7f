import torch

from seqcpc.image.augment import PatchAugment
from seqcpc.image.patches import patchify


def test_eval_mode_is_the_centre_crop_and_training_keeps_shape_and_range():
    x = torch.rand(3, 3, 16, 16)
    aug = PatchAugment(jitter=2, flip=True, colour_drop=0.8, grey=0.3)
    wide, plain = patchify(x, 8, 4, margin=2), patchify(x, 8, 4)
    assert torch.equal(aug.eval()(wide), plain)
    out = aug.train()(wide)
    assert out.shape == plain.shape
    assert out.min() >= 0 and out.max() <= x.max()
    assert not torch.equal(out, plain)


def test_jittered_patches_are_real_crops_of_their_neighbourhood():
    x = torch.rand(1, 1, 16, 16)
    wide = patchify(x, 8, 4, margin=1)
    out = PatchAugment(jitter=1).train()(wide)
    for r in range(3):
        for c in range(3):
            crops = wide[0, r, c, 0].unfold(0, 8, 1).unfold(1, 8, 1).reshape(9, 8, 8)
            assert (crops == out[0, r, c, 0]).all(-1).all(-1).any()


def test_colour_drop_keeps_one_channel_and_per_image_draws_are_shared():
    x = torch.rand(4, 3, 16, 16) + 0.1
    patches = PatchAugment(colour_drop=1.0, per_patch=False).train()(patchify(x, 8, 4))  # (B, 3, 3, C, 8, 8)
    kept = patches.abs().amax(dim=(-1, -2)) > 0  # (B, Gh, Gw, C)
    assert (kept.sum(-1) == 1).all()
    assert (kept == kept[:, :1, :1]).all()  # one draw per image: the same channel in every patch


def test_grey_patches_have_equal_channels_and_flips_mirror():
    x = torch.rand(2, 3, 8, 8)
    grey = PatchAugment(grey=1.0).train()(patchify(x, 8, 8))
    assert torch.allclose(grey[..., 0, :, :], grey[..., 2, :, :])
    torch.manual_seed(0)
    flipped = PatchAugment(flip=True).train()(patchify(x, 8, 8))
    assert all(torch.equal(f, p) or torch.equal(f, p.flip(-1))
               for f, p in zip(flipped.flatten(0, 2), patchify(x, 8, 8).flatten(0, 2)))
