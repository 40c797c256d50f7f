"""Typed run configuration: dataclasses filled from YAML plus `key=value` overrides, checked strictly.

A config has the sections model, data, probe (their fields depend on the modality), objective (its fields
depend on the objective), optim, fabric, train and prepare (the data-preparation step a recipe runs first;
`seqcpc pretrain` does not run it). The modality is `model.modality`, else the one that owns `model.size`, else
audio; its registry entry (seqcpc.modalities) gives the dataclasses of its model, data and probe sections and its
named sizes. `model.size` names a preset whose fields are the base that the rest of `model:` overrides. The
objective is `objective.name` (cpc unless given); its registry entry (seqcpc.objectives.registry) gives the
dataclass of the objective section, with the objective's defaults on this modality as its base.

An unknown key, a key of another modality or objective, a value of the wrong type or a value outside a field's
choices fails with a ConfigError that names the key and what is allowed. This module is the only config loader.
"""
import dataclasses
import difflib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from seqcpc import modalities
from seqcpc.errors import ConfigError
from seqcpc.fields import check_range, expand_path, number, path
from seqcpc.objectives import registry as objectives


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
    # seconds a process waits for the others, at the start and in each collective (all_reduce, barrier), before
    # the run fails instead of hanging (e.g. a node was lost); 1800 is Fabric's default; ddp strategies only
    timeout_s: float = number(1800.0, above=0)


@dataclass
class TrainConfig:
    out_dir: str = path("runs/default")
    seed: int = number(0, min=0)
    max_steps: int = number(1000, min=1)
    log_every: int = number(10, min=1)
    val_every: int = number(100, min=1)
    val_batches: int = number(0, min=0)  # batches per validation (a fixed subset); 0: the whole validation split
    ckpt_every: int = number(100, min=1)
    # steps whose checkpoint is also kept as checkpoints/step-<N>.ckpt (e.g. the points of a learning curve)
    keep_steps: list[int] = number([], min=1)
    # > 0: stop after this step with a checkpoint, as a finished run does, without changing the schedule that
    # train.max_steps sets; a --resume with a later stop_at (or 0) goes on (a long run in parts)
    stop_at: int = number(0, min=0)
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
    objective: typing.Any  # the objective's section, e.g. seqcpc.objectives.cpc.CPCConfig (with its name)
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
            owners = owners_of(key)
            if owners:
                raise ConfigError(f"config key {key!r} applies only to {' and '.join(owners)}, not to this "
                                  f"config's; remove it")
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
    """Section name -> dataclass, for a modality's registry entry (the objective section aside)."""
    return {"model": entry.model_config, "data": entry.data_config, "probe": entry.probe_config, **COMMON}


def _walk(cls, path: list) -> bool:
    """Whether the field path (e.g. ["patches", "size"]) exists in dataclass `cls`."""
    for name in path:
        if cls is None or not dataclasses.is_dataclass(cls) or name not in {f.name for f in dataclasses.fields(cls)}:
            return False
        cls = typing.get_type_hints(cls)[name]
    return cls is not None


def has_key(entry, key: str) -> bool:
    """Whether the dotted `key` (e.g. model.patches.size) is a field of the modality's config."""
    section, *path = key.split(".")
    return _walk(schema(entry).get(section), path)


def objective_sections():
    """(objective entry, modality entry, its section dataclass) for every objective on every modality it
    supports."""
    for name in objectives.names():
        entry = objectives.get(name)
        for modality in map(modalities.get, modalities.names()):
            if objectives.supports(entry, modality):
                yield entry, modality, objectives.section_class(entry, modality)


def owners_of(key: str) -> list[str]:
    """What the dotted `key` belongs to, when it is not a field where it was given: the modalities whose model,
    data or probe section has it, or the objectives whose section has it."""
    section, *path = key.split(".")
    if section == "objective":
        found = {entry.name for entry, _, cls in objective_sections() if _walk(cls, path)}
        return [f"objective.name={n}" for n in objectives.names() if n in found]
    return [f"{m} models" for m in modalities.names() if has_key(modalities.get(m), key)]


# keys of the model section before objectives had their own section -> where they are now ("{}" is the rest of
# the key); seqcpc.train.checkpoint migrates checkpoints of that form, configs get this message
MOVED = {"objective": "objective.name", "predictor": "objective.predictor.{}", "loss": "objective.loss.{}",
         "online_probe": "objective.online_probe", "classes": "objective.classes",
         "online_phones": "objective.online_phones", "phone_classes": "objective.phone_classes",
         "views": "objective.views.{}", "meta": "objective.{}", "contrastive": "objective.{}",
         "pretext": "objective.{}"}


def refuse_moved(model: dict) -> None:
    """Refuse a model section of the form before objective sections, naming the new key of its first old one."""
    for name, value in model.items():
        if name in MOVED:
            rest = next(iter(value), "") if isinstance(value, dict) else ""
            old, new = ".".join(filter(None, ["model", name, rest])), MOVED[name].format(rest or "FIELD")
            raise ConfigError(f"config key {old!r} is now {new!r}: an objective's options live in the objective "
                              f"section (objective.name picks it, e.g. objective: {{name: simclr, temperature: "
                              f"0.2}})")


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


def apply_overrides(data: dict, overrides) -> None:
    """Apply `key=value` overrides in place. One that sets objective.name to another objective than the config's
    comes first and starts that section afresh (from the new objective's defaults), so a config derived from a CPC
    run does not carry CPC's options into, say, a supervised run; the other overrides then apply to it."""
    def is_name(o):
        return o.partition("=")[0].strip() == "objective.name"

    for override in [o for o in overrides if is_name(o)] + [o for o in overrides if not is_name(o)]:
        section = data.get("objective")
        current = section.get("name", objectives.DEFAULT) if isinstance(section, dict) else None
        if is_name(override) and override.partition("=")[2].strip() != current:
            data["objective"] = {}
        apply_override(data, override)


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


def objective_section(data: dict, modality):
    """(the dataclass of the config's `objective:` section, its data over the objective's defaults on this
    modality: a sub-section given in part keeps those defaults for the rest of its fields)."""
    section = data.get("objective") or {}
    if not isinstance(section, dict):
        raise ConfigError(f"objective: expected a mapping, got {section!r}")
    entry = objectives.get(section.get("name", objectives.DEFAULT))
    return objectives.section_class(entry, modality), _merge(entry.defaults.get(modality.name, {}), section)


def resolve(data: dict, prune: bool = False) -> Config:
    """Nested dict (as in YAML) -> Config, with the named model size and the objective's defaults applied first.
    `prune` drops keys that are not fields of the modality (for configs saved before sections were split)."""
    if not isinstance(data, dict):
        raise ConfigError(f"a config must be a mapping of sections, not {type(data).__name__}")
    for old, new in RENAMED.items():
        if old in data:
            raise ConfigError(f"config section {old!r} is now called {new!r}")
    model = data.get("model") or {}
    if not isinstance(model, dict):
        raise ConfigError(f"model: expected a mapping, got {model!r}")
    refuse_moved(model)
    entry = modality_of(model)
    if model.get("size") is not None:
        model = _merge(dataclasses.asdict(entry.sizes[model["size"]]()), model)
    objective_cls, objective = objective_section(data, entry)
    data = {**data, "model": model, "objective": objective}
    sections = {**schema(entry), "objective": objective_cls}
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
    apply_overrides(data, overrides)
    return resolve(data)


def to_dict(cfg) -> dict:
    data = dataclasses.asdict(cfg)
    if isinstance(cfg, Config):  # the objective's name first, as a reader of config.yaml looks for it
        data["objective"] = {"name": data["objective"].pop("name"), **data["objective"]}
    return data


def with_overrides(cfg: Config, overrides=()) -> Config:
    """A copy of `cfg` with `key=value` overrides applied (as apply_overrides does) and checked."""
    data = to_dict(cfg)
    apply_overrides(data, overrides)
    return resolve(data)
