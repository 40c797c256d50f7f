"""Typed run configuration: dataclasses filled from YAML plus `key=value` overrides, checked strictly.

An unknown key, a value of the wrong type or a value outside a field's choices fails with a ConfigError that
names the key and what is allowed. `model.size` names a preset (see seqcpc.builders.MODEL_SIZES) whose fields
are the base that the rest of `model:` overrides.
"""
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seqcpc.errors import ConfigError


def choice(default, choices):
    return field(default=default, metadata={"choices": tuple(choices)})


@dataclass
class EncoderConfig:
    in_channels: int = 1
    dim: int = 512
    kernels: list[int] = field(default_factory=lambda: [10, 8, 4, 4, 4])
    strides: list[int] = field(default_factory=lambda: [5, 4, 2, 2, 2])
    norm: str = choice("batch", ["batch", "layer", "instance", "none"])


@dataclass
class ContextConfig:
    kind: str = choice("gru", ["gru", "lstm", "transformer", "masked_conv"])  # masked_conv: image grids
    dim: int = 256
    layers: int = 1
    heads: int = 4  # transformer only
    kernel: int = 3  # masked_conv only: kernel side of its row-causal convolutions


@dataclass
class PatchConfig:
    """Image models only: the patch grid and the per-patch ResNet."""
    size: int = 8  # patch side in pixels
    stride: int = 4  # pixels between patches (size / 2: 50% overlap)
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # ResNet stage widths; each halves the side
    blocks: int = 1  # residual blocks per stage
    directions: int = 1  # 1: top-down; up to 4 by rotating the grid
    shared_context: bool = True  # one context network for every direction (else one each)


@dataclass
class AugmentConfig:
    """Image models only: CPC v2's patch augmentations, applied in training (seqcpc/augment.py)."""
    jitter: int = 1  # random shift of each patch, up to this many pixels
    flip: bool = True  # random horizontal flips
    colour_drop: float = 0.0  # RGB: chance of keeping one of the three channels
    grey: float = 0.0  # chance of turning an RGB patch grey
    per_patch: bool = True  # a draw per patch (else one per image)


@dataclass
class PredictorConfig:
    kind: str = choice("linear", ["linear", "mlp"])
    steps: int = 12  # K: predict z[t+1] .. z[t+K]
    hidden: int = 256  # mlp only
    per_step: bool = False  # mlp only: one network per k instead of a shared hidden layer


@dataclass
class LossConfig:
    negatives: str = choice("batch", ["batch", "sequence", "group", "all"])
    num_negatives: int = 128  # ignored when negatives = all
    normalize: bool = False  # cosine instead of dot-product scores
    temperature: float = 1.0


@dataclass
class ModelConfig:
    size: typing.Optional[str] = None  # a named preset, applied before the fields below
    modality: str = choice("audio", ["audio", "image"])
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


@dataclass
class DataConfig:
    kind: str = choice("synthetic", ["synthetic", "manifest", "images"])
    window: int = 20480  # input samples per training window (audio)
    batch_size: int = 8  # per device
    num_workers: int = 0
    batching: str = choice("uniform", ["uniform", "speaker", "utterance"])  # manifest: one speaker / utterance a batch
    manifest: str = ""  # manifest: a prepared corpus's manifest.tsv (train split to train, test to validate)
    sample_rate: int = 16000  # manifest: the rate windows are read at (files at other rates are resampled)
    allow_outside_paths: bool = False  # manifest: let rows point outside the manifest's folder
    on_bad_file: str = choice("skip", ["skip", "stop"])  # manifest: leave out (and list) or stop at a bad file
    images: str = ""  # images: a folder written by data_prep/idx_images.py or data_prep/image_folder.py
    num_sequences: int = 512  # synthetic: training sequences
    val_sequences: int = 64  # synthetic: validation sequences
    groups: int = 8  # synthetic: number of "speakers" (sources with their own frequencies)


@dataclass
class OptimConfig:
    lr: float = 2e-4  # peak learning rate
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay ends at lr * min_lr_ratio
    weight_decay: float = 0.0
    grad_clip: float = 1.0  # max gradient norm; 0 disables clipping


@dataclass
class FabricConfig:
    accelerator: str = "auto"
    devices: typing.Union[int, str] = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "auto"  # 32-true on CPU, bf16-mixed on GPU


@dataclass
class TrainConfig:
    out_dir: str = "runs/default"
    seed: int = 0
    max_steps: int = 1000
    log_every: int = 10
    val_every: int = 100
    val_batches: int = 0  # batches per validation (a fixed subset); 0: the whole validation split
    ckpt_every: int = 100
    max_bad_steps: int = 10  # steps with non-finite loss or gradients skipped before the run stops
    compile: bool = False  # torch.compile the model: seconds to compile, 5-13% faster CPU steps (benchmarks/)


@dataclass
class ProbeConfig:
    window: int = 0  # samples per probe window; 0: data.window
    windows_per_utterance: int = 2  # speaker probes: non-overlapping windows cut from each utterance
    utterances_per_speaker: int = 0  # speaker probes: utterances per speaker and split; 0: all
    phone_utterances_per_speaker: int = 0  # phone probe: utterances per speaker and split; 0: all
    phone_frames: int = 200_000  # cap on the frames (random subset) each split gives the phone probe
    mfcc: int = 13  # coefficients of the MFCC baseline
    n_way: int = 5  # few-shot episodes on held-out speakers
    shots: list[int] = field(default_factory=lambda: [1, 5])
    n_query: int = 5
    episodes: int = 300
    label_fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])  # images: label efficiency
    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2])  # images: probe penalties tried
    pool: int = 2  # images: the latent grid is average-pooled to pool x pool cells, then flattened
    supervised_epochs: int = 30  # images: the from-scratch baseline's epochs on each label subset ...
    supervised_max_steps: int = 400  # ... capped at this many steps
    supervised_lr: float = 2e-3


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    fabric: FabricConfig = field(default_factory=FabricConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    probe: ProbeConfig = field(default_factory=ProbeConfig)


def _convert(value, tp, key):
    """Check `value` against the annotation `tp`; return it converted (int -> float, dict -> dataclass)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, key)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _convert(value, arg, key)
            except ConfigError:
                pass
        names = " or ".join(getattr(a, "__name__", str(a)) for a in typing.get_args(tp))
        raise ConfigError(f"{key}: expected {names}, got {value!r}")
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        (item,) = typing.get_args(tp)
        return [_convert(v, item, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return None
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 2e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if (tp is int and isinstance(value, bool)) or not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r} ({type(value).__name__})")
    return value


def from_dict(cls, data: dict, prefix: str = ""):
    """Build dataclass `cls` from a nested dict, refusing unknown keys, wrong types and bad choices."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}; allowed keys: {', '.join(fields)}")
        kwargs[name] = _convert(value, hints[name], key)
        choices = fields[name].metadata.get("choices")
        if choices and kwargs[name] not in choices:
            raise ConfigError(f"{key}: {kwargs[name]!r} is not one of {', '.join(choices)}")
    return cls(**kwargs)


def _merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def apply_override(data: dict, override: str) -> None:
    """Apply one `a.b.c=value` override in place; the value is parsed as YAML (so 3, 1e-3, true, [1, 2])."""
    if "=" not in override:
        raise ConfigError(f"override {override!r} is not of the form key=value")
    key, raw = override.split("=", 1)
    *parents, leaf = key.strip().split(".")
    node = data
    for p in parents:
        node = node.setdefault(p, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {key!r}: {p!r} is not a section")
    node[leaf] = yaml.safe_load(raw)


def resolve(data: dict) -> Config:
    """Nested dict (as in YAML) -> Config, with the named model size applied first."""
    from seqcpc.builders import MODEL_SIZES

    model = data.get("model") or {}
    if isinstance(model, dict) and model.get("size") is not None:
        size = model["size"]
        if size not in MODEL_SIZES:
            raise ConfigError(f"model.size: unknown size {size!r}; known sizes: {', '.join(MODEL_SIZES)}")
        data = {**data, "model": _merge(dataclasses.asdict(MODEL_SIZES[size]()), model)}
    return from_dict(Config, data)


RECIPE_SECTIONS = ("corpus", "dataset")  # a recipe's data_prep step (recipes/common.py); not part of a run's config


def load_config(path=None, overrides=()) -> Config:
    data = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    for override in overrides:
        apply_override(data, override)
    return resolve({k: v for k, v in data.items() if k not in RECIPE_SECTIONS})


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def with_overrides(cfg: Config, overrides=()) -> Config:
    """A copy of `cfg` with `key=value` overrides applied and checked."""
    data = to_dict(cfg)
    for override in overrides:
        apply_override(data, override)
    return resolve(data)
