import math

import pytest
import torch

from seqcpc.config import resolve
from seqcpc.builders import build_model
from seqcpc.core.predictors import LinearPredictor, MLPPredictor, TransformerPredictor
from seqcpc.errors import ConfigError


@pytest.mark.parametrize("make", [lambda: LinearPredictor(16, 8, 5), lambda: MLPPredictor(16, 8, 5, 32),
                                  lambda: MLPPredictor(16, 8, 5, 32, per_step=True),
                                  lambda: TransformerPredictor(16, 8, 5, 32, heads=4)])
def test_shape(make):
    assert make()(torch.randn(2, 11, 16)).shape == (2, 5, 11, 8)  # (B, K, T, D)


def test_linear_predictor_is_one_independent_map_per_step():
    pred = LinearPredictor(16, 8, 3)
    c = torch.randn(2, 7, 16)
    out = pred(c)
    for k in range(3):
        w_k = pred.to_pred.weight[k * 8:(k + 1) * 8]  # (D, E)
        torch.testing.assert_close(out[:, k], c @ w_k.T)


def test_per_step_mlp_steps_do_not_share_weights():
    pred = MLPPredictor(4, 4, 2, 8, per_step=True)
    c = torch.randn(1, 5, 4)
    pred(c)[:, 0].sum().backward()
    assert pred.w1.grad[0].abs().sum() > 0 and pred.w1.grad[1].abs().sum() == 0


def test_transformer_predictions_at_t_read_the_context_up_to_t_only():
    pred = TransformerPredictor(8, 6, 3, 16, heads=2).double()
    c = torch.randn(2, 9, 8, dtype=torch.float64)
    out = pred(c)  # (B, K, T, D)
    for t in range(9):
        changed = c.clone()
        changed[:, t + 1:] = torch.randn_like(changed[:, t + 1:]) * 10
        moved = pred(changed)
        torch.testing.assert_close(moved[:, :, :t + 1], out[:, :, :t + 1], rtol=0, atol=1e-12)  # every k
        if t < 8:
            assert not torch.allclose(moved[:, :, t + 1], out[:, :, t + 1])  # the step after t does read it


def test_transformer_steps_do_not_share_weights():
    pred = TransformerPredictor(8, 4, 2, 16, heads=2)
    pred(torch.randn(1, 5, 8))[:, 0].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pred.blocks[0].parameters())
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in pred.blocks[1].parameters())


def test_transformer_predictor_gradients_match_finite_differences():
    pred = TransformerPredictor(4, 3, 2, 8, heads=2).double()
    c = torch.randn(1, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(pred, (c,))


def test_transformer_heads_must_divide_the_context_dim():
    with pytest.raises(ConfigError, match="objective.predictor.heads=3 must divide the context dim 16"):
        TransformerPredictor(16, 8, 2, 32, heads=3)


def test_cpc_with_the_transformer_head_starts_near_chance():
    """At initialisation the predictions carry no information, so InfoNCE is about log(1 + N)."""
    cfg = resolve({"model": {"size": "synthetic_tiny"},
                   "objective": {"predictor": {"kind": "transformer", "steps": 6, "hidden": 64, "heads": 4},
                                 "loss": {"num_negatives": 32}}})
    model = build_model(cfg)
    loss, _ = model(torch.randn(8, 1, 2048))
    assert loss.item() == pytest.approx(math.log(1 + 32), abs=0.15)
    assert model.chance_loss(8, 51) == pytest.approx(math.log(1 + 32))
