import math

import pytest
import torch

from image_fixtures import toy_images
from seqcpc.builders import build_model, image_small
from seqcpc.image.patches import patchify
from seqcpc.image.store import images_to_float


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
    assert set(metrics) == {"acc", "acc/k1", "acc/k2"} and all(m.dim() == 0 for m in metrics.values())
    assert model.chance_loss(8, 36) == pytest.approx(math.log(candidates))


@pytest.mark.parametrize("directions,shared", [(1, True), (4, True), (4, False), (2, False)])
def test_gradients_reach_encoder_every_context_and_every_predictor(directions, shared):
    model = tiny_image_model(directions, shared, channels=3)
    loss, _ = model(torch.rand(4, 3, 20, 28))  # a 5x7 grid: rotations make it 7x5
    loss.backward()
    assert len(model.predictors) == directions and len(model.contexts) == (1 if shared else directions)
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_embed_gives_the_unaugmented_grid():
    model = tiny_image_model().train()  # even in training mode, where patches() augments
    x = torch.rand(3, 1, 28, 28)
    plain = patchify(x, 8, 4)  # (3, 6, 6, 1, 8, 8): the grid with no jitter, flip or colour change
    assert not torch.equal(model.patches(x), plain)  # training patches are augmented ...
    z, c = model.embed(x)
    assert z.shape == (3, 6, 6, 16) and c.shape == (3, 6, 6, 16)
    with torch.no_grad():  # ... embed's are not: the encoder on the plain grid, and the context on that
        torch.testing.assert_close(z, model.encoder(plain), rtol=0, atol=0)
        torch.testing.assert_close(c, model.contexts[0](z), rtol=0, atol=0)


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
