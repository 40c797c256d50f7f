"""Build an audio CPC model from its config, and refuse impossible shapes before anything runs."""
from seqcpc.audio.config import AudioModelConfig
from seqcpc.audio.encoder import ConvEncoder, output_length, receptive_field
from seqcpc.audio.views import audio_views_from_config
from seqcpc.config import CONTRASTIVE
from seqcpc.core.context import RNNContext, TransformerContext
from seqcpc.core.model import CPC, PooledContext
from seqcpc.core.predictors import check_offsets, predictor_from_config, scored_dim, target_projection
from seqcpc.errors import ConfigError
from seqcpc.fewshot.build import build_learner
from seqcpc.objectives.contrastive import build_contrastive
from seqcpc.objectives.infonce import InfoNCE, check_negatives


def build_audio_model(cfg: AudioModelConfig):
    """CPC, or the few-shot learner or contrastive objective of model.objective on the same encoder and context
    (pooled over time)."""
    enc, ctx, pred, loss = cfg.encoder, cfg.context, cfg.predictor, cfg.loss
    encoder = ConvEncoder(enc.in_channels, enc.dim, enc.kernels, enc.strides, enc.norm)
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
    if cfg.objective != "cpc":
        return build_learner(cfg.objective, PooledContext(encoder, context, ctx.dim), cfg.meta)
    model = CPC(encoder, context, predictor_from_config(pred, ctx.dim, enc.dim),
                InfoNCE.from_config(loss, pred.first, scored_dim(pred, enc.dim)), target_projection(pred, enc.dim),
                pred.scale)
    if cfg.contrastive.pruned_competitor:
        model.add_pruned_competitor(cfg.contrastive.prune_ratio)
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
