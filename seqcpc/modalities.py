"""The modality registry: everything the engine needs of one kind of input, in one entry.

The config, the training loop, the command line and the recipes reach a modality only through its entry, so a
new modality is a new package with one `Modality` value, added here (built-in ones) or with `register` (a
plug-in): no edits to the loop, the config loader or the evaluations. Built-in entries are imported on first
use, which keeps this module free of imports of the modality packages.
"""
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

BUILTIN = {"audio": "seqcpc.audio.modality:AUDIO", "image": "seqcpc.image.modality:IMAGE"}
_registered: dict = {}


@dataclass(frozen=True)
class Modality:
    name: str
    model_config: type  # dataclass of the `model:` section
    data_config: type  # dataclass of the `data:` section; has batch_size and num_workers
    probe_config: type  # dataclass of the `probe:` section
    build: Callable[[Any], Any]  # model config -> a seqcpc.core.model.Pretrainable
    check: Callable[[Any], int]  # Config -> latent positions per sample; raises ConfigError before anything runs
    datasets: Callable[[Any, int], tuple]  # (data config, seed) -> (training, validation) datasets of (x, group)
    evaluate: Callable[..., dict]  # (Config, model, out_dir, log=print) -> results; writes results.md/json, plots
    # (dataset, Config, world size, rank, seed, train) -> a batch sampler with set_position(epoch, batches_done),
    # or None for the loop's batches (shuffled in training, in order in validation)
    batch_sampler: Optional[Callable[..., Any]] = None
    sizes: dict = field(default_factory=dict)  # name -> function returning a model config
    # few-shot episodes (seqcpc/fewshot/evaluate.py): (Config, log) -> EpisodeData of the classes never trained on
    episode_data: Optional[Callable[..., Any]] = None
    # (Config, model) -> {name: batch -> (B, D) frozen features} for the frozen-feature few-shot classifiers
    frozen_features: Optional[Callable[..., dict]] = None


def register(entry: Modality) -> Modality:
    """Add a modality (a plug-in outside seqcpc); returns it."""
    _registered[entry.name] = entry
    return entry


def names() -> list[str]:
    return list(dict.fromkeys([*BUILTIN, *_registered]))


def get(name: str) -> Modality:
    if name not in _registered and name in BUILTIN:
        module, attr = BUILTIN[name].split(":")
        _registered[name] = getattr(importlib.import_module(module), attr)
    if name not in _registered:
        raise KeyError(f"unknown modality {name!r}; known: {', '.join(names())}")
    return _registered[name]
