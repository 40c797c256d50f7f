import math

import pytest
import torch

from image_fixtures import toy_images
from seqcpc.builders import build_model
from seqcpc.config import resolve
from seqcpc.image.patches import patchify
from seqcpc.image.store import images_to_float


def tiny_image_model(directions=1, shared=True, channels=1):
    return build_model(resolve({"model": {
        "size": "image_small", "encoder": {"in_channels": channels, "dim": 16}, "context": {"dim": 16},
        "patches": {"widths": [8, 16], "directions": directions, "shared_context": shared}}}))


def test_untrained_loss_is_near_log_of_the_candidates():
    model = tiny_image_model().eval()
    x = torch.rand(8, 1, 28, 28)
    loss, metrics = model(x)
    candidates = 8 * 6 * 6  # negatives='all': every patch latent of the batch
    assert abs(loss.item() - math.log(candidates)) < 0.05 * math.log(candidates)
    assert set(metrics) == {"acc", "acc/k3"} and all(m.dim() == 0 for m in metrics.values())  # CPC v2: row 3 below
    assert model.chance_loss(8, 36) == pytest.approx(math.log(candidates))


@pytest.mark.parametrize("directions,shared", [(1, True), (4, True), (4, False), (2, False)])
def test_gradients_reach_encoder_every_context_and_every_predictor(directions, shared):
    model = tiny_image_model(directions, shared, channels=3)
    loss, _ = model(torch.rand(4, 3, 20, 28))  # a 5x7 grid: rotations make it 7x5
    loss.backward()
    assert len(model.predictors) == directions and len(model.contexts) == (1 if shared else directions)
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("first,overlaps", [(1, True), (2, False), (3, False)])
def test_no_scored_target_overlaps_the_context_patches_from_the_second_row_below(first, overlaps):
    """8 px patches every 4 px: the context at row t has seen the pixel rows [0, 4 t + 8) (its masked convolution
    reaches rows <= t); a target at row r covers [4 r, 4 r + 8). With first >= 2 no positive the loss scores
    shares a pixel row with them; with first = 1 (CPC v1's task) the row right below shares half."""
    model = build_model(resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1}},
                                 "objective": {"predictor": {"first": first, "steps": 3}}}))
    assert model.loss.first == first
    rows, n = 6, 3 - first + 1  # the 6x6 grid of a 28 px image
    S = rows - 3  # context rows with a target at every offset
    _, target = model.loss.all_logits(torch.zeros(1, n, S, 1), torch.zeros(1, rows, 1))  # the loss's positives
    context_row = torch.arange(S)
    seen_until = model.stride * context_row + model.patch  # first pixel row the context has not seen
    shares = model.stride * (target % rows) < seen_until  # (1, n, S)
    assert bool(shares.any()) == overlaps


def test_projected_and_scaled_predictions_are_scored_against_projected_latents():
    """CPC v2's target_dim and scale: the loss is InfoNCE(scale * prediction, W z) and gradients reach W."""
    cfg = resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 16}, "context": {"dim": 16},
                             "patches": {"widths": [8, 16]}},
                   "objective": {"predictor": {"target_dim": 8, "scale": 0.25}}})
    model = build_model(cfg).eval()  # eval: no augmentation, so both computations see the same patches
    x = torch.rand(3, 1, 28, 28)
    loss, _ = model(x)
    z = model.encoder(model.patches(x))
    c = model.contexts[0](z)
    preds = model.predictors[0](c.permute(0, 2, 1, 3).flatten(0, 1))  # columns as sequences: (B Gw, K', Gh, 8)
    assert preds.shape[-1] == 8 and model.targets.weight.shape == (8, 16)
    expected, _ = model.loss(0.25 * preds, model.targets(z.permute(0, 2, 1, 3).flatten(0, 1)))
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert model.targets.weight.grad.abs().sum() > 0


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
