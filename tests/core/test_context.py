import pytest
import torch

from seqcpc.core.context import RNNContext, TransformerContext

CONTEXTS = {
    "gru": lambda: RNNContext(8, 16, layers=2, cell="gru"),
    "lstm": lambda: RNNContext(8, 16, layers=2, cell="lstm"),
    "transformer": lambda: TransformerContext(8, 16, layers=2, heads=2),
}


@pytest.mark.parametrize("kind", CONTEXTS)
def test_shape(kind):
    c = CONTEXTS[kind]()(torch.randn(3, 20, 8))
    assert c.shape == (3, 20, 16)


@pytest.mark.parametrize("kind", CONTEXTS)
def test_context_at_t_never_sees_inputs_after_t(kind):
    net = CONTEXTS[kind]().eval()
    z = torch.randn(2, 30, 8)
    t = 17
    changed = z.clone()
    changed[:, t + 1:] = torch.randn_like(changed[:, t + 1:]) * 10
    c, c_changed = net(z), net(changed)
    torch.testing.assert_close(c[:, : t + 1], c_changed[:, : t + 1])
    assert not torch.allclose(c[:, t + 1:], c_changed[:, t + 1:])


def test_unknown_cell_is_refused():
    with pytest.raises(ValueError, match="unknown recurrent cell"):
        RNNContext(8, 16, cell="rnn")
