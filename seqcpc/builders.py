"""Named-size builders, and the three steps from a config to its model (seqcpc.assembly) under one roof.

The named sizes live with their modality (seqcpc/audio/sizes.py, seqcpc/image/sizes.py); `cpc_audio_paper()`
and friends build a CPC module of that size directly.
"""
from seqcpc.assembly import build_model, check_config, complete_config
from seqcpc.config import resolve

__all__ = ["build_model", "check_config", "complete_config", "cpc_audio_paper", "cpc_image_large",
           "cpc_image_small", "cpc_synthetic_tiny"]


def cpc_audio_paper():
    return build_model(resolve({"model": {"size": "audio_paper"}}))


def cpc_synthetic_tiny():
    return build_model(resolve({"model": {"size": "synthetic_tiny"}}))


def cpc_image_small(in_channels: int = 1):
    """image_small for grey (1) or RGB (3) images; a run takes the channels from its data instead."""
    return build_model(resolve({"model": {"size": "image_small", "encoder": {"in_channels": in_channels}}}))


def cpc_image_large(in_channels: int = 3):
    return build_model(resolve({"model": {"size": "image_large", "encoder": {"in_channels": in_channels}}}))
