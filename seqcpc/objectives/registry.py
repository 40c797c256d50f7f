"""The objective registry: what the loop trains, one entry per method, beside the modality registry.

An entry names the objective, its config section (a dataclass: the `objective:` section of a config whose
`objective.name` is this one), the parts it asks of a modality, how it builds its model from them, how it
completes and checks its config, and what it needs from the data. A modality offers parts (seqcpc.modalities);
an objective assembles them, so neither knows the other by name. Built-in entries are imported on first use
(BUILTIN names the module and the entry); a plug-in objective calls `register` from outside the package.
"""
import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from seqcpc.entries import Entries
from seqcpc.errors import ConfigError

BUILTIN = {
    "cpc": "seqcpc.objectives.cpc:CPC_OBJECTIVE",
    "simclr": "seqcpc.objectives.simclr:SIMCLR",
    "moco": "seqcpc.objectives.moco:MOCO",
    "sdclr": "seqcpc.objectives.sdclr:SDCLR_OBJECTIVE",
    "supervised": "seqcpc.objectives.supervised:SUPERVISED",
    "protonet": "seqcpc.fewshot.protonet:PROTONET",
    "matching": "seqcpc.fewshot.matching:MATCHING",
    "maml": "seqcpc.fewshot.maml:MAML_OBJECTIVE",
    "rotation": "seqcpc.image.pretext:ROTATION",
    "jigsaw": "seqcpc.image.pretext:JIGSAW",
    "dim": "seqcpc.objectives.dim:DIM_OBJECTIVE",
    "amdim": "seqcpc.image.amdim:AMDIM_OBJECTIVE",
    "cmc": "seqcpc.objectives.cmc:CMC_OBJECTIVE",
    "colourise": "seqcpc.image.colourise:COLOURISE",
    "inpainting": "seqcpc.image.inpainting:INPAINTING",
}
DEFAULT = "cpc"
_sections: dict = {}


def no_needs(section) -> frozenset:
    return frozenset()


@dataclass(frozen=True)
class Objective:
    name: str
    config: type  # dataclass of the `objective:` section's own fields (the loader adds `name` and part options)
    build: Callable[[Any, Any], Any]  # (the modality's parts, the objective section) -> a Pretrainable
    summary: str = ""  # one line for the docs and error messages
    # methods it calls on the modality's parts (seqcpc.modalities.Modality.parts): "autoregressive", "pooled",
    # "views", "patches", "local_global", "multiview", "lab_encoder"; a modality supports the objective when its
    # parts have them all. A part with options (Modality.part_configs, e.g. views) adds them to the section as a
    # sub-section of that name
    parts: tuple = ()
    # parts it uses where a modality offers them (CPC's augment_past on audio); their options are sub-sections too
    optional_parts: tuple = ()
    # section -> what its batches must carry: "labels" (a class per sample), "frame_labels" (a class per frame)
    needs: Callable[[Any], frozenset] = no_needs
    # section -> latent steps a zero-padded clip must keep for the objective to score it (it leaves the padding
    # out of its loss); None: padded clips would teach it the padding, so they are refused
    padded_steps: Optional[Callable[[Any], int]] = None
    complete: Optional[Callable[..., None]] = None  # (Config, modality) -> None: fills in what the data decides
    check: Optional[Callable[..., None]] = None  # (Config, modality, Geometry) -> None: raises ConfigError
    # (dataset, Config, world size, rank, seed, train, modality) -> the loop's batch sampler (few-shot episodes);
    # None: the modality's batches
    batch_sampler: Optional[Callable[..., Any]] = None
    episodic: bool = False  # scored on its own episodes only (few-shot learners): no z and c to extract or probe
    # modality name -> {field: default} of the section on that modality (a sub-section's: {field: {field: default}})
    defaults: dict = field(default_factory=dict)


ENTRIES = Entries(BUILTIN, lambda name, known: ConfigError(f"objective.name: {name!r} is not one of "
                                                           f"{', '.join(known)}"))
register, names, get = ENTRIES.register, ENTRIES.names, ENTRIES.get  # register(entry) adds a plug-in


def check_pool(cfg, modality, geometry) -> None:
    """The check of an objective whose section has `pool`: its pooled features' cells a side."""
    geometry.check_pool("objective.pool", cfg.objective.pool)


def supports(entry: Objective, modality) -> bool:
    """Whether the modality's parts offer everything the objective assembles."""
    return all(hasattr(modality.parts, part) for part in entry.parts)


def supported(modality) -> list[str]:
    return [n for n in names() if supports(get(n), modality)]


def with_values(cls, values: dict):
    """An instance of dataclass `cls` with `values` in place of its defaults."""
    return dataclasses.replace(cls(), **values)


def on_modality(entry: Objective, modality) -> list:
    """The objective's fields whose defaults differ on this modality, as make_dataclass fields (their checks kept)."""
    hints, own = typing.get_type_hints(entry.config), {f.name: f for f in dataclasses.fields(entry.config)}
    fields = []
    for name, value in entry.defaults.get(modality.name, {}).items():
        tp, meta = hints[name], own[name].metadata
        if dataclasses.is_dataclass(tp):
            fields.append((name, tp, field(default_factory=functools.partial(with_values, tp, value), metadata=meta)))
        else:
            fields.append((name, tp, field(default=value, metadata=meta)))
    return fields


def section_class(entry: Objective, modality) -> type:
    """The dataclass of the `objective:` section for this objective on this modality: `name`, the objective's own
    fields (with its defaults on this modality), and a sub-section for each part it uses that has options on this
    modality (e.g. the views)."""
    if not supports(entry, modality):
        raise ConfigError(f"objective.name={entry.name} does not work on {modality.name} data: it needs the parts "
                          f"{', '.join(entry.parts)} of a modality; objectives for {modality.name}: "
                          f"{', '.join(supported(modality))}")
    key = (entry.name, modality.name, id(entry), id(modality))
    if key not in _sections:
        extra = [(part, cls, field(default_factory=cls)) for part, cls in modality.part_configs.items()
                 if part in entry.parts + entry.optional_parts]
        name = ("name", str, field(default=entry.name, metadata={"choices": (entry.name,)}))
        _sections[key] = dataclasses.make_dataclass(f"{entry.config.__name__}On{modality.name.title()}",
                                                    [*on_modality(entry, modality), name, *extra],
                                                    bases=(entry.config,))
    return _sections[key]
