"""Masked norms: without `valid` exactly nn.BatchNorm1d / nn.InstanceNorm1d; with it, statistics of the valid
steps only."""
import pytest
import torch
from einops import rearrange
from torch import nn

from seqcpc.core.masking import MaskedBatchNorm1d, MaskedInstanceNorm1d, frame_mask

VALID = torch.tensor([10, 4, 7])


def test_frame_mask_marks_the_leading_valid_steps():
    assert frame_mask(torch.tensor([0, 2, 3]), 3).tolist() == [[False] * 3, [True, True, False], [True] * 3]


@pytest.mark.parametrize("momentum", [0.1, None])
def test_without_valid_it_is_batch_norm_bit_for_bit(momentum):
    torch.manual_seed(0)
    plain, masked = nn.BatchNorm1d(5, momentum=momentum), MaskedBatchNorm1d(5, momentum=momentum)
    assert list(plain.state_dict()) == list(masked.state_dict())  # checkpoints load either way
    nn.init.normal_(plain.weight), nn.init.normal_(plain.bias)
    masked.load_state_dict(plain.state_dict())
    for step in range(3):
        x = torch.randn(3, 5, 10)
        assert torch.equal(plain(x), masked(x))
    for name, buf in plain.state_dict().items():
        assert torch.equal(buf, masked.state_dict()[name]), name
    plain.eval(), masked.eval()
    assert torch.equal(plain(x), masked(x))


@pytest.mark.parametrize("momentum", [0.1, None])
def test_statistics_and_running_stats_come_from_the_valid_steps_only(momentum):
    torch.manual_seed(0)
    masked, reference = MaskedBatchNorm1d(5, momentum=momentum), nn.BatchNorm1d(5, momentum=momentum)
    nn.init.normal_(masked.weight), nn.init.normal_(masked.bias)
    reference.load_state_dict(masked.state_dict())
    mask = frame_mask(VALID, 10)
    for step in range(3):
        x = torch.randn(3, 5, 10)
        y = masked(torch.where(mask[:, None], x, 1e3 * torch.randn_like(x)), VALID)
        # batch norm of the valid steps alone, as one long sequence
        valid_steps = rearrange(x, "b d t -> b t d")[mask]  # (V, D)
        expected = reference(rearrange(valid_steps, "v d -> 1 d v"))[0].T  # (V, D)
        torch.testing.assert_close(rearrange(y, "b d t -> b t d")[mask], expected)
    for name, buf in reference.state_dict().items():
        torch.testing.assert_close(masked.state_dict()[name], buf, msg=name)


def test_eval_mode_uses_running_statistics_whatever_valid_says():
    masked = MaskedBatchNorm1d(5).eval()
    x = torch.randn(3, 5, 10)
    assert torch.equal(masked(x, VALID), masked(x))


def test_instance_norm_without_valid_is_instance_norm_and_with_it_ignores_padding():
    torch.manual_seed(0)
    plain, masked = nn.InstanceNorm1d(5, affine=True), MaskedInstanceNorm1d(5, affine=True)
    nn.init.normal_(plain.weight), nn.init.normal_(plain.bias)
    masked.load_state_dict(plain.state_dict())
    x = torch.randn(3, 5, 10)
    assert torch.equal(plain(x), masked(x))
    mask = frame_mask(VALID, 10)
    y = masked(torch.where(mask[:, None], x, 1e3 * torch.randn_like(x)), VALID)
    for b, n in enumerate(VALID.tolist()):  # each sequence normalised over its own valid steps
        torch.testing.assert_close(y[b, :, :n], plain(x[b:b + 1, :, :n])[0])
