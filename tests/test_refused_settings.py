"""Settings that would run and mislead, refused through the real `seqcpc pretrain` before anything is written:
numbers that are not finite, objectives left without negatives (a perfect score that means nothing), and
options that do nothing (a momentum that never moves the key encoder, a pruned twin that prunes nothing, a pool
larger than the latents, an online probe's class count while the probe is off)."""
import pytest

from conftest import TINY, TINY_ANY, cli
from image_fixtures import toy_image_store
from seqcpc.assembly import check_config, complete_config
from seqcpc.config import load_config

SIMCLR = [*TINY_ANY, "objective.name=simclr"]
IMAGE = ["model.size=image_small", "model.encoder.dim=16", "model.patches.widths=[8,16]",
         "data.batch_size=4"]  # 16 px toy images: a 3x3 patch grid


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return toy_image_store(tmp_path_factory.mktemp("settings") / "stripes")


def refused(capsys, tmp_path, *overrides) -> str:
    """The one line `seqcpc pretrain` refuses the overrides with; nothing is written."""
    out = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", *overrides, "train.max_steps=1", f"train.out_dir={out}")
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()
    return err


@pytest.mark.parametrize("overrides, key", [
    ([*TINY, "optim.lr=inf"], "optim.lr=inf"),
    ([*TINY, "optim.lr=nan"], "optim.lr=nan"),
    ([*TINY, "optim.weight_decay=.inf"], "optim.weight_decay=inf"),
    ([*TINY, "objective.loss.temperature=inf"], "objective.loss.temperature=inf"),
    ([*TINY, "objective.predictor.scale=-inf"], "objective.predictor.scale=-inf"),
    ([*SIMCLR, "objective.temperature=inf"], "objective.temperature=inf"),
    ([*SIMCLR, "objective.views.gain_db=inf"], "objective.views.gain_db=inf"),
    ([*SIMCLR, "objective.views.snr_db=[10, .inf]"], "objective.views.snr_db=[10.0, inf]"),  # a field with no range
    ([*SIMCLR, "objective.views.speed=[0.9, .nan]"], "objective.views.speed=[0.9, nan]"),
])
def test_numbers_that_are_not_finite_are_refused_with_the_key(capsys, tmp_path, overrides, key):
    err = refused(capsys, tmp_path, *overrides)
    assert key in err and "finite" in err


@pytest.mark.parametrize("objective", ["simclr", "sdclr"])
def test_in_batch_negatives_from_a_batch_of_one_are_refused(capsys, tmp_path, objective):
    err = refused(capsys, tmp_path, *TINY_ANY, f"objective.name={objective}", "data.batch_size=1")
    assert f"objective.name={objective}" in err and "data.batch_size=1" in err and "no negatives" in err


def test_one_sample_a_device_on_two_devices_has_negatives_and_moco_needs_none_from_the_batch():
    for extra in (["objective.name=simclr", "fabric.devices=2"], ["objective.name=moco", "model.encoder.norm=layer"]):
        check_config(complete_config(load_config(None, [*TINY_ANY, "data.batch_size=1", *extra])))


@pytest.mark.parametrize("overrides, key, why", [
    ([*SIMCLR, "objective.name=moco", "objective.momentum=1.0"], "objective.momentum=1.0", "never moves"),
    ([*SIMCLR, "objective.name=sdclr", "objective.prune_ratio=0"], "objective.prune_ratio=0.0", "network itself"),
    ([*TINY, "objective.pruned_competitor=true", "objective.prune_ratio=0"], "objective.prune_ratio=0.0",
     "dense model itself"),
    ([*TINY, "objective.classes=5"], "objective.classes=5", "objective.online_probe=true"),
    ([*TINY, "objective.phone_classes=5"], "objective.phone_classes=5", "objective.online_phones=true"),
    ([*TINY, "objective.prune_ratio=0.5"], "objective.prune_ratio=0.5", "objective.pruned_competitor=true"),
    ([*TINY, "objective.loss.queue=64"], "objective.loss.queue=64", "objective.loss.negatives=queue"),
    ([*TINY, "objective.loss.negatives=all"], "objective.loss.num_negatives=32", "negatives other than all"),
    ([*TINY, "objective.predictor.hidden=64"], "objective.predictor.hidden=64", "objective.predictor.kind=mlp"),
    ([*SIMCLR, "objective.pool=2"], "objective.pool=2", "averaged over time"),
])
def test_options_that_would_do_nothing_are_refused_with_what_makes_them_matter(capsys, tmp_path, overrides, key,
                                                                                 why):
    err = refused(capsys, tmp_path, *overrides)
    assert key in err and why in err


@pytest.mark.parametrize("overrides, key, why", [
    (["objective.name=simclr", "objective.pool=4"], "objective.pool=4", "set objective.pool <= 3"),
    (["objective.name=protonet", "objective.pool=4"], "objective.pool=4", "set objective.pool <= 3"),
    (["objective.name=rotation", "objective.pool=4"], "objective.pool=4", "set objective.pool <= 3"),
    (["objective.predictor.first=1", "objective.predictor.steps=2", "probe.pool=4"], "probe.pool=4",
     "set probe.pool <= 3"),
    (["objective.name=matching", "objective.fce_steps=5"], "objective.fce_steps=5", "objective.fce=true"),
])
def test_image_options_that_would_do_nothing_are_refused(capsys, tmp_path, store, overrides, key, why):
    err = refused(capsys, tmp_path, *IMAGE, f"data.images={store}", *overrides)
    assert key in err and why in err


def test_an_option_of_another_objective_is_refused_by_the_loader(capsys, tmp_path):
    err = refused(capsys, tmp_path, *TINY_ANY, "objective.pruned_competitor=true", "objective.name=simclr")
    assert "'objective.pruned_competitor' applies only to objective.name=cpc" in err
