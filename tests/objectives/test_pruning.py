"""SelfDamage (seqcpc/objectives/pruning.py), SDCLR's pruned twin: one global magnitude threshold, masks renewed
once per epoch, the dense weights never written, twin norm layers, and the pruned competitor of CPC models
(seqcpc/core/model.py)."""
import copy

import pytest
import torch
from torch import nn

from seqcpc.audio.encoder import ConvEncoder
from conftest import TINY_TASK
from seqcpc.builders import build_model
from seqcpc.config import resolve
from seqcpc.core.context import RNNContext
from seqcpc.core.model import PooledContext
from seqcpc.objectives.pruning import SelfDamage, prunable_weights


def mlp(scales=(1, 1, 1)):
    """Three linear layers, their weights times `scales`, with a BatchNorm1d between the last two."""
    net = nn.Sequential(nn.Linear(7, 9), nn.ReLU(), nn.Linear(9, 11), nn.BatchNorm1d(11), nn.Linear(11, 3))
    with torch.no_grad():
        for layer, scale in zip((net[0], net[2], net[4]), scales):
            layer.weight.mul_(scale)
    return net


def audio_net(norm="batch"):
    """The audio encoder and a GRU context, pooled over time: x (B, 1, L) -> (B, 16)."""
    return PooledContext(ConvEncoder(1, 16, [10, 8, 4], [5, 4, 2], norm), RNNContext(16, 16), 16)


def masked_copy(net, damage):
    """What the pruned branch should be: a copy of net with each prunable weight times its mask and the twins'
    parameters and statistics in its norm layers."""
    ref = copy.deepcopy(net)
    with torch.no_grad():
        for name in damage.names:
            ref.get_parameter(name).mul_(damage.mask(name))
    for name in damage.norm_names:
        ref.get_submodule(name).load_state_dict(damage.twins[name.replace(".", "__")].state_dict())
    return ref


def test_one_global_threshold_keeps_the_exact_share_of_all_weights():
    net, ratio = mlp(scales=(10, 1, 0.1)), 0.3
    damage = SelfDamage(net, ratio)
    assert damage.names == ["0.weight", "2.weight", "4.weight"]  # no biases, no norm weights
    assert damage.kept() == 1  # nothing is pruned before the first refresh
    assert damage.refresh(net, 0)
    weights = [net.get_parameter(n).detach() for n in damage.names]
    masks = [damage.mask(n) for n in damage.names]
    total = sum(w.numel() for w in weights)
    assert sum(int(m.sum()) for m in masks) == round((1 - ratio) * total)
    kept = torch.cat([w[m].abs() for w, m in zip(weights, masks)])
    dropped = torch.cat([w[~m].abs() for w, m in zip(weights, masks)])
    assert kept.min() >= dropped.max()
    shares = [m.float().mean().item() for m in masks]
    assert shares[0] > 0.9 and shares[2] < 0.1  # a per-layer threshold would keep 70% of every layer
    assert damage.kept() == pytest.approx(round((1 - ratio) * total) / total)


def test_the_masks_are_renewed_once_per_epoch():
    net = mlp()
    damage = SelfDamage(net, 0.5)
    damage.refresh(net, 0)
    before = {n: damage.mask(n).clone() for n in damage.names}
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn_like(p))
    assert not damage.refresh(net, 0)  # the same epoch: e.g. a run resumed mid-epoch keeps its masks
    assert all(torch.equal(damage.mask(n), before[n]) for n in damage.names)
    assert damage.refresh(net, 1)
    assert any(not torch.equal(damage.mask(n), before[n]) for n in damage.names)
    assert int(damage.epoch) == 1 and "epoch" in damage.state_dict()


def test_a_pruned_pass_never_writes_the_dense_weights_and_its_gradients_skip_pruned_positions():
    net = mlp()
    damage = SelfDamage(net, 0.6)
    damage.refresh(net, 0)
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    damage.call(net, torch.randn(8, 7)).square().sum().backward()
    assert all(torch.equal(p, before[n]) for n, p in net.named_parameters())  # bit for bit
    for name in damage.names:
        grad, mask = net.get_parameter(name).grad, damage.mask(name)
        assert torch.all(grad[~mask] == 0) and grad[mask].abs().sum() > 0, name
    assert net[3].weight.grad is None  # the dense norm is not the pruned branch's: its twin is
    assert damage.twins["3"].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_the_pruned_call_through_conv_norm_and_gru_is_the_masked_network(norm):
    net = audio_net(norm)
    damage = SelfDamage(net, 0.5)
    assert {"context.rnn.weight_ih_l0", "context.rnn.weight_hh_l0"} <= set(damage.names)
    damage.refresh(net, 0)
    x = torch.randn(4, 1, 400)
    ref = masked_copy(net, damage)
    torch.testing.assert_close(damage.call(net, x), ref(x))  # training mode: batch statistics
    for name in damage.norm_names:  # the twins' statistics moved as the masked copy's did
        twin = damage.twins[name.replace(".", "__")].state_dict()
        for k, v in ref.get_submodule(name).state_dict().items():
            torch.testing.assert_close(twin[k], v)
    torch.testing.assert_close(damage.call(net.eval(), x), ref.eval()(x))
    assert not torch.allclose(damage.call(net, x), net(x))


def test_with_nothing_pruned_the_twin_is_the_dense_network():
    net = audio_net().eval()
    damage = SelfDamage(net, 0.0)
    damage.refresh(net, 0)
    x = torch.randn(3, 1, 400)
    torch.testing.assert_close(damage.call(net, x), net(x))
    torch.testing.assert_close(damage.call(net, x, method="latents")[1], net.latents(x)[1])


def test_the_twin_keeps_its_own_batch_statistics():
    net = audio_net("batch").train()
    damage = SelfDamage(net, 0.5).train()
    damage.refresh(net, 0)
    dense_stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k}
    damage.call(net, torch.randn(4, 1, 400))
    assert all(torch.equal(net.state_dict()[k], v) for k, v in dense_stats.items())  # untouched by the pruned pass
    for name in damage.norm_names:
        twin, dense = damage.twins[name.replace(".", "__")], net.get_submodule(name)
        assert not torch.equal(twin.running_mean, dense.running_mean) and int(twin.num_batches_tracked) == 1
    net(torch.randn(4, 1, 400))
    assert not torch.equal(net.state_dict()["encoder.net.1.running_mean"], dense_stats["encoder.net.1.running_mean"])


def test_a_network_with_nothing_to_prune_and_a_bad_ratio_are_refused():
    with pytest.raises(ValueError, match="no convolution"):
        SelfDamage(nn.Sequential(nn.ReLU(), nn.LayerNorm(3)), 0.5)
    for ratio in (-0.1, 1.0):
        with pytest.raises(ValueError, match="pruning ratio"):
            SelfDamage(nn.Linear(2, 2), ratio)
    assert prunable_weights(nn.LSTM(3, 4, num_layers=2)) == ["weight_ih_l0", "weight_hh_l0", "weight_ih_l1",
                                                             "weight_hh_l1"]


def tiny_sdclr(ratio=0.5):
    return build_model(resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16}, "patches": {"widths": [8, 16]}},
                                 "objective": {"name": "sdclr", "hidden": 32, "projection": 16, "prune_ratio": ratio}}))


def test_sdclr_trains_the_dense_weights_through_both_branches():
    model = tiny_sdclr()
    assert not any(n.startswith("damage") for n in model.damage.names)  # it does not prune itself
    model.on_epoch_start(0)
    assert model.damage.kept() == pytest.approx(0.5, abs=1e-3)
    loss, metrics = model(torch.rand(8, 1, 16, 16))
    loss.backward()
    for name, p in model.features.encoder.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
    twin = next(iter(model.damage.twins.values()))
    assert twin.weight.grad.abs().sum() > 0  # the pruned branch ran through its own norms
    assert set(metrics) == {"acc"}


def test_sdclr_masks_are_renewed_by_the_loops_epoch_hook():
    model = tiny_sdclr()
    model.on_epoch_start(0)
    masks = {k: v.clone() for k, v in model.damage.state_dict().items() if k.startswith("mask__")}
    with torch.no_grad():
        model.head[0].weight.fill_(10.0)  # the head's first weights now dwarf every other
    model.on_epoch_start(0)
    assert all(torch.equal(model.damage.mask(n), masks[f"mask__{n.replace('.', '__')}"]) for n in model.damage.names)
    model.on_epoch_start(1)
    assert model.damage.mask("head.0.weight").all()


def test_a_model_loaded_mid_epoch_keeps_the_masks_of_its_checkpoint():
    """What --resume does: the state dict carries the masks and their epoch, so re-entering that epoch with weights
    that have moved since the masks were drawn does not redraw them."""
    model = tiny_sdclr()
    model.on_epoch_start(2)
    with torch.no_grad():
        model.head[0].weight.fill_(10.0)  # trained on after the epoch began: these weights would now all be kept
    state = copy.deepcopy(model.state_dict())
    resumed = tiny_sdclr()
    resumed.load_state_dict(state)
    resumed.on_epoch_start(2)
    assert all(torch.equal(resumed.damage.mask(n), model.damage.mask(n)) for n in model.damage.names)
    assert not resumed.damage.mask("head.0.weight").all()


def pruned_competitor_cpc():
    return build_model(resolve({"model": {"size": "synthetic_tiny"},
                                "objective": {**TINY_TASK, "pruned_competitor": True, "prune_ratio": 0.5}}))


def test_a_pruned_competitor_cpc_model_holds_masks_and_twins_in_its_state():
    state = pruned_competitor_cpc().state_dict()
    assert "damage.mask__encoder__net__0__weight" in state and "damage.mask__context__rnn__weight_hh_l0" in state
    assert any(k.startswith("damage.twins.") for k in state)


def test_a_pruned_competitor_cpc_model_uses_its_pruned_twin():
    model = pruned_competitor_cpc()
    assert isinstance(model.damage, SelfDamage)
    model.on_epoch_start(0)
    assert model.damage.kept() == pytest.approx(0.5, abs=1e-3)
    loss, _ = model(torch.randn(4, 1, 1024))
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    twin = next(iter(model.damage.twins.values()))
    assert twin.weight.grad.abs().sum() > 0  # the pruned branch ran
