import pytest
import torch

from seqcpc.image.grid_context import MaskedConvContext


@pytest.mark.parametrize("kernel,layers", [(3, 2), (5, 3), (2, 1)])
def test_context_at_row_r_sees_rows_up_to_r_only(kernel, layers):
    ctx = MaskedConvContext(6, 12, layers, kernel)
    z = torch.randn(2, 7, 5, 6)
    c = ctx(z)
    assert c.shape == (2, 7, 5, 12)
    for r in range(7):
        later = z.clone()
        later[:, r + 1:] = torch.randn_like(later[:, r + 1:])  # change every row below r
        c2 = ctx(later)
        assert torch.allclose(c2[:, : r + 1], c[:, : r + 1], atol=1e-6), f"row {r} saw a row below it"
        if r < 6:
            assert not torch.allclose(c2[:, r + 1:], c[:, r + 1:])  # the rows below do read them
    same_row = z.clone()
    same_row[:, 3, 0] += 1  # a change in row 3 reaches row 3 (in other columns too, within the kernel)
    assert not torch.allclose(ctx(same_row)[:, 3], c[:, 3])
