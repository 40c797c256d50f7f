"""Named sizes of audio models: each returns a model config; `model.size: <name>` in a YAML config picks one."""
from seqcpc.audio.config import AudioModelConfig, ConvEncoderConfig, SequenceContextConfig
from seqcpc.config import LossConfig, PredictorConfig


def audio_paper() -> AudioModelConfig:
    """The CPC paper's audio model: 5 strided convs of 512 channels (one latent per 10 ms at 16 kHz),
    GRU 256, K = 12 linear predictors, 128 negatives from the batch."""
    return AudioModelConfig(size="audio_paper")


def synthetic_tiny() -> AudioModelConfig:
    """A small model for the built-in synthetic sequences and for tests: one latent per 40 samples."""
    return AudioModelConfig(
        size="synthetic_tiny",
        encoder=ConvEncoderConfig(dim=64, kernels=[10, 8, 4], strides=[5, 4, 2], norm="layer"),
        context=SequenceContextConfig(kind="gru", dim=64),
        predictor=PredictorConfig(steps=6),
        loss=LossConfig(num_negatives=32),
    )


SIZES = {f.__name__: f for f in (audio_paper, synthetic_tiny)}
