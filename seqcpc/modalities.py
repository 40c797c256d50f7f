"""The modality registry: everything the engine needs of one kind of input, in one entry.

The config, the training loop, the command line and the recipes reach a modality only through its entry, so a
new modality is a new package with one `Modality` value, added here (built-in ones) or with `register` (a
plug-in): no edits to the loop, the config loader or the evaluations. Built-in entries are imported on first
use, which keeps this module free of imports of the modality packages.

A modality knows no objective by name. It offers parts, and an objective (seqcpc.objectives.registry) assembles
the ones it names. `parts` is a class built from the model section, so building it creates the modality's
networks in a fixed order; its methods are the parts (an objective may use any subset):
  autoregressive(task) -> a Pretrainable that predicts latents ahead from a causal context (CPC); `task` gives
                          predictor(), loss(), targets() and scale, which the part calls in that order
  pooled(pool, augment) -> features x (B, ...) -> (B, F) with .dim = F and .latents(x) -> frozen (z, c)
  local_global(augment) -> x -> (local latents z (B, ..., D), a global vector (B, F)) with .dim = F,
                          .local_dim = D, .map_cells(z, n) -> (B, .cells_dim(n)) (z averaged into n cells a side, up
                          to Geometry.pool) and .latents(x) -> frozen (z, c)
  views(options)       -> a module drawing one random view of each sample (options: part_configs["views"])
  patches()            -> (encoder, patch augment, patch side, stride) of a patch-grid modality
  augment_past(options) -> a module x -> an augmented copy of x that the context reads, or None when the options
                          draw no effect (options: part_configs["augment_past"]; an optional part of CPC)
  multiview(pool)      -> M views of each sample through their own encoders (CMC): x -> [(B, F_i)] with
                          .dims = [F_i] and .latents(x) -> [frozen (z_i, c_i)] of the same positions
  lab_encoder(channels) -> a new patch encoder on 1 (L) or 2 (ab) channels of Lab colour (image; colourisation)
"""
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from seqcpc.entries import Entries
from seqcpc.errors import ConfigError

BUILTIN = {"audio": "seqcpc.audio.modality:AUDIO", "image": "seqcpc.image.modality:IMAGE"}


def no_batch_statistics(model_cfg) -> str:
    return ""


@dataclass(frozen=True)
class Geometry:
    """What a modality's check tells objectives about the latents of one sample."""
    positions: int  # latent positions per sample (T for a window of audio, Gh * Gw for an image)
    horizon: int  # positions along which a context predicts ahead (T; the grid's rows, or its shorter side)
    sequence: int  # positions of each scored sequence (T; a grid column's rows)
    what: str  # the horizon in words, for messages (e.g. "latent steps of a data.window=20480")
    # the most cells a side that pooled features can have: the grid's shorter side; 1 where a sequence is
    # averaged over time into one vector
    pool: int = 1

    def check_pool(self, key: str, pool: int) -> None:
        """Refuse a pool (the `pool` option under `key`) of more cells a side than the latents have: the extra
        cells would only repeat latents (or, on sequences, the option would be ignored)."""
        if pool > self.pool:
            where = "on the shorter side of the latent grid" if self.pool > 1 else "a sequence is averaged over time"
            raise ConfigError(f"{key}={pool} asks for more cells a side than the latents of one sample pool into "
                              f"({self.pool}: {where}); set {key} <= {self.pool}")


@dataclass(frozen=True)
class Modality:
    name: str
    model_config: type  # dataclass of the `model:` section (the networks: encoder, context, ...)
    data_config: type  # dataclass of the `data:` section; has batch_size and num_workers
    probe_config: type  # dataclass of the `probe:` section
    parts: type  # model config -> the parts objectives assemble (see the module's docstring)
    # (Config, objective entry) -> Geometry of one sample; refuses impossible shapes with a ConfigError before
    # anything runs, and changes nothing
    check: Callable[..., Geometry]
    datasets: Callable[[Any, int], tuple]  # (data config, seed) -> (training, validation) datasets of (x, group)
    evaluate: Callable[..., dict]  # (Config, model, out_dir, log=print) -> results; writes results.md/json, plots
    # (Config, objective entry) -> None: fills in, in place, what the data decides (called on a copy by
    # seqcpc.builders.complete_config)
    complete: Optional[Callable[..., None]] = None
    part_configs: dict = field(default_factory=dict)  # part -> dataclass of its options in the objective section
    gives: frozenset = frozenset()  # what its batches can carry: "labels" (a class each), "frame_labels"
    # Config -> (classes of the training data, the same in words: "3 speakers in ..."), for "labels" and
    # "frame_labels"; refuses data that cannot give them
    count_classes: Optional[Callable[[Any], tuple]] = None
    count_frame_classes: Optional[Callable[[Any], tuple]] = None
    # (dataset, Config, world size, rank, seed, train) -> a batch sampler with set_position(epoch, batches_done),
    # or None for the loop's batches (shuffled in training, in order in validation)
    batch_sampler: Optional[Callable[..., Any]] = None
    item_labels: Optional[Callable[[Any], Any]] = None  # dataset -> a class per item (for episode samplers)
    items: str = "items"  # what an item is called in messages ("windows", "images")
    # model config -> the setting that makes its encoder mix the samples of a batch (batch norm), or ""
    batch_statistics: Callable[[Any], str] = no_batch_statistics
    sizes: dict = field(default_factory=dict)  # name -> function returning a model config
    # few-shot episodes (seqcpc/fewshot/evaluate.py): (Config, log) -> EpisodeData of the classes never trained on
    episode_data: Optional[Callable[..., Any]] = None
    # (Config, model) -> {name: batch -> (B, D) frozen features} for the frozen-feature few-shot classifiers
    frozen_features: Optional[Callable[..., dict]] = None


ENTRIES = Entries(BUILTIN, lambda name, known: KeyError(f"unknown modality {name!r}; known: {', '.join(known)}"))
register, names, get = ENTRIES.register, ENTRIES.names, ENTRIES.get  # register(entry) adds a plug-in
