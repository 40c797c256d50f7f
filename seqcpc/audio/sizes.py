"""Named sizes of audio models: each returns a model config; `model.size: <name>` in a YAML config picks one."""
from seqcpc.audio.config import AudioModelConfig, ConvEncoderConfig, SequenceContextConfig


def audio_paper() -> AudioModelConfig:
    """The CPC paper's audio model: 5 strided convs of 512 channels (one latent per 10 ms at 16 kHz), GRU 256
    (CPC's defaults are the paper's task: K = 12 linear predictors, 128 negatives from the batch)."""
    return AudioModelConfig(size="audio_paper")


def synthetic_tiny() -> AudioModelConfig:
    """A small model for the built-in synthetic sequences and for tests: one latent per 40 samples (its runs
    predict objective.predictor.steps=6 with objective.loss.num_negatives=32, set in their configs)."""
    return AudioModelConfig(
        size="synthetic_tiny",
        encoder=ConvEncoderConfig(dim=64, kernels=[10, 8, 4], strides=[5, 4, 2], norm="layer"),
        context=SequenceContextConfig(kind="gru", dim=64),
    )


SIZES = {f.__name__: f for f in (audio_paper, synthetic_tiny)}
