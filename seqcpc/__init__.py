"""seqcpc: Contrastive Predictive Coding for any ordered sequence."""
from seqcpc.audio.sizes import audio_paper, synthetic_tiny
from seqcpc.builders import (build_model, check_config, complete_config, cpc_audio_paper, cpc_image_large,
                             cpc_image_small, cpc_synthetic_tiny)
from seqcpc.config import Config, load_config
from seqcpc.core.model import CPC
from seqcpc.core.pretrainable import Pretrainable
from seqcpc.image.model import PatchCPC
from seqcpc.image.sizes import image_large, image_small
from seqcpc.modalities import Modality, register
from seqcpc.objectives.infonce import InfoNCE
from seqcpc.objectives.registry import Objective
from seqcpc.objectives.registry import register as register_objective
from seqcpc.train.checkpoint import load_model

__all__ = ["CPC", "Config", "InfoNCE", "Modality", "Objective", "PatchCPC", "Pretrainable", "audio_paper",
           "build_model", "check_config", "complete_config", "cpc_audio_paper", "cpc_image_large", "cpc_image_small",
           "cpc_synthetic_tiny", "image_large", "image_small", "load_config", "load_model", "register",
           "register_objective", "synthetic_tiny"]
