"""CPC's registry entry: predict the latents ahead from the causal context, scored by InfoNCE.

The modality's `autoregressive` part holds the encoder and context (a conv encoder and a recurrent context for
sequences, CPC v2's patch encoder and masked-conv context on image grids); this entry gives it the predictor,
the loss and the targets, and adds the options around it: SDCLR's pruned competitor (a pruned twin whose
predictions are scored against the dense model's targets and back, seqcpc/core/model.py) and online probes
(linear heads on the detached context trained beside CPC: a class per sequence, a class per step).
On images the defaults are CPC v2's prediction task (Henaff et al. 2020, appendix A.2: steps_to_ignore=2,
steps_to_predict=3, target_dim=64, emb_scale=0.1): only the row 3 below a context is predicted (with patches
overlapping by half, row 1 below shares pixels with the context's own row), against the latents projected to 64
dims, the predictions scaled by 0.1, every other patch of the batch a negative.
"""
from dataclasses import dataclass, field

from seqcpc.core.predictors import PredictorConfig, check_offsets, predictor_from_config, scored_dim, target_projection
from seqcpc.fields import number, refuse_idle
from seqcpc.objectives.classes import class_count
from seqcpc.objectives.infonce import InfoNCE, LossConfig, check_negatives
from seqcpc.objectives.pruning import SelfDamage
from seqcpc.objectives.registry import Objective


@dataclass
class CPCConfig:
    """CPC: predictions of z[t+first] .. z[t+steps] from c[t] against negatives (seqcpc/objectives/cpc.py)."""
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    # a linear head on the detached, pooled context, trained beside CPC on each sample's class (the speaker);
    # its accuracy is the metric online_<label> (seqcpc/core/online.py)
    online_probe: bool = False
    classes: int = number(0, min=0)  # of the online probe; 0: counted from the training data
    # a linear head on each detached context step, trained beside CPC on frame labels (a corpus's phones.txt,
    # or data.phones); its accuracy is the metric online_<frame label>
    online_phones: bool = False
    phone_classes: int = number(0, min=0)  # of that head; 0: counted from the labels (largest index + 1)
    # SDCLR's pruned branch beside CPC: it predicts the dense branch's targets, the dense branch predicts its own
    pruned_competitor: bool = False
    # share of the weights the pruned branch drops
    prune_ratio: float = number(0.9, above=0, max=0.999, why="at 0 the pruned twin is the dense model itself")


class Task:
    """What the modality's autoregressive part asks for, built from the section in the order it asks."""

    def __init__(self, cfg: CPCConfig):
        self.cfg, self.scale = cfg, cfg.predictor.scale

    def predictor(self, context_dim: int, latent_dim: int):
        return predictor_from_config(self.cfg.predictor, context_dim, latent_dim)

    def loss(self, latent_dim: int):
        pred = self.cfg.predictor
        return InfoNCE.from_config(self.cfg.loss, pred.first, scored_dim(pred, latent_dim))

    def targets(self, latent_dim: int):
        return target_projection(self.cfg.predictor, latent_dim)


def build_cpc(parts, cfg: CPCConfig):
    model = parts.autoregressive(Task(cfg))
    if hasattr(cfg, "augment_past"):  # on modalities that offer it (audio); None when no effect is drawn
        model.augment_past = parts.augment_past(cfg.augment_past)
    if cfg.pruned_competitor:
        damage = SelfDamage(model, cfg.prune_ratio)  # built before it is attached: it does not prune itself
        model.damage = damage
    if cfg.online_probe:  # after the pruned twin, which would otherwise prune the probe's head too
        model.add_online_probe(parts.context_dim, cfg.classes, parts.labels)
    if cfg.online_phones:
        model.add_online_probe(parts.context_dim, cfg.phone_classes, parts.frame_labels, per_step=True)
    return model


def needs(cfg: CPCConfig) -> frozenset:
    wanted = {"labels"} if cfg.online_probe or cfg.loss.negatives == "group" else set()
    return frozenset(wanted | ({"frame_labels"} if cfg.online_phones else set()))


def complete(cfg, modality) -> None:
    """The online probes' class counts from the training data, unless given."""
    section = cfg.objective
    if section.online_probe:
        section.classes = class_count(section.classes, *modality.count_classes(cfg), "objective.classes")
    if section.online_phones:
        given = section.phone_classes
        counted = class_count(given, *modality.count_frame_classes(cfg), "objective.phone_classes", least=1)
        section.phone_classes = given or max(counted, 2)  # one label alone still gives a two-way head


def idle_options(section: CPCConfig) -> dict:
    """Options that matter only with another setting: option -> (whether it matters, the setting)."""
    loss, sampled, kind = section.loss, section.loss.negatives != "all", section.predictor.kind
    return {"classes": (section.online_probe, "objective.online_probe=true"),
            "phone_classes": (section.online_phones, "objective.online_phones=true"),
            "prune_ratio": (section.pruned_competitor, "objective.pruned_competitor=true"),
            "loss.queue": (loss.negatives == "queue", "objective.loss.negatives=queue"),
            "loss.num_negatives": (sampled, "sampled negatives (objective.loss.negatives other than all)"),
            "loss.draw": (sampled, "sampled negatives (objective.loss.negatives other than all)"),
            "predictor.hidden": (kind in ("mlp", "transformer"), "objective.predictor.kind=mlp or transformer"),
            "predictor.per_step": (kind == "mlp", "objective.predictor.kind=mlp"),
            "predictor.heads": (kind == "transformer", "objective.predictor.kind=transformer")}


def check(cfg, modality, geometry) -> None:
    refuse_idle(cfg.objective, "objective", idle_options(cfg.objective))
    check_offsets(cfg.objective.predictor, geometry.horizon, geometry.what)
    check_negatives(cfg.objective.loss, cfg.data.batch_size, geometry.positions, geometry.sequence)


CPC_V2_TASK = {"predictor": {"first": 3, "steps": 3, "target_dim": 64, "scale": 0.1}, "loss": {"negatives": "all"}}

CPC_OBJECTIVE = Objective(
    name="cpc", config=CPCConfig, build=build_cpc, parts=("autoregressive",), needs=needs, complete=complete,
    check=check, padded_steps=lambda cfg: cfg.predictor.steps + 1, defaults={"image": CPC_V2_TASK},
    optional_parts=("augment_past",),
    summary="Contrastive Predictive Coding: the context at t predicts the latents ahead against negatives",
)
