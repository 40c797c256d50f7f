"""Build an audio CPC model from its config, and refuse impossible shapes before anything runs."""
from seqcpc.audio.config import AudioModelConfig
from seqcpc.audio.encoder import ConvEncoder, output_length, receptive_field
from seqcpc.core.context import RNNContext, TransformerContext
from seqcpc.core.model import CPC, PooledContext
from seqcpc.core.predictors import make_predictor
from seqcpc.errors import ConfigError
from seqcpc.fewshot.build import build_learner
from seqcpc.objectives.infonce import InfoNCE, check_negatives


def build_audio_model(cfg: AudioModelConfig):
    """CPC, or the few-shot learner of model.objective on the same encoder and context (pooled over time)."""
    enc, ctx, pred, loss = cfg.encoder, cfg.context, cfg.predictor, cfg.loss
    encoder = ConvEncoder(enc.in_channels, enc.dim, enc.kernels, enc.strides, enc.norm)
    if ctx.kind == "transformer":
        context = TransformerContext(enc.dim, ctx.dim, ctx.layers, ctx.heads)
    else:
        context = RNNContext(enc.dim, ctx.dim, ctx.layers, cell=ctx.kind)
    if cfg.objective != "cpc":
        return build_learner(cfg.objective, PooledContext(encoder, context, ctx.dim), cfg.meta)
    predictor = make_predictor(pred.kind, ctx.dim, enc.dim, pred.steps, pred.hidden, pred.per_step)
    return CPC(encoder, context, predictor, InfoNCE.from_config(loss))


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
    T, K = output_length(window, enc.kernels, enc.strides), cfg.model.predictor.steps
    if cfg.model.objective != "cpc":
        if cfg.data.kind != "manifest":
            raise ConfigError(f"model.objective={cfg.model.objective} learns classes from a corpus's speakers: "
                              f"data.kind=manifest data.manifest=PATH")
        return T
    if K < 1 or T <= K:
        raise ConfigError(f"model.predictor.steps={K} must be between 1 and the {T} latent steps of a "
                          f"data.window={window} minus one")
    check_negatives(cfg.model.loss, cfg.data.batch_size, T, T)
    return T
