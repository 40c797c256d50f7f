"""CMC (seqcpc/objectives/cmc.py): its pairs of views and its loss against plain loops, the queue of negatives,
its frozen features, training through the command line on colour images and on speech, and its refusals."""
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from conftest import TINY_ANY, cli
from image_fixtures import toy_colour_store, toy_image_store
from seqcpc.config import load_config
from seqcpc.builders import build_model, check_config, complete_config
from seqcpc.errors import ConfigError
from seqcpc.objectives.cmc import CMC, CMCConfig, multiview_loss, view_pairs
from seqcpc.objectives.queue import KeyQueue

IMAGE = ["model.size=image_small", "model.encoder.dim=16", "model.patches.widths=[8,16]", "objective.name=cmc",
         "data.batch_size=16", "optim.lr=3e-3", "optim.warmup_steps=5", "train.log_every=10"]
# the tiny synthetic model downsamples by 40: the log mel view's frames every 40 samples too
AUDIO = [*TINY_ANY, "objective.name=cmc", "model.encoder.hop=40", "model.encoder.frame=100", "model.encoder.mels=20"]


@pytest.fixture(scope="module")
def colour(tmp_path_factory):
    return toy_colour_store(tmp_path_factory.mktemp("cmc") / "shapes", n_train=64, n_test=16)


def plain_pair_loss(anchors, positives, temperature, negatives=None):
    """-log softmax of each anchor's positive among the other samples' positives (or a list of negatives)."""
    total = 0.0
    for k in range(len(anchors)):
        own = float(anchors[k] @ positives[k]) / temperature
        if negatives is None:
            others = [float(anchors[k] @ positives[m]) / temperature for m in range(len(anchors))]
        else:
            others = [own] + [float(anchors[k] @ n) / temperature for n in negatives]
        total += -(own - math.log(sum(math.exp(s) for s in others)))
    return total / len(anchors)


def unit(*shape, seed=0):
    return F.normalize(torch.randn(*shape, generator=torch.Generator().manual_seed(seed)), dim=-1)


def test_the_core_graph_pairs_the_first_view_with_each_other_and_the_full_graph_pairs_all():
    assert view_pairs(2, "core") == view_pairs(2, "full") == [(0, 1)]  # two views: the same one pair
    assert view_pairs(3, "core") == [(0, 1), (0, 2)]
    assert view_pairs(4, "full") == [(i, j) for i in range(4) for j in range(4) if i < j]


@pytest.mark.parametrize("graph", ["core", "full"])
def test_the_loss_of_three_views_is_the_mean_of_a_plain_loop_over_the_graphs_pairs(graph):
    views = [unit(6, 5, seed=s) for s in range(3)]
    pairs = {"core": [(0, 1), (0, 2)], "full": [(0, 1), (0, 2), (1, 2)]}[graph]
    expected = sum(plain_pair_loss(views[a], views[b], 0.3) for i, j in pairs for a, b in ((i, j), (j, i)))
    loss, metrics = multiview_loss(views, graph, 0.3)
    assert loss.item() == pytest.approx(expected / (2 * len(pairs)), rel=1e-5)
    assert 0 <= metrics["acc"] <= 1


def test_with_queues_the_negatives_of_view_j_are_queue_j():
    views = [unit(4, 5, seed=s) for s in range(3)]
    queues = [KeyQueue(7, 5, random=True) for _ in range(3)]
    keys = [q.current() for q in queues]
    expected = [plain_pair_loss(views[a], views[b], 0.5, keys[b]) for a, b in ((0, 1), (1, 0), (0, 2), (2, 0))]
    loss, _ = multiview_loss(views, "core", 0.5, queues=queues)
    assert loss.item() == pytest.approx(sum(expected) / 4, rel=1e-5)


class FakeViews(nn.Module):
    """Three views of (B, 4) inputs: each a linear map of its own; latents a (B, 2, dim) sequence."""

    def __init__(self):
        super().__init__()
        self.maps = nn.ModuleList(nn.Linear(4, d) for d in (3, 5, 2))
        self.dims = [3, 5, 2]

    def forward(self, x):
        return [m(x) for m in self.maps]

    def latents(self, x):
        return [(m(x)[:, None].expand(-1, 2, -1), m(x)[:, None].expand(-1, 2, -1)) for m in self.maps]


def test_the_model_pushes_each_views_embeddings_to_its_queue_in_training_only_and_concatenates_features():
    model = CMC(FakeViews(), CMCConfig(projection=6, negatives="queue", queue=10, graph="full"))
    assert model.chance_loss(8, 1) == pytest.approx(math.log(11))
    x = torch.randn(8, 4)
    before = [q.keys.clone() for q in model.queues]
    model.eval()(x)
    assert all(torch.equal(b, q.keys) for b, q in zip(before, model.queues))
    loss, _ = model.train()(x)
    loss.backward()
    embeddings = model.embed_views(x)
    for q, e in zip(model.queues, embeddings):
        assert torch.allclose(q.keys[:8], e.detach()) and int(q.ptr) == 8
    z, c = model.embed(x)
    assert z.shape == c.shape == (8, 2, 10)
    assert CMC(FakeViews(), CMCConfig()).chance_loss(8, 1) == pytest.approx(math.log(8))


def test_on_colour_images_it_contrasts_l_and_ab_encoders_and_probes_their_concatenated_grids(colour):
    cfg = complete_config(load_config(None, [*IMAGE, f"data.images={colour}"]))
    check_config(cfg)
    model = build_model(cfg)
    encoders = model.views.encoders
    assert [e.body[0].in_channels for e in encoders] == [1, 2]  # L and ab
    x = torch.rand(4, 3, 16, 16)
    loss, metrics = model.train()(x)
    assert abs(loss.item() - math.log(4)) < 0.5 and set(metrics) == {"acc"}
    z, c = model.embed(x)
    assert z.shape == (4, 3, 3, 32) and torch.equal(z, c)


def test_it_lowers_its_loss_through_the_command_line_on_colour_images(colour, tmp_path, capsys):
    code, out, err = cli(capsys, "pretrain", *IMAGE, f"data.images={colour}", "train.max_steps=60",
                         "train.val_every=60", "train.val_batches=1", f"train.out_dir={tmp_path}")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["chance_loss"] == pytest.approx(math.log(16))
    assert summary["train_loss"] < summary["chance_loss"] - 0.5, summary


def test_it_trains_on_speech_windows_through_the_command_line(tmp_path, capsys):
    code, out, err = cli(capsys, "pretrain", *AUDIO, "train.max_steps=40", "train.val_every=40",
                         "train.val_batches=2", f"train.out_dir={tmp_path}")
    assert code == 0, err
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["train_loss"] < summary["chance_loss"] - 0.3, summary


def test_its_speech_features_are_both_views_frame_by_frame():
    cfg = complete_config(load_config(None, AUDIO))
    check_config(cfg)
    model = build_model(cfg).eval()
    z, c = model.embed(torch.randn(2, 1, 2048))
    assert z.shape == (2, 2048 // 40, 2 * 64) and c.shape == (2, 2048 // 40, 2 * 64)


def test_grey_images_are_refused_before_anything_runs(tmp_path, capsys):
    grey = toy_image_store(tmp_path / "grey", 4, 2)
    code, _, err = cli(capsys, "pretrain", *IMAGE, f"data.images={grey}", f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and "grey (1 channel)" in err and not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("overrides, match", [
    (["model.augment.grey=0.2"], r"model\.augment\.grey=0\.2 change"),
    (["objective.queue=64"], r"objective\.queue=64 does nothing without objective\.negatives=queue"),
    (["data.batch_size=1"], "has no negatives"),
])
def test_image_settings_it_cannot_learn_from_are_refused(colour, overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(complete_config(load_config(None, [*IMAGE, f"data.images={colour}", *overrides])))


@pytest.mark.parametrize("overrides, match", [
    (["model.encoder.kind=lfb"], "set model.encoder.kind=conv"),
    (["model.encoder.hop=160"], r"set model\.encoder\.hop=40"),
])
def test_speech_views_that_cannot_line_up_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(complete_config(load_config(None, [*AUDIO, *overrides])))
