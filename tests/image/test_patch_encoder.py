import subprocess
import sys

import torch

from seqcpc.image.encoder import PatchEncoder, StridedPointwise
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


def test_the_strided_projection_is_a_strided_1x1_convolution():
    proj = StridedPointwise(4, 8, 2)
    x = torch.rand(3, 4, 7, 8).contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(proj(x), torch.nn.functional.conv2d(x, proj.weight, stride=2))
    assert [name for name, _ in proj.named_parameters()] == ["weight"]  # checkpoints name it as before


def test_training_on_one_thread_does_not_crash():
    """A strided 1x1 convolution on channels-last tensors corrupted the heap in its backward with one thread
    (torch 2.13 CPU), which is what train.deterministic=true uses; 30 backward passes in a fresh process."""
    code = ("import torch; torch.set_num_threads(1)\n"
            "from seqcpc.image.encoder import PatchEncoder\n"
            "from seqcpc.image.patches import patchify\n"
            "for _ in range(30):\n"
            "    enc = PatchEncoder(1, 8, [4, 8, 8], blocks=2)\n"
            "    enc(patchify(torch.rand(2, 1, 12, 12), 8, 4)).square().sum().backward()\n"
            "print('done')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "done" in proc.stdout, proc.stderr[-2000:]
