"""Build any registered model from its config, check a config against its data, and named-size builders.

A config names its modality (seqcpc.modalities); the modality's entry builds and checks it. The named sizes
live with their modality (seqcpc/audio/sizes.py, seqcpc/image/sizes.py); `cpc_audio_paper()` and friends build
the module directly.
"""
from seqcpc import modalities
from seqcpc.audio.sizes import audio_paper, synthetic_tiny
from seqcpc.image.sizes import image_large, image_small


def build_model(model_cfg):
    """The model of a `model:` config section (a seqcpc.core.model.Pretrainable)."""
    return modalities.get(model_cfg.modality).build(model_cfg)


def check_config(cfg) -> int:
    """Refuse impossible shapes before anything is built; return the latent positions of one sample (T for a
    window of audio, Gh * Gw for an image)."""
    return modalities.get(cfg.model.modality).check(cfg)


def cpc_audio_paper():
    return build_model(audio_paper())


def cpc_synthetic_tiny():
    return build_model(synthetic_tiny())


def cpc_image_small(in_channels: int = 1):
    """image_small for grey (1) or RGB (3) images; a run takes the channels from its data instead."""
    cfg = image_small()
    cfg.encoder.in_channels = in_channels
    return build_model(cfg)


def cpc_image_large(in_channels: int = 3):
    cfg = image_large()
    cfg.encoder.in_channels = in_channels
    return build_model(cfg)
