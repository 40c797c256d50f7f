import math

import pytest
import torch

from image_fixtures import toy_images
from seqcpc.builders import build_model, image_small
from seqcpc.image_store import images_to_float


def tiny_image_model(directions=1, shared=True, channels=1):
    cfg = image_small()
    cfg.encoder.in_channels, cfg.encoder.dim, cfg.context.dim = channels, 16, 16
    cfg.patches.widths, cfg.patches.directions, cfg.patches.shared_context = [8, 16], directions, shared
    return build_model(cfg)


def test_untrained_loss_is_near_log_of_the_candidates():
    model = tiny_image_model().eval()
    x = torch.rand(8, 1, 28, 28)
    loss, metrics = model(x)
    candidates = 8 * 6 * 6  # negatives='all': every patch latent of the batch
    assert abs(loss.item() - math.log(candidates)) < 0.05 * math.log(candidates)
    assert metrics["acc_k"].shape == (2,)


@pytest.mark.parametrize("directions,shared", [(1, True), (4, True), (4, False), (2, False)])
def test_gradients_reach_encoder_every_context_and_every_predictor(directions, shared):
    model = tiny_image_model(directions, shared, channels=3)
    loss, _ = model(torch.rand(4, 3, 20, 28))  # a 5x7 grid: rotations make it 7x5
    loss.backward()
    assert len(model.predictors) == directions and len(model.contexts) == (1 if shared else directions)
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_embed_gives_the_unaugmented_grid():
    model = tiny_image_model()
    x = torch.rand(3, 1, 28, 28)
    z, c = model.embed(x)
    assert z.shape == (3, 6, 6, 16) and c.shape == (3, 6, 6, 16)
    assert torch.equal(model.embed(x)[0], z)  # no random augmentation at evaluation


def test_a_few_steps_lower_the_loss():
    torch.manual_seed(0)
    model = tiny_image_model()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = images_to_float(toy_images(6, size=24)[0])  # 18 striped images: each row predicts the rows below
    losses = []
    for _ in range(60):
        loss, _ = model(x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < losses[0] - 0.5  # from log(450) = 6.11
