"""Build a CPC model from its config, and the named model sizes.

A named size is a function returning a ModelConfig; a YAML config picks one with `model.size: <name>` and
overrides single fields below it. `cpc_audio_paper()` and friends build the module directly.
"""
from torch import nn

from seqcpc.augment import PatchAugment
from seqcpc.config import (Config, ContextConfig, EncoderConfig, LossConfig, ModelConfig, PatchConfig,
                           PredictorConfig)
from seqcpc.context import RNNContext, TransformerContext
from seqcpc.encoders import ConvEncoder, output_length, receptive_field
from seqcpc.errors import ConfigError
from seqcpc.grid_context import MaskedConvContext
from seqcpc.image_store import read_info
from seqcpc.infonce import InfoNCE
from seqcpc.model import CPC
from seqcpc.patch_cpc import PatchCPC
from seqcpc.patch_encoder import PatchEncoder
from seqcpc.patches import grid_shape
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


def image_small() -> ModelConfig:
    """CPC v2 for 28-32 px images on a CPU: 8 px patches every 4 px (a 6x6 grid on 28 px), a ResNet of
    32-64-128 channels with layer norm, a 2-block masked-conv context, K = 2 rows ahead, every other patch of
    the batch a negative."""
    return ModelConfig(
        size="image_small", modality="image",
        encoder=EncoderConfig(in_channels=1, dim=128),
        context=ContextConfig(kind="masked_conv", dim=128, layers=2),
        predictor=PredictorConfig(steps=2),
        loss=LossConfig(negatives="all"),
        patches=PatchConfig(size=8, stride=4, widths=[32, 64, 128]),
    )


def image_large() -> ModelConfig:
    """CPC v2 for 64-224 px RGB images on GPUs: 16 px patches every 8 px (a 7x7 grid on 64 px), a ResNet of
    64-128-256-512 channels, a 4-block masked-conv context, K = 3, predictions in all four directions, colour
    dropping."""
    cfg = ModelConfig(
        size="image_large", modality="image",
        encoder=EncoderConfig(in_channels=3, dim=512),
        context=ContextConfig(kind="masked_conv", dim=512, layers=4),
        predictor=PredictorConfig(steps=3),
        loss=LossConfig(negatives="all"),
        patches=PatchConfig(size=16, stride=8, widths=[64, 128, 256, 512], blocks=2, directions=4),
    )
    cfg.augment.jitter, cfg.augment.colour_drop, cfg.augment.grey = 2, 0.5, 0.2
    return cfg


MODEL_SIZES = {f.__name__: f for f in (audio_paper, synthetic_tiny, image_small, image_large)}


def build_image_model(cfg: ModelConfig) -> PatchCPC:
    enc, ctx, pc, aug = cfg.encoder, cfg.context, cfg.patches, cfg.augment
    encoder = PatchEncoder(enc.in_channels, enc.dim, pc.widths, pc.blocks)
    n_ctx = 1 if pc.shared_context else pc.directions
    contexts = nn.ModuleList(MaskedConvContext(enc.dim, ctx.dim, ctx.layers, ctx.kernel) for _ in range(n_ctx))
    predictors = nn.ModuleList(LinearPredictor(ctx.dim, enc.dim, cfg.predictor.steps) for _ in range(pc.directions))
    loss = InfoNCE(cfg.loss.negatives, cfg.loss.num_negatives, cfg.loss.normalize, cfg.loss.temperature)
    augment = PatchAugment(aug.jitter, aug.flip, aug.colour_drop, aug.grey, aug.per_patch)
    return PatchCPC(encoder, contexts, predictors, loss, augment, pc.size, pc.stride)


def build_model(cfg: ModelConfig):
    """A CPC (audio, sequences) or PatchCPC (images) model."""
    if cfg.modality == "image":
        return build_image_model(cfg)
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


def check_modality(cfg: Config) -> None:
    image_model, image_data = cfg.model.modality == "image", cfg.data.kind == "images"
    if image_model != image_data:
        raise ConfigError(f"model.modality={cfg.model.modality} does not fit data.kind={cfg.data.kind}: image "
                          f"models train on data.kind=images, audio models on synthetic or manifest data")
    if image_data and cfg.data.batching != "uniform":
        raise ConfigError(f"data.batching={cfg.data.batching} needs speakers or utterances; image data sets "
                          f"take data.batching=uniform")
    if image_model != (cfg.model.context.kind == "masked_conv"):
        raise ConfigError(f"model.context.kind={cfg.model.context.kind}: image models take masked_conv, "
                          f"audio models gru, lstm or transformer")


def check_negatives(cfg: Config, per_sample: int, per_sequence: int) -> None:
    loss, batch = cfg.model.loss, cfg.data.batch_size
    positions = per_sequence if loss.negatives == "sequence" else batch * per_sample
    if loss.negatives != "all" and not 1 <= loss.num_negatives <= positions:
        raise ConfigError(f"model.loss.num_negatives={loss.num_negatives} must be between 1 and the {positions} "
                          f"positions negatives are drawn from")
    if batch < 1 or loss.temperature <= 0:
        raise ConfigError("data.batch_size must be >= 1 and model.loss.temperature > 0")


def check_image_config(cfg: Config) -> int:
    """The image side of check_config: returns the patches per image (Gh * Gw)."""
    pc, enc = cfg.model.patches, cfg.model.encoder
    if not 1 <= pc.stride <= pc.size or not pc.widths or min(pc.widths) < 1 or pc.blocks < 1:
        raise ConfigError(f"model.patches: need 1 <= stride <= size, non-empty positive widths and blocks >= 1, "
                          f"got {pc}")
    if not 1 <= pc.directions <= 4:
        raise ConfigError(f"model.patches.directions={pc.directions} must be 1, 2, 3 or 4")
    if cfg.model.augment.jitter < 0 or cfg.model.context.kernel < 1:
        raise ConfigError("model.augment.jitter must be >= 0 and model.context.kernel >= 1")
    info = read_info(cfg.data.images)
    (height, width), channels = info["size"], info["channels"]
    if channels != enc.in_channels:
        raise ConfigError(f"model.encoder.in_channels={enc.in_channels} but the images in {cfg.data.images} have "
                          f"{channels} channel(s)")
    if pc.size > min(height, width):
        raise ConfigError(f"model.patches.size={pc.size} is larger than the {height}x{width} images")
    rows, cols = grid_shape(height, width, pc.size, pc.stride)
    K, shortest = cfg.model.predictor.steps, min(rows, cols) if pc.directions > 1 else rows
    if K < 1 or shortest <= K:
        raise ConfigError(f"model.predictor.steps={K} must be between 1 and the {shortest} rows of the "
                          f"{rows}x{cols} patch grid minus one")
    check_negatives(cfg, rows * cols, rows)
    return rows * cols


def check_config(cfg: Config) -> int:
    """Refuse impossible shapes before anything is built; return the latent positions of one sample (T for a
    window of audio, Gh * Gw for an image)."""
    check_modality(cfg)
    if cfg.model.modality == "image":
        return check_image_config(cfg)
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
    check_negatives(cfg, T, T)
    return T


def cpc_audio_paper() -> CPC:
    return build_model(audio_paper())


def cpc_synthetic_tiny() -> CPC:
    return build_model(synthetic_tiny())


def cpc_image_small() -> PatchCPC:
    return build_model(image_small())


def cpc_image_large() -> PatchCPC:
    return build_model(image_large())
