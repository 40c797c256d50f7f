"""Build a CPC model from its config, and the named model sizes.

A named size is a function returning a ModelConfig; a YAML config picks one with `model.size: <name>` and
overrides single fields below it. `cpc_audio_paper()` and friends build the module directly.
"""
from seqcpc.config import Config, ContextConfig, EncoderConfig, LossConfig, ModelConfig, PredictorConfig
from seqcpc.context import RNNContext, TransformerContext
from seqcpc.encoders import ConvEncoder, output_length, receptive_field
from seqcpc.errors import ConfigError
from seqcpc.infonce import InfoNCE
from seqcpc.model import CPC
from seqcpc.predictors import LinearPredictor, MLPPredictor


def audio_paper() -> ModelConfig:
    """The CPC paper's audio model: 5 strided convs of 512 channels (one latent per 10 ms at 16 kHz),
    GRU 256, K = 12 linear predictors, 128 negatives from the batch."""
    return ModelConfig(size="audio_paper")


def synthetic_tiny() -> ModelConfig:
    """A small model for the built-in synthetic sequences and for tests: one latent per 40 samples."""
    return ModelConfig(
        size="synthetic_tiny",
        encoder=EncoderConfig(dim=64, kernels=[10, 8, 4], strides=[5, 4, 2], norm="layer"),
        context=ContextConfig(kind="gru", dim=64),
        predictor=PredictorConfig(steps=6),
        loss=LossConfig(num_negatives=32),
    )


MODEL_SIZES = {f.__name__: f for f in (audio_paper, synthetic_tiny)}


def build_model(cfg: ModelConfig) -> CPC:
    enc = cfg.encoder
    encoder = ConvEncoder(enc.in_channels, enc.dim, enc.kernels, enc.strides, enc.norm)
    ctx = cfg.context
    if ctx.kind == "transformer":
        context = TransformerContext(enc.dim, ctx.dim, ctx.layers, ctx.heads)
    else:
        context = RNNContext(enc.dim, ctx.dim, ctx.layers, cell=ctx.kind)
    pred = cfg.predictor
    if pred.kind == "mlp":
        predictor = MLPPredictor(ctx.dim, enc.dim, pred.steps, pred.hidden, pred.per_step)
    else:
        predictor = LinearPredictor(ctx.dim, enc.dim, pred.steps)
    loss = InfoNCE(cfg.loss.negatives, cfg.loss.num_negatives, cfg.loss.normalize, cfg.loss.temperature)
    return CPC(encoder, context, predictor, loss)


def check_config(cfg: Config) -> int:
    """Refuse impossible shapes before anything is built; return the latent steps T of one window."""
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
    if K < 1 or T <= K:
        raise ConfigError(f"model.predictor.steps={K} must be between 1 and the {T} latent steps of a "
                          f"data.window={window} minus one")
    loss, batch = cfg.model.loss, cfg.data.batch_size
    positions = T if loss.negatives == "sequence" else batch * T
    if loss.negatives != "all" and not 1 <= loss.num_negatives <= positions:
        raise ConfigError(f"model.loss.num_negatives={loss.num_negatives} must be between 1 and the {positions} "
                          f"positions negatives are drawn from")
    if batch < 1 or cfg.model.loss.temperature <= 0:
        raise ConfigError("data.batch_size must be >= 1 and model.loss.temperature > 0")
    return T


def cpc_audio_paper() -> CPC:
    return build_model(audio_paper())


def cpc_synthetic_tiny() -> CPC:
    return build_model(synthetic_tiny())
