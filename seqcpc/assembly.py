"""A run's model from its config, in three steps that every entry point takes in this order:

  complete_config(cfg) -> a new Config with what the data decides filled in (the classes of a probe head, the
                          image channels, ...): the config that is saved with the run and rebuilds its model
  check_config(cfg)    -> refuses what cannot run (ConfigError), changes nothing; returns the latent
                          positions of one sample
  build_model(cfg)     -> the modality's parts, assembled by the objective into a Pretrainable

The modality (seqcpc.modalities) and the objective (seqcpc.objectives.registry) are reached by name only.
"""
import copy

from seqcpc import modalities
from seqcpc.errors import ConfigError
from seqcpc.objectives import registry as objectives


def entries(cfg) -> tuple:
    """(modality entry, objective entry) of a Config."""
    return modalities.get(cfg.model.modality), objectives.get(cfg.objective.name)


def complete_config(cfg):
    """A copy of `cfg` with what the data decides filled in: first the modality's fields, then the objective's."""
    cfg = copy.deepcopy(cfg)
    modality, objective = entries(cfg)
    if modality.complete is not None:
        modality.complete(cfg, objective)
    if objective.complete is not None:
        objective.complete(cfg, modality)
    return cfg


def check_config(cfg) -> int:
    """Refuse impossible shapes and what the data cannot give the objective, before anything is built; return the
    latent positions of one sample (T for a window of audio, Gh * Gw for an image)."""
    modality, objective = entries(cfg)
    beyond = [n for n in cfg.train.keep_steps if n > cfg.train.max_steps]
    if beyond:
        raise ConfigError(f"train.keep_steps {beyond} lie beyond train.max_steps={cfg.train.max_steps}: a run never "
                          f"reaches them")
    missing = objective.needs(cfg.objective) - modality.gives
    if missing:
        raise ConfigError(f"objective.name={objective.name} with these options needs batches that carry "
                          f"{' and '.join(sorted(missing))}, which {modality.name} data does not give")
    geometry = modality.check(cfg, objective)
    if objective.check is not None:
        objective.check(cfg, modality, geometry)
    return geometry.positions


def build_model(cfg):
    """The model of a (completed) Config: the objective's assembly of the modality's parts."""
    modality, objective = entries(cfg)
    return objective.build(modality.parts(cfg.model), cfg.objective)
