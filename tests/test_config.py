import importlib.util
from pathlib import Path

import pytest
import yaml

from seqcpc.builders import MODEL_SIZES, build_model, check_config
from seqcpc.config import Config, load_config, resolve
from seqcpc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "recipes").rglob("*.yaml"))


def test_defaults_are_the_papers_audio_model():
    cfg = Config()
    assert (cfg.model.encoder.dim, cfg.model.context.dim, cfg.model.predictor.steps) == (512, 256, 12)
    assert cfg.model.loss.num_negatives == 128 and cfg.data.window == 20480


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
    ({"model": {"predictor": {"steps": 200}}}, "predictor.steps=200"),
    ({"model": {"loss": {"num_negatives": 10_000}}}, "num_negatives=10000"),
    ({"model": {"loss": {"negatives": "sequence", "num_negatives": 200}}}, "num_negatives=200"),
    ({"model": {"encoder": {"kernels": [4], "strides": [2, 2]}}}, "same length"),
])
def test_impossible_shapes_are_refused(overrides, match):
    with pytest.raises(ConfigError, match=match):
        check_config(resolve(overrides))


@pytest.mark.parametrize("name", MODEL_SIZES)
def test_every_named_size_builds(name):
    cfg = resolve({"model": {"size": name}})
    assert check_config(cfg) > cfg.model.predictor.steps
    build_model(cfg.model)


@pytest.mark.parametrize("path", SHIPPED, ids=[str(p.relative_to(ROOT / "recipes")) for p in SHIPPED])
def test_every_shipped_config_loads_and_builds(path):
    data = yaml.safe_load(path.read_text())
    assert path.read_text().startswith("# "), "a shipped config opens with the command that runs it"
    corpus = data.pop("corpus", None)  # a recipe's own section: the data_prep script it runs first
    if corpus is not None:
        assert importlib.util.find_spec(f"data_prep.{corpus['script']}") is not None
    cfg = resolve(data)
    check_config(cfg)
    build_model(cfg.model)


def test_there_are_shipped_configs():
    assert SHIPPED
