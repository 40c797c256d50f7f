"""Typed run configuration: dataclasses filled from YAML plus `key=value` overrides, checked strictly.

A config has the sections model, data, probe (their fields depend on the modality), optim, fabric, train and
prepare (the data-preparation step a recipe runs first; `seqcpc pretrain` does not run it). The modality is
`model.modality`, else the one that owns `model.size`, else audio; its registry entry (seqcpc.modalities)
gives the dataclasses of its model, data and probe sections and its named sizes. `model.size` names a preset
whose fields are the base that the rest of `model:` overrides.

An unknown key, a key of another modality, a value of the wrong type or a value outside a field's choices fails
with a ConfigError that names the key and what is allowed. This module is the only config loader.
"""
import dataclasses
import difflib
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seqcpc import modalities
from seqcpc.errors import ConfigError


def choice(default, choices):
    return field(default=default, metadata={"choices": tuple(choices)})


def number(default, *, min=None, above=None, max=None):
    """A numeric field (or list of numbers) with its valid range: >= min, > above, <= max."""
    bounds = {k: v for k, v in (("min", min), ("above", above), ("max", max)) if v is not None}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=bounds)
    return field(default=default, metadata=bounds)


def path(default: str = ""):
    """A file or folder field: `~` and $VARIABLES in it are expanded when the config is read."""
    return field(default=default, metadata={"path": True})


def expand_path(key: str, value: str) -> str:
    expanded = os.path.expanduser(os.path.expandvars(value))
    if "$" in expanded:
        raise ConfigError(f"{key}={value}: the environment variable in it is not set")
    return expanded


def check_range(key: str, value, meta) -> None:
    """Refuse a value (each item of a list) outside the field's range, naming the key and the range."""
    for v in value if isinstance(value, list) else [value]:
        if v is None or not isinstance(v, (int, float)):
            continue
        low, above, high = meta.get("min"), meta.get("above"), meta.get("max")
        if (low is not None and v < low) or (above is not None and v <= above) or (high is not None and v > high):
            allowed = " and ".join(s for s in (low is not None and f">= {low}", above is not None and f"> {above}",
                                               high is not None and f"<= {high}") if s)
            raise ConfigError(f"{key}={value}: must be {allowed}" + (" (each item)" if isinstance(value, list) else ""))


@dataclass
class PredictorConfig:
    kind: str = choice("linear", ["linear", "mlp"])
    steps: int = number(12, min=1)  # K: the last offset predicted; z[t+first] .. z[t+K]
    hidden: int = number(256, min=1)  # mlp only
    per_step: bool = False  # mlp only: one network per k instead of a shared hidden layer
    first: int = number(1, min=1)  # the first offset predicted (CPC v2 skips the rows that overlap the context)
    target_dim: int = number(0, min=0)  # > 0: targets are z projected linearly to this dim (CPC v2: 64); 0: z
    scale: float = number(1.0, above=0)  # predictions are multiplied by this before scoring (CPC v2: 0.1)


@dataclass
class LossConfig:
    """The InfoNCE objective (seqcpc/objectives/infonce.py)."""
    negatives: str = choice("batch", ["batch", "sequence", "group", "all", "queue"])
    num_negatives: int = number(128, min=1)  # ignored when negatives = all; queue: also the targets pushed a step
    draw: str = choice("shared", ["shared", "position"])  # one draw per sequence, or per prediction position
    queue: int = number(4096, min=1)  # negatives = queue: past targets kept as extra negatives
    normalize: bool = False  # cosine instead of dot-product scores
    temperature: float = number(1.0, above=0)


@dataclass
class FewShotConfig:
    """The few-shot part of every modality's probe section: N-way K-shot episodes on classes never trained on.
    The recipes' frozen-feature probe runs n_way-way episodes; the episodic evaluation (seqcpc/fewshot/evaluate.py,
    `seqcpc probe --episodic`) runs every way of `ways` with every shot count."""
    n_way: int = number(5, min=2)
    shots: list[int] = number([1, 5], min=1)
    n_query: int = number(5, min=1)  # queries per class
    episodes: int = number(300, min=1)
    ways: list[int] = number([5, 20], min=2)  # episodic evaluation only


LEARNERS = ("protonet", "matching", "maml")  # the few-shot learners (seqcpc/fewshot/), trained on episodes
CONTRASTIVE = ("simclr", "moco", "sdclr")  # two augmented views of each sample (seqcpc/objectives/contrastive.py)
OBJECTIVES = ("cpc", *LEARNERS, *CONTRASTIVE)  # model.objective: what the loop trains (images add pretext tasks)
# sequences: the encoder and context trained to name the speaker (seqcpc/objectives/supervised.py); images have no
# such objective, their batches carry image indices, not labels (seqcpc/image/store.py)
SUPERVISED = "supervised"


@dataclass
class ContrastiveConfig:
    """SimCLR, MoCo v2 and SDCLR (model.objective simclr, moco or sdclr), and SDCLR's pruned competitor for CPC.
    The encoder's pooled output goes through a projection head (Linear, ReLU, Linear) before the loss."""
    hidden: int = number(512, min=1)  # the projection head's hidden layer
    projection: int = number(128, min=1)  # ... and its output: what the loss compares
    temperature: float = number(0.2, above=0)  # cosine similarities are divided by this
    momentum: float = number(0.99, min=0, max=1)  # moco: the key encoder's moving average keeps this much a step
    queue: int = number(4096, min=1)  # moco: keys of earlier batches kept as negatives
    prune_ratio: float = number(0.9, min=0, max=0.999)  # sdclr: share of the weights the pruned branch drops
    # cpc: add SDCLR's pruned branch, which predicts the dense branch's targets while the dense branch predicts
    # the pruned one's (seqcpc/core/model.py)
    pruned_competitor: bool = False
    pool: int = number(1, min=1)  # images: the latent grid averaged into pool x pool cells before the head


@dataclass
class MetaConfig:
    """Meta-learning on episodes (model.objective protonet, matching or maml; seqcpc/fewshot/). A training
    batch is one episode: n_way classes of the training split, k_shot support and n_query query items each."""
    n_way: int = number(5, min=2)
    k_shot: int = number(1, min=1)
    n_query: int = number(15, min=1)
    episodes_per_epoch: int = number(100, min=1)  # per device; validation draws val_batches (or these) episodes
    pool: int = number(1, min=1)  # images: the latent grid averaged into pool x pool cells (sequences: over time)
    fce: bool = False  # matching: full-context embeddings (support through a BiLSTM, queries through attention)
    fce_steps: int = number(3, min=1)  # matching: read-out steps of the query's attention LSTM
    temperature: float = number(10.0, above=0)  # matching: cosine similarities are multiplied by this
    inner: str = choice("all", ["all", "head"])  # maml: adapt every weight, or only the classifier head
    # maml: the head each episode starts from: the support prototypes (as Proto-MAML) or zero
    head_init: str = choice("prototypes", ["prototypes", "zero"])
    inner_steps: int = number(5, min=1)  # maml: SGD steps on the support set in meta-training
    eval_inner_steps: int = number(10, min=1)  # maml: ... and when tested
    inner_lr: float = number(1e-3, above=0)  # maml: the SGD step (larger ones diverged with inner=all, README)
    first_order: bool = False  # maml: drop the second-order terms of the meta-gradient


@dataclass
class OptimConfig:
    lr: float = number(2e-4, above=0)  # peak learning rate
    warmup_steps: int = number(100, min=0)
    min_lr_ratio: float = number(0.1, min=0, max=1)  # cosine decay ends at lr * min_lr_ratio
    weight_decay: float = number(0.0, min=0)
    grad_clip: float = number(1.0, min=0)  # max gradient norm; 0 disables clipping


@dataclass
class FabricConfig:
    accelerator: str = "auto"
    devices: typing.Union[int, str] = 1
    strategy: str = "auto"
    num_nodes: int = number(1, min=1)
    precision: str = "auto"  # 32-true on CPU, bf16-mixed on GPU


@dataclass
class TrainConfig:
    out_dir: str = path("runs/default")
    seed: int = number(0, min=0)
    max_steps: int = number(1000, min=1)
    log_every: int = number(10, min=1)
    val_every: int = number(100, min=1)
    val_batches: int = number(0, min=0)  # batches per validation (a fixed subset); 0: the whole validation split
    ckpt_every: int = number(100, min=1)
    max_bad_steps: int = number(10, min=0)  # steps with non-finite loss or gradients skipped before the run stops
    compile: bool = False  # torch.compile the model: seconds to compile, 5-13% faster CPU steps (benchmarks/)
    tensorboard: bool = False  # also write TensorBoard event files (needs the tensorboard package)
    # bit-identical runs (and resumed runs) on CPU: one thread and torch's deterministic algorithms; slower
    # (benchmarks/results/step_time_cpu_1thread.md)
    deterministic: bool = False
    # start from the weights of this checkpoint that match the model by name and shape (e.g. a CPC encoder under
    # a few-shot learner); a resumed run keeps its own
    init_from: str = path()


@dataclass
class PrepareConfig:
    """The data-preparation step of a recipe: a module of data_prep/ and its command-line options."""
    script: str = ""
    options: dict = field(default_factory=dict)

    def __post_init__(self):  # the options are paths and numbers for the script's command line
        self.options = {k: expand_path(f"prepare.options.{k}", v) if isinstance(v, str) else v
                        for k, v in self.options.items()}


@dataclass
class Config:
    model: typing.Any  # the modality's model config, e.g. seqcpc.audio.config.AudioModelConfig
    data: typing.Any
    probe: typing.Any
    optim: OptimConfig = field(default_factory=OptimConfig)
    fabric: FabricConfig = field(default_factory=FabricConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)


COMMON = {"optim": OptimConfig, "fabric": FabricConfig, "train": TrainConfig, "prepare": PrepareConfig}
RENAMED = {"corpus": "prepare", "dataset": "prepare"}  # sections of earlier recipe configs


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
            owners = [m for m in modalities.names() if has_key(modalities.get(m), key)]
            if owners:
                raise ConfigError(f"config key {key!r} applies only to {' and '.join(owners)} models, not to "
                                  f"this config's model.modality; remove it")
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown config key {key!r}{hint}; allowed keys: {', '.join(fields)}")
        kwargs[name] = _convert(value, hints[name], key)
        choices = fields[name].metadata.get("choices")
        if choices and kwargs[name] not in choices:
            raise ConfigError(f"{key}: {kwargs[name]!r} is not one of {', '.join(map(str, choices))}")
        check_range(key, kwargs[name], fields[name].metadata)
        if fields[name].metadata.get("path") and isinstance(kwargs[name], str):
            kwargs[name] = expand_path(key, kwargs[name])
    return cls(**kwargs)


def schema(entry) -> dict:
    """Section name -> dataclass, for a modality's registry entry."""
    return {"model": entry.model_config, "data": entry.data_config, "probe": entry.probe_config, **COMMON}


def has_key(entry, key: str) -> bool:
    """Whether the dotted `key` (e.g. model.patches.size) is a field of the modality's config."""
    section, *path = key.split(".")
    cls = schema(entry).get(section)
    for name in path:
        if cls is None or not dataclasses.is_dataclass(cls) or name not in {f.name for f in dataclasses.fields(cls)}:
            return False
        cls = typing.get_type_hints(cls)[name]
    return cls is not None


def _prune(data, cls):
    """Only the keys of `data` that are fields of dataclass `cls` (recursively)."""
    if not dataclasses.is_dataclass(cls) or not isinstance(data, dict):
        return data
    hints, names = typing.get_type_hints(cls), {f.name for f in dataclasses.fields(cls)}
    return {k: _prune(v, hints[k]) for k, v in data.items() if k in names}


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
    try:
        node[leaf] = yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ConfigError(f"override {override!r}: the value is not valid YAML ({err})") from err


def modality_of(model: dict):
    """The registry entry of a `model:` section: model.modality, else the owner of model.size, else audio."""
    size, name = model.get("size"), model.get("modality")
    owner = None
    if size is not None:
        owner = next((m for m in map(modalities.get, modalities.names()) if size in m.sizes), None)
        if owner is None:
            known = [s for m in modalities.names() for s in modalities.get(m).sizes]
            raise ConfigError(f"model.size: unknown size {size!r}; known sizes: {', '.join(known)}")
    if name is None:
        return owner or modalities.get("audio")
    if name not in modalities.names():
        raise ConfigError(f"model.modality: {name!r} is not one of {', '.join(modalities.names())}")
    entry = modalities.get(name)
    if owner is not None and owner is not entry:
        raise ConfigError(f"model.size={size} is a {owner.name} model, but model.modality={name}")
    return entry


def resolve(data: dict, prune: bool = False) -> Config:
    """Nested dict (as in YAML) -> Config, with the named model size applied first. `prune` drops keys that
    are not fields of the modality (for configs saved before sections were split by modality)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, not {type(data).__name__}")
    for old, new in RENAMED.items():
        if old in data:
            raise ConfigError(f"config section {old!r} is now called {new!r}")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"model: expected a mapping, got {model!r}")
    entry = modality_of(model)
    if model.get("size") is not None:
        model = _merge(dataclasses.asdict(entry.sizes[model["size"]]()), model)
    data = {**data, "model": model}
    sections = schema(entry)
    if prune:
        data = {k: _prune(v, sections[k]) for k, v in data.items() if k in sections}
    unknown = [k for k in data if k not in sections]
    if unknown:
        close = difflib.get_close_matches(str(unknown[0]), sections, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"unknown config section {unknown[0]!r}{hint}; allowed sections: {', '.join(sections)}")
    return Config(**{name: _convert(data.get(name) or {}, cls, name) for name, cls in sections.items()})


class StrictLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (plain YAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def load_config(path=None, overrides=()) -> Config:
    data = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        try:
            text = path.read_text()
            data = yaml.load(text, Loader=StrictLoader)
        except (yaml.YAMLError, UnicodeDecodeError) as err:
            raise ConfigError(f"config file {path} is not valid YAML: {err}") from err
        if data is None:
            raise ConfigError(f"config file {path} is empty (or only comments); give it at least one section")
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path} must hold a mapping of sections, not {type(data).__name__}")
    for override in overrides:
        apply_override(data, override)
    return resolve(data)


def to_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)


def with_overrides(cfg: Config, overrides=()) -> Config:
    """A copy of `cfg` with `key=value` overrides applied and checked."""
    data = to_dict(cfg)
    for override in overrides:
        apply_override(data, override)
    return resolve(data)
