"""Build an audio CPC model from its config, and refuse impossible shapes before anything runs."""
from pathlib import Path

from seqcpc.audio.config import AudioModelConfig
from seqcpc.audio.encoder import ConvEncoder, output_length, receptive_field, shortest_clip, valid_length
from seqcpc.audio.views import audio_views_from_config
from seqcpc.audio.manifest import read_manifest, read_phones
from seqcpc.config import CONTRASTIVE, SUPERVISED
from seqcpc.core.context import RNNContext, TransformerContext
from seqcpc.core.model import CPC, PooledContext
from seqcpc.core.predictors import check_offsets, predictor_from_config, scored_dim, target_projection
from seqcpc.errors import ConfigError, DataError
from seqcpc.fewshot.build import build_learner
from seqcpc.objectives.contrastive import build_contrastive
from seqcpc.objectives.infonce import InfoNCE, check_negatives
from seqcpc.objectives.supervised import Supervised


def build_audio_model(cfg: AudioModelConfig):
    """CPC (with its online speaker probe if asked), or the few-shot learner, contrastive or supervised objective
    of model.objective on the same encoder and context (pooled over time)."""
    enc, ctx, pred, loss = cfg.encoder, cfg.context, cfg.predictor, cfg.loss
    encoder = ConvEncoder(enc.in_channels, enc.dim, enc.kernels, enc.strides, enc.norm, enc.bias)
    if ctx.kind == "transformer":
        context = TransformerContext(enc.dim, ctx.dim, ctx.layers, ctx.heads)
    else:
        context = RNNContext(enc.dim, ctx.dim, ctx.layers, cell=ctx.kind)
    if cfg.objective in CONTRASTIVE:
        if not cfg.views.length:
            raise ConfigError("model.views.length is not set: a run takes 3/4 of data.window when it checks its "
                              "config (seqcpc.check_config); set it to build a model alone")
        return build_contrastive(cfg.objective, PooledContext(encoder, context, ctx.dim),
                                 audio_views_from_config(cfg.views), cfg.contrastive)
    if cfg.objective == SUPERVISED:
        return Supervised(PooledContext(encoder, context, ctx.dim), cfg.classes)
    if cfg.objective != "cpc":
        return build_learner(cfg.objective, PooledContext(encoder, context, ctx.dim), cfg.meta)
    model = CPC(encoder, context, predictor_from_config(pred, ctx.dim, enc.dim),
                InfoNCE.from_config(loss, pred.first, scored_dim(pred, enc.dim)), target_projection(pred, enc.dim),
                pred.scale)
    if cfg.contrastive.pruned_competitor:
        model.add_pruned_competitor(cfg.contrastive.prune_ratio)
    if cfg.online_probe:  # after the pruned twin, which would otherwise prune the probe's head too
        model.add_online_probe(ctx.dim, cfg.classes, "speaker")
    if cfg.online_phones:
        model.add_online_probe(ctx.dim, cfg.phone_classes, "phone", per_step=True)
    return model


def check_audio_config(cfg) -> int:
    """Refuse impossible shapes; return the latent steps T of one training window."""
    if cfg.data.kind == "synthetic" and cfg.data.batching != "uniform":
        raise ConfigError(f"data.batching={cfg.data.batching} needs a speech corpus (data.kind=manifest); "
                          f"synthetic sequences take data.batching=uniform")
    enc, window = cfg.model.encoder, cfg.data.window
    if len(enc.kernels) != len(enc.strides) or not enc.kernels:
        raise ConfigError(f"model.encoder.kernels {enc.kernels} and strides {enc.strides} must be non-empty "
                          f"lists of the same length")
    if min(enc.kernels + enc.strides) < 1 or any(k < s for k, s in zip(enc.kernels, enc.strides)):
        raise ConfigError(f"model.encoder: every stride must be >= 1 and <= its kernel, got kernels "
                          f"{enc.kernels} and strides {enc.strides}")
    field = receptive_field(enc.kernels, enc.strides)
    if window < field:
        raise ConfigError(f"data.window={window} is shorter than the encoder's receptive field ({field} samples)")
    T = output_length(window, enc.kernels, enc.strides)
    check_min_clip(cfg)
    if cfg.model.online_probe and cfg.model.objective != "cpc":
        raise ConfigError(f"model.online_probe=true trains a speaker head beside CPC, not beside "
                          f"model.objective={cfg.model.objective}; set model.online_probe=false")
    if cfg.model.online_probe or cfg.model.objective == SUPERVISED:
        count_classes(cfg)
    check_online_phones(cfg)
    if cfg.model.objective == SUPERVISED:
        return T
    if cfg.model.objective in CONTRASTIVE:
        return check_views(cfg)
    if cfg.model.objective != "cpc":
        if cfg.data.kind != "manifest":
            raise ConfigError(f"model.objective={cfg.model.objective} learns classes from a corpus's speakers: "
                              f"data.kind=manifest data.manifest=PATH")
        return T
    check_offsets(cfg.model.predictor, T, f"latent steps of a data.window={window}")
    check_negatives(cfg.model.loss, cfg.data.batch_size, T, T)
    return T


def check_min_clip(cfg) -> None:
    """Refuse a data.min_clip that pads what the objective cannot mask, or so short that a clip has nothing to
    predict: every offset 1..K needs K + 1 latent steps whose receptive field lies inside the clip."""
    data, model = cfg.data, cfg.model
    if data.min_clip > data.window:
        raise ConfigError(f"data.min_clip={data.min_clip} is longer than data.window={data.window}: clips of "
                          f"min_clip..window samples are padded to the window; set data.min_clip <= data.window "
                          f"(0: the window, shorter clips skipped)")
    if data.min_clip in (0, data.window):
        return
    fix = "set data.min_clip=0 (clips shorter than the window skipped)"
    if data.kind != "manifest":
        raise ConfigError(f"data.min_clip={data.min_clip} pads a corpus's short clips (data.kind=manifest); "
                          f"synthetic sequences are all data.window long: {fix}")
    if model.objective != "cpc":
        raise ConfigError(f"data.min_clip={data.min_clip} < data.window pads short clips, which only CPC (and its "
                          f"online probe) leaves out of its loss; model.objective={model.objective} would learn from "
                          f"the padding: {fix}")
    if data.batching == "utterance":
        raise ConfigError(f"data.batching=utterance with data.min_clip={data.min_clip}: every window of a clip "
                          f"shorter than the window is the same padded clip; use data.batching=uniform or speaker")
    enc, steps = model.encoder, model.predictor.steps
    valid = int(valid_length([data.min_clip], data.window, enc.kernels, enc.strides)[0])
    shortest = shortest_clip(steps + 1, data.window, enc.kernels, enc.strides)
    if valid <= steps and shortest <= data.window:  # else the window itself is too short (check_offsets says so)
        raise ConfigError(f"data.min_clip={data.min_clip} samples give {valid} latent steps inside the clip, but "
                          f"predicting model.predictor.steps={steps} ahead needs {steps + 1}: set data.min_clip >= "
                          f"{shortest} (the samples of {steps + 1} latent steps) or predict fewer steps")


def count_classes(cfg) -> None:
    """Set model.classes to the speakers of the training data (a manifest's train split, counting only speakers
    with a clip long enough to be used, as the training windows do; or data.groups), or refuse a given count that
    is too small."""
    data, model = cfg.data, cfg.model
    if data.kind == "synthetic":
        found, source = data.groups, "data.groups"
    else:
        shortest = data.min_clip or data.window
        found = len({row.speaker for row in read_manifest(data.manifest, ["train"])
                     if row.samples_at(data.sample_rate) >= shortest})
        source = f"the train split of {data.manifest} (clips of at least {shortest} samples)"
    if model.classes == 0:
        model.classes = found  # the head follows the data unless the config says otherwise
    elif model.classes < found:
        raise ConfigError(f"model.classes={model.classes} but {source} has {found} speakers; leave model.classes "
                          f"at 0 to count them")
    if model.classes < 2:
        raise ConfigError(f"model.online_probe and model.objective=supervised need at least two speakers, but "
                          f"{source} has {found}")


def check_online_phones(cfg) -> None:
    """With model.online_phones: find the frame labels (data.phones, else phones.txt beside the manifest) and set
    model.phone_classes from them (or refuse a given count that is too small); refuse what cannot carry them.
    Without it, data.phones is cleared: the windows carry no labels."""
    data, model = cfg.data, cfg.model
    if not model.online_phones:
        data.phones = ""  # only the phone probe reads them: windows without labels (a config derived from a
        return            # probed run, e.g. the supervised ceiling's, does not carry them into another objective)
    if model.objective != "cpc":
        raise ConfigError(f"model.online_phones=true trains a phone head beside CPC, not beside "
                          f"model.objective={model.objective}; set model.online_phones=false")
    if data.kind != "manifest":
        raise ConfigError("model.online_phones=true needs a speech corpus with frame labels: data.kind=manifest "
                          "data.manifest=PATH (with phones.txt beside it, or data.phones=PATH)")
    data.phones = data.phones or str(Path(data.manifest).parent / "phones.txt")
    if not Path(data.phones).is_file():
        raise ConfigError(f"model.online_phones=true needs frame labels, and {data.phones} does not exist: give "
                          f"data.phones=PATH (phones.txt format: an utterance id, then one phone index per 10 ms) "
                          f"or set model.online_phones=false")
    try:
        labels = read_phones(data.phones)
    except DataError as err:
        raise ConfigError(f"data.phones: {err}") from err
    trained = [row.id for row in read_manifest(data.manifest, ["train"]) if len(labels.get(row.id, ()))]
    if not trained:
        raise ConfigError(f"model.online_phones=true: no train utterance of {data.manifest} has labels in "
                          f"{data.phones} (its first column must hold the manifest's ids)")
    found = max(int(v.max()) for v in labels.values() if len(v)) + 1  # validation labels index the head too
    if model.phone_classes == 0:
        model.phone_classes = max(found, 2)  # one label alone still gives a two-way head
    elif model.phone_classes < found:
        raise ConfigError(f"model.phone_classes={model.phone_classes} but {data.phones} has phone index {found - 1}; "
                          f"leave model.phone_classes at 0 to count them")


def check_views(cfg) -> int:
    """Refuse views that a window cannot give or an encoder that would leak batch statistics; return the latent
    steps of one view."""
    model, window = cfg.model, cfg.data.window
    if model.objective == "moco" and model.encoder.norm == "batch":
        raise ConfigError("model.objective=moco with model.encoder.norm=batch: batch statistics would tell the "
                          "key encoder which key belongs to which query; use a per-sample norm "
                          "(model.encoder.norm=instance or layer)")
    if not model.views.length:
        model.views.length = window * 3 // 4  # the views follow the window unless the config says otherwise
    views = audio_views_from_config(model.views, window)  # raises when the window is too short for the views
    enc = model.encoder
    if views.length < receptive_field(enc.kernels, enc.strides):
        raise ConfigError(f"model.views.length={views.length} is shorter than the encoder's receptive field "
                          f"({receptive_field(enc.kernels, enc.strides)} samples)")
    return output_length(views.length, enc.kernels, enc.strides)
