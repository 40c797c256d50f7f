import pytest
import torch

from seqcpc.core.predictors import LinearPredictor, MLPPredictor


@pytest.mark.parametrize("make", [lambda: LinearPredictor(16, 8, 5), lambda: MLPPredictor(16, 8, 5, 32),
                                  lambda: MLPPredictor(16, 8, 5, 32, per_step=True)])
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
