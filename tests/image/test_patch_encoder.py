import torch

from seqcpc.image.encoder import PatchEncoder
from seqcpc.image.patches import patchify


def test_shape_and_every_latent_depends_on_its_own_patch_only():
    enc = PatchEncoder(3, 16, [8, 16], blocks=1).eval()
    x = torch.rand(2, 3, 16, 16)
    z = enc(patchify(x, 8, 4))
    assert z.shape == (2, 3, 3, 16)
    patches = patchify(x, 8, 4).clone()  # patchify returns a view: overlapping patches share pixels
    patches[1, 2, 0] = torch.rand_like(patches[1, 2, 0])  # change one patch of the second image
    changed = (enc(patches) - z).abs().amax(-1) > 1e-6  # (B, Gh, Gw)
    expected = torch.zeros_like(changed)
    expected[1, 2, 0] = True
    assert torch.equal(changed, expected)  # layer norm per patch: no statistics shared across patches


def test_gradients_reach_every_parameter():
    enc = PatchEncoder(1, 8, [4, 8, 8], blocks=2)
    enc(patchify(torch.rand(2, 1, 12, 12), 8, 4)).square().sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
