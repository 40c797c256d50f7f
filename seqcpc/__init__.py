"""seqcpc: Contrastive Predictive Coding for any ordered sequence."""
from seqcpc.builders import build_model, cpc_audio_paper, cpc_image_large, cpc_image_small, cpc_synthetic_tiny
from seqcpc.checkpoint import load_model
from seqcpc.config import Config, load_config
from seqcpc.infonce import InfoNCE
from seqcpc.model import CPC
from seqcpc.patch_cpc import PatchCPC

__all__ = ["CPC", "Config", "InfoNCE", "PatchCPC", "build_model", "cpc_audio_paper", "cpc_image_large",
           "cpc_image_small", "cpc_synthetic_tiny", "load_config", "load_model"]
