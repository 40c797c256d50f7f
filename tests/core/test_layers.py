"""Every context layer's output: context.layers(z) and CPC.hidden_states(x)."""
import pytest
import torch
from torch import nn

from seqcpc.core.context import RNNContext, TransformerContext

CONTEXTS = {
    "gru": lambda: RNNContext(8, 16, layers=2, cell="gru"),
    "lstm": lambda: RNNContext(8, 16, layers=2, cell="lstm"),
    "transformer": lambda: TransformerContext(8, 16, layers=3, heads=2),
}


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_rnn_layers_equal_a_manual_layer_by_layer_run(cell):
    net = RNNContext(8, 16, layers=2, cell=cell)
    z = torch.randn(3, 11, 8)
    single = {"gru": nn.GRU, "lstm": nn.LSTM}[cell]
    first, second = single(8, 16, batch_first=True), single(16, 16, batch_first=True)
    for l, rnn in enumerate((first, second)):  # copy layer l's weights into a plain one-layer network
        for name, p in rnn.named_parameters():
            p.data.copy_(getattr(net.rnn, name.replace("_l0", f"_l{l}")))
    c1, _ = first(z)
    c2, _ = second(c1)
    layers = net.layers(z)
    assert len(layers) == 2
    torch.testing.assert_close(layers[0], c1)
    torch.testing.assert_close(layers[1], c2)
    assert not torch.allclose(layers[0], layers[1])


@pytest.mark.parametrize("kind", CONTEXTS)
def test_the_last_layer_is_forward_and_all_have_one_shape(kind):
    net = CONTEXTS[kind]().eval()
    z = torch.randn(2, 13, 8)
    layers = net.layers(z)
    assert len(layers) == (3 if kind == "transformer" else 2)
    assert all(h.shape == (2, 13, 16) for h in layers)
    torch.testing.assert_close(layers[-1], net(z), rtol=1e-5, atol=1e-5)


def test_layers_keep_the_parameter_names_and_a_one_layer_rnn_gives_its_output():
    net = RNNContext(8, 16, layers=2)
    names = [n for n, _ in net.named_parameters()]
    net.layers(torch.randn(1, 4, 8))
    assert [n for n, _ in net.named_parameters()] == names
    assert "rnn.weight_ih_l1" in names and not any("twin" in n for n in net.state_dict())
    one = RNNContext(8, 16, layers=1)
    z = torch.randn(2, 5, 8)
    torch.testing.assert_close(one.layers(z)[0], one(z))


@pytest.mark.parametrize("kind", CONTEXTS)
def test_every_layer_at_t_never_sees_inputs_after_t(kind):
    net = CONTEXTS[kind]().eval()
    z = torch.randn(2, 20, 8)
    t = 9
    changed = z.clone()
    changed[:, t + 1:] = torch.randn_like(changed[:, t + 1:]) * 10
    for h, h_changed in zip(net.layers(z), net.layers(changed)):
        torch.testing.assert_close(h[:, : t + 1], h_changed[:, : t + 1])
        assert not torch.allclose(h[:, t + 1:], h_changed[:, t + 1:])


def test_layer_outputs_carry_gradients_to_every_layers_weights():
    net = RNNContext(8, 16, layers=2)
    net.layers(torch.randn(2, 6, 8))[0].sum().backward()
    assert net.rnn.weight_ih_l0.grad is not None and net.rnn.weight_ih_l1.grad is None


def test_cpc_hidden_states_are_z_then_every_context_layer():
    from seqcpc.builders import build_model
    from seqcpc.config import resolve

    model = build_model(resolve({"model": {"size": "synthetic_tiny", "context": {"layers": 2}}})).eval()
    x = torch.randn(2, 1, 800)
    states = model.hidden_states(x)
    z, c = model.embed(x)
    assert len(states) == 3
    torch.testing.assert_close(states[0], z)
    torch.testing.assert_close(states[-1], c)
    assert states[1].shape == c.shape and not torch.allclose(states[1], c)
