import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from image_fixtures import toy_image_store
from seqcpc import modalities
from seqcpc.audio.manifest import Utterance, write_manifest, write_phones
from seqcpc.builders import build_model, check_config, complete_config
from seqcpc.config import load_config, resolve, to_dict, with_overrides
from seqcpc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
YAMLS = sorted((ROOT / "recipes").rglob("*.yaml"))
TABLES = [p for p in YAMLS if "pretrain" in (yaml.safe_load(p.read_text()) or {})]  # table recipes' configs
FEWSHOT_TABLES = [p for p in TABLES if p.parent.name == "fewshot"]
IMAGE_TABLES = [p for p in TABLES if p.parent.name == "image"]
LONG_TAIL_TABLES = [p for p in TABLES if p.parent.name == "long_tail"]
SPEECH_CURVES = [p for p in TABLES if p.parent.name == "speech"]
SHIPPED = [p for p in YAMLS if p not in TABLES]
SIZES = [name for m in modalities.names() for name in modalities.get(m).sizes]


def test_defaults_are_the_papers_audio_model():
    cfg = resolve({})
    assert cfg.model.modality == "audio"
    assert (cfg.model.encoder.dim, cfg.model.context.dim, cfg.objective.predictor.steps) == (512, 256, 12)
    assert cfg.objective.loss.num_negatives == 128 and cfg.data.window == 20480


def test_unknown_key_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"'optim.lrr'.*did you mean 'lr'.*allowed keys: lr, warmup_steps"):
        resolve({"optim": {"lrr": 1e-3}})


@pytest.mark.parametrize("data, match", [
    ({"train": {"max_steps": "many"}}, "train.max_steps: expected int"),
    ({"train": {"max_steps": True}}, "train.max_steps: expected int"),
    ({"model": {"encoder": {"kernels": [10, "x"]}}}, r"model.encoder.kernels\[1\]: expected int"),
    ({"model": {"context": {"kind": "rnn"}}}, "model.context.kind: 'rnn' is not one of gru, lstm, transformer"),
    ({"model": "big"}, "model: expected a mapping"),
    ({"model": {"size": "huge"}}, "unknown size 'huge'"),
])
def test_bad_values_are_refused_with_the_key(data, match):
    with pytest.raises(ConfigError, match=match):
        resolve(data)


def test_overrides_parse_yaml_values_and_ints_pass_as_floats(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("optim:\n  lr: 1\n")
    cfg = load_config(path, ["train.max_steps=7", "model.encoder.kernels=[4, 4]", "model.encoder.strides=[2,2]",
                             "fabric.devices=auto"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.train.max_steps == 7 and cfg.model.encoder.kernels == [4, 4] and cfg.fabric.devices == "auto"


def test_size_is_the_base_and_fields_override_it():
    cfg = resolve({"model": {"size": "synthetic_tiny", "context": {"dim": 32}}})
    assert cfg.model.encoder.dim == 64 and cfg.model.context.dim == 32 and cfg.model.context.kind == "gru"


def test_missing_config_file_and_bad_override():
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("nope.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["train.max_steps"])


@pytest.mark.parametrize("overrides, match", [
    ({"data": {"window": 100}}, "shorter than the encoder's receptive field"),
    ({"objective": {"predictor": {"steps": 200}}}, "predictor.steps=200"),
    ({"objective": {"loss": {"num_negatives": 10_000}}}, "num_negatives=10000"),
    ({"objective": {"loss": {"negatives": "sequence", "num_negatives": 200}}}, "num_negatives=200"),
    ({"model": {"encoder": {"kernels": [4], "strides": [2, 2]}}}, "same length"),
])
def test_impossible_shapes_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(resolve(overrides))



def image_data(tmp_path, model: dict, size: int) -> dict:
    """The data section of an image config, pointed at a tiny store with the model's channels."""
    channels = resolve({"model": model}).model.encoder.in_channels or 1  # unset: the model follows the data
    return {"kind": "images", "images": str(toy_image_store(tmp_path / "toy", 4, 2, size, channels))}


@pytest.mark.parametrize("name", SIZES)
def test_every_named_size_builds(name, tmp_path):
    data = {"model": {"size": name}}
    if resolve(data).model.modality == "image":
        data["data"] = image_data(tmp_path, data["model"], size=64)
    cfg = complete_config(resolve(data))
    assert check_config(cfg) > cfg.objective.predictor.steps
    build_model(cfg)


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT / "recipes")) for p in SHIPPED])
def test_every_shipped_config_loads_completes_checks_and_builds(path, tmp_path):
    data = yaml.safe_load(path.read_text())
    assert path.read_text().startswith("# "), "a shipped config opens with the command that runs it"
    prep = load_config(path).prepare  # the one loader reads a recipe config, prepare section included
    if prep.script:
        assert importlib.util.find_spec(f"data_prep.{prep.script}") is not None
    if data["data"]["kind"] == "images":  # the real data set is not here: a tiny one of the size it prepares
        data["data"].update(image_data(tmp_path, data["model"], prep.options.get("size", 28)))
    if data["data"]["kind"] == "manifest":  # nor the corpus: a manifest whose speakers the check can count
        data["data"]["manifest"] = speech_manifest(tmp_path, data["data"]["window"])
    given = resolve(data)
    cfg = complete_config(given)
    assert given == resolve(data), "completing returns a new config and leaves the given one as it was"
    check_config(cfg)
    model = build_model(cfg)
    saved = resolve(yaml.safe_load(yaml.safe_dump(to_dict(cfg))))  # as config.yaml and checkpoints keep it
    assert saved == cfg and complete_config(saved) == cfg
    shapes = {name: t.shape for name, t in model.state_dict().items()}
    assert {name: t.shape for name, t in build_model(saved).state_dict().items()} == shapes


@pytest.mark.parametrize("path", SPEECH_CURVES, ids=[p.name for p in SPEECH_CURVES])
def test_every_speech_curves_config_gives_run_configs_that_load_and_build(path, tmp_path):
    from recipes.speech.curves import CurvesConfig, run_config
    from recipes.common import read_yaml_config

    assert path.read_text().startswith("# "), "a shipped config opens with the command that runs it"
    curves = read_yaml_config(path, CurvesConfig)
    window = load_config(ROOT / curves.pretrain).data.window
    for name, overrides in curves.runs.items():
        cfg = run_config(curves, name, [*overrides, f"data.manifest={speech_manifest(tmp_path, window)}"])
        assert cfg.train.max_steps == curves.steps[-1] and cfg.train.keep_steps == curves.steps
        cfg = complete_config(cfg)
        check_config(cfg)
        build_model(cfg)


def speech_manifest(tmp_path, window: int) -> str:
    """A manifest of 3 speakers' train utterances longer than the window, with their frame labels (rows and
    labels only: a config check reads no audio, and counting speakers and phones for objective.online_probe and
    objective.online_phones needs only those)."""
    rows = [Utterance(f"s{i}_{j}", f"audio/s{i}_{j}.flac", f"s{i}", "train", 2 * window / 16000, 16000, 1,
                      2 * window) for i in range(3) for j in range(2)]
    write_manifest(tmp_path / "manifest.tsv", rows)
    write_phones(tmp_path / "phones.txt", {row.id: [0, 1, 2] for row in rows})
    return str(tmp_path / "manifest.tsv")


def test_there_are_shipped_configs():
    assert SHIPPED and FEWSHOT_TABLES and IMAGE_TABLES and LONG_TAIL_TABLES and SPEECH_CURVES
    assert set(TABLES) == set(FEWSHOT_TABLES + IMAGE_TABLES + LONG_TAIL_TABLES + SPEECH_CURVES)


@pytest.mark.parametrize("path", IMAGE_TABLES, ids=[p.name for p in IMAGE_TABLES])
def test_every_image_table_config_gives_run_configs_that_load_and_build(path, tmp_path):
    from recipes.image.table import read_table_config

    assert path.read_text().startswith("# "), "a shipped config opens with the command that runs it"
    table = read_table_config(path)
    base = load_config(ROOT / table.pretrain, table.overrides)
    objectives = set()
    for name, overrides in table.runs.items():
        data = to_dict(with_overrides(base, overrides))
        data["data"].update(image_data(tmp_path, data["model"], base.prepare.options.get("size", 28)))
        cfg = complete_config(resolve(data))
        check_config(cfg)
        objectives.add(cfg.objective.name)
        # inpainting's plateau is the loss of its fill, measured in training: NaN before
        assert cfg.objective.name == "inpainting" or build_model(cfg).chance_loss(8, 36) > 1
    assert {"cpc", "rotation", "jigsaw", "inpainting"} <= objectives
    if path.name == "table_cpu.yaml":
        assert {"dim", "amdim"} <= objectives
    if path.name.startswith("colour_table"):
        assert objectives >= {"simclr", "moco", "sdclr", "dim", "amdim", "cmc", "colourise"}
        assert base.model.encoder.in_channels == 3


@pytest.mark.parametrize("path", FEWSHOT_TABLES, ids=[str(p.relative_to(ROOT / "recipes")) for p in FEWSHOT_TABLES])
def test_every_few_shot_table_config_gives_learner_configs_that_load_and_build(path, tmp_path):
    from recipes.fewshot.run import read_table_config

    assert path.read_text().startswith("# "), "a shipped config opens with the command that runs it"
    table = read_table_config(path)
    base = load_config(ROOT / table.pretrain, table.overrides)
    for method in table.methods:
        data = to_dict(with_overrides(base, [f"objective.name={method}", *table.learner,
                                             *table.per_method.get(method, [])]))
        if data["data"]["kind"] == "images":
            data["data"].update(image_data(tmp_path, data["model"], base.prepare.options.get("size", 28)))
        cfg = complete_config(resolve(data))
        check_config(cfg)
        assert build_model(cfg).chance_loss(1, 1) == pytest.approx(np.log(cfg.objective.n_way))


@pytest.mark.parametrize("channels", [1, 3])
def test_input_channels_follow_the_prepared_images_unless_set(tmp_path, channels):
    toy_image_store(tmp_path / "toy", 4, 2, size=28, channels=channels)
    data = {"kind": "images", "images": str(tmp_path / "toy"), "batch_size": 8}
    cfg = resolve({"model": {"size": "image_small"}, "data": data})
    assert cfg.model.encoder.in_channels is None
    completed = complete_config(cfg)
    assert cfg.model.encoder.in_channels is None and completed.model.encoder.in_channels == channels
    check_config(completed)
    cfg = completed
    model = build_model(cfg)
    assert model(torch.rand(2, channels, 28, 28))[0].isfinite()
    other = 4 - channels  # 3 for grey images, 1 for RGB ones
    with pytest.raises(ConfigError, match=f"in_channels={other} but the images .* leave it unset"):
        check_config(resolve({"model": {"size": "image_small", "encoder": {"in_channels": other}}, "data": data}))


def test_an_image_model_without_channels_is_refused_when_built_alone():
    with pytest.raises(ConfigError, match="in_channels is not set"):
        build_model(resolve({"model": {"size": "image_small"}}))


@pytest.mark.parametrize("model,objective,match", [
    ({"patches": {"size": 40}}, {}, "larger than the 28x28 images"),
    ({}, {"predictor": {"steps": 6}}, "rows of the 6x6 patch grid"),
    ({"encoder": {"in_channels": 3}}, {}, "1 channel"),
    ({"patches": {"directions": 5}}, {}, "directions=5"),
    ({"context": {"kind": "gru"}}, {}, "model.context.kind: 'gru' is not one of masked_conv"),
    ({}, {"loss": {"negatives": "group"}}, "needs batches that carry labels, which image data does not give"),
    ({}, {"loss": {"negatives": "batch", "num_negatives": 10_000}}, "between 1 and the 288"),
])
def test_impossible_image_configs_are_refused(tmp_path, model, objective, match):
    toy_image_store(tmp_path / "toy", 4, 2, size=28)
    with pytest.raises(ConfigError, match=match):
        check_config(resolve({"model": {"size": "image_small", **model}, "objective": objective,
                              "data": {"kind": "images", "images": str(tmp_path / "toy"), "batch_size": 8}}))


def test_speaker_batches_of_images_are_refused(tmp_path):
    toy_image_store(tmp_path / "toy", 4, 2, size=28)
    with pytest.raises(ConfigError, match="'data.batching' applies only to audio models"):
        resolve({"model": {"size": "image_small"},
                 "data": {"kind": "images", "images": str(tmp_path / "toy"), "batching": "speaker"}})


@pytest.mark.parametrize("data, match", [
    ({"model": {"size": "image_small", "encoder": {"kernels": [4]}}}, "'model.encoder.kernels' applies only to audio"),
    ({"model": {"patches": {"size": 4}}}, "'model.patches' applies only to image"),
    ({"model": {"modality": "audio"}, "probe": {"pool": 3}}, "'probe.pool' applies only to image"),
    ({"model": {"size": "image_small"}, "data": {"kind": "synthetic"}}, "data.kind: 'synthetic' is not one of images"),
    ({"model": {"size": "image_small", "modality": "audio"}}, "image_small is a image model, but model.modality=audio"),
    ({"model": {"modality": "video"}}, "model.modality: 'video' is not one of audio, image"),
    ({"corpus": {"script": "espeak_corpus"}}, "section 'corpus' is now called 'prepare'"),
    ({"trian": {}}, "unknown config section 'trian' .did you mean 'train'"),
])
def test_fields_of_another_modality_and_unknown_sections_are_refused(data, match):
    with pytest.raises(ConfigError, match=match):
        resolve(data)


def test_synthetic_speaker_batches_are_refused():
    with pytest.raises(ConfigError, match="data.batching=speaker needs a speech corpus"):
        check_config(resolve({"data": {"batching": "speaker"}}))


def test_a_resolved_config_round_trips_through_a_dict():
    for data in ({}, {"model": {"size": "image_small"}, "data": {"images": "x"}}):
        cfg = resolve(data)
        assert resolve(to_dict(cfg)) == cfg


@pytest.mark.parametrize("text, match", [
    ("model:\n\tsize: audio_paper\n", "not valid YAML"),
    ("model: [", "not valid YAML"),
    ("- 1\n- 2\n", "must hold a mapping"),
    (b"\x00\xff\xfe\x89PNG binary", "not valid YAML"),
])
def test_malformed_yaml_is_one_clear_error(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_bytes(text) if isinstance(text, bytes) else path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


@pytest.mark.parametrize("override, match", [
    ("optim.grad_clip=-1", r"optim.grad_clip=-1.0: must be >= 0"),
    ("optim.lr=-0.001", r"optim.lr=-0.001: must be > 0"),
    ("optim.lr=0", r"optim.lr=0.0: must be > 0"),
    ("optim.weight_decay=-1", "must be >= 0"),
    ("optim.min_lr_ratio=2", "must be >= 0 and <= 1"),
    ("data.num_workers=-1", r"data.num_workers=-1: must be >= 0"),
    ("train.log_every=0", r"train.log_every=0: must be >= 1"),
    ("train.val_every=0", "must be >= 1"),
    ("train.ckpt_every=0", "must be >= 1"),
    ("train.val_batches=-2", "must be >= 0"),
    ("train.max_steps=0", "must be >= 1"),
    ("model.encoder.kernels=[10,-8]", r"model.encoder.kernels=\[10, -8\]: must be >= 1 \(each item\)"),
    ("objective.loss.temperature=0", "must be > 0"),
    ("probe.n_way=1", "must be >= 2"),
    ("probe.shots=[0]", "must be >= 1"),
])
def test_numbers_outside_their_range_are_refused_with_the_key(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, [override])


@pytest.mark.parametrize("override, match", [
    ("model.patches.directions=5", "must be >= 1 and <= 4"),
    ("model.augment.colour_drop=1.5", "must be >= 0 and <= 1"),
    ("probe.label_fractions=[0.5,0]", r"must be > 0 and <= 1 \(each item\)"),
    ("probe.l2_grid=[-1]", "must be >= 0"),
])
def test_image_numbers_outside_their_range_are_refused(override, match):
    with pytest.raises(ConfigError, match=match):
        load_config(None, ["model.size=image_small", override])


@pytest.mark.parametrize("text, match", [
    ("", "is empty"),
    ("# only a comment\n", "is empty"),
    ("optim:\n  lr: 1.0e-3\n  lr: 2.0e-3\n", "key 'lr' is given twice"),
    ("train: {}\ntrain: {}\n", "key 'train' is given twice"),
])
def test_empty_files_and_duplicate_keys_are_refused(tmp_path, text, match):
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(path)


def test_home_and_environment_variables_in_paths_are_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SEQCPC_TEST_DATA", "/data/corpora")
    cfg = load_config(None, ["train.out_dir=~/runs/a", "data.manifest=$SEQCPC_TEST_DATA/ls/manifest.tsv",
                             "prepare.options={out: ~/prepared}"])
    assert cfg.train.out_dir == f"{tmp_path}/runs/a" and cfg.data.manifest == "/data/corpora/ls/manifest.tsv"
    assert cfg.prepare.options["out"] == f"{tmp_path}/prepared"
    monkeypatch.delenv("SEQCPC_TEST_DATA")
    with pytest.raises(ConfigError, match=r"data.manifest=\$SEQCPC_TEST_DATA/m.tsv: the environment variable"):
        load_config(None, ["data.manifest=$SEQCPC_TEST_DATA/m.tsv"])


@pytest.mark.parametrize("path", LONG_TAIL_TABLES, ids=[p.name for p in LONG_TAIL_TABLES])
def test_every_long_tail_table_config_gives_run_configs_that_load_and_build(path, tmp_path):
    """Every method of the long-tailed tables builds on its modality's data, with the same budget."""
    from recipes.long_tail import images, speech

    assert path.read_text().startswith("# "), "a shipped config opens with the command that runs it"
    module = images if (yaml.safe_load(path.read_text())["pretrain"]).endswith(("fmnist_cpu.yaml", "fmnist_gpu.yaml")) \
        else speech
    table = module.read_table(path)
    base = load_config(ROOT / table.pretrain, table.overrides)
    objectives, budgets = set(), set()
    for spec in table.methods.values():
        data = to_dict(with_overrides(base, spec["overrides"] if isinstance(spec, dict) else spec))
        if data["model"]["modality"] == "image":
            data["data"].update(image_data(tmp_path, data["model"], 28))
        cfg = complete_config(resolve(data))
        check_config(cfg)
        objectives.add((cfg.objective.name, getattr(cfg.objective, "pruned_competitor", False)))
        budgets.add((cfg.train.max_steps, cfg.data.batch_size))
        assert build_model(cfg).chance_loss(cfg.data.batch_size, 36) > 1
    assert len(budgets) == 1  # the same steps and batch for every method
    expected = {("cpc", False), ("simclr", False), ("moco", False), ("sdclr", False)} if module is images else \
        {("cpc", False), ("cpc", True), ("simclr", False), ("sdclr", False)}
    assert objectives == expected


@pytest.mark.parametrize("old, new", [("model.objective=simclr", "'objective.name'"),
                                      ("model.predictor.steps=3", "'objective.predictor.steps'"),
                                      ("model.online_probe=true", "'objective.online_probe'"),
                                      ("model.meta.n_way=3", "'objective.n_way'"),
                                      ("model.contrastive.temperature=0.1", "'objective.temperature'"),
                                      ("model.views.length=100", "'objective.views.length'"),
                                      ("model.pretext.cells=2", "'objective.cells'")])
def test_a_config_of_the_form_before_objective_sections_is_told_the_new_key(old, new):
    with pytest.raises(ConfigError, match=f"config key '{old.split('=')[0]}' is now {new}"):
        load_config(None, [old])


def test_an_objective_section_is_its_objectives_own():
    assert load_config(None, ["objective.name=moco", "objective.momentum=0.9"]).objective.momentum == 0.9
    with pytest.raises(ConfigError, match="'objective.momentum' applies only to objective.name=moco"):
        load_config(None, ["objective.name=simclr", "objective.momentum=0.9"])
    with pytest.raises(ConfigError, match="objective.name: 'byol' is not one of cpc, simclr"):
        load_config(None, ["objective.name=byol"])
    with pytest.raises(ConfigError, match="objective.name=jigsaw does not work on audio data"):
        load_config(None, ["objective.name=jigsaw"])
    # an override of the name starts the section afresh; the other overrides apply to the new one
    cpc = load_config(None, ["objective.online_probe=true", "objective.predictor.steps=3"])
    switched = with_overrides(cpc, ["objective.temperature=0.5", "objective.name=simclr"])
    assert switched.objective.name == "simclr" and switched.objective.temperature == 0.5
    # CPC's defaults on images are CPC v2's task, a sub-section given in part keeps the rest of them
    image = load_config(None, ["model.size=image_small", "objective.predictor.steps=4"]).objective
    assert (image.predictor.first, image.predictor.steps, image.predictor.target_dim) == (3, 4, 64)
