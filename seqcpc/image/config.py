"""The config sections of image models (CPC v2 on patch grids): model, data and probe."""
import typing
from dataclasses import dataclass, field

from seqcpc.config import OBJECTIVES, FewShotConfig, LossConfig, MetaConfig, PredictorConfig, choice, number, path


@dataclass
class PatchEncoderConfig:
    in_channels: int = number(1, min=1)
    dim: int = number(128, min=1)


@dataclass
class GridContextConfig:
    kind: str = choice("masked_conv", ["masked_conv"])  # row-causal convolutions over the patch grid
    dim: int = number(128, min=1)
    layers: int = number(2, min=1)
    kernel: int = number(3, min=1)  # kernel side of its row-causal convolutions


@dataclass
class PatchConfig:
    """The patch grid and the per-patch ResNet."""
    size: int = number(8, min=1)  # patch side in pixels
    stride: int = number(4, min=1)  # pixels between patches (size / 2: 50% overlap)
    widths: list[int] = number([32, 64, 128], min=1)  # ResNet stage widths; each halves the side
    blocks: int = number(1, min=1)  # residual blocks per stage
    directions: int = number(1, min=1, max=4)  # 1: top-down; up to 4 by rotating the grid
    shared_context: bool = True  # one context network for every direction (else one each)


@dataclass
class AugmentConfig:
    """CPC v2's patch augmentations, applied in training (seqcpc/image/augment.py)."""
    jitter: int = number(1, min=0)  # random shift of each patch, up to this many pixels
    flip: bool = True  # random horizontal flips
    colour_drop: float = number(0.0, min=0, max=1)  # RGB: chance of keeping one of the three channels
    grey: float = number(0.0, min=0, max=1)  # chance of turning an RGB patch grey
    per_patch: bool = True  # a draw per patch (else one per image)


@dataclass
class ImageModelConfig:
    size: typing.Optional[str] = None  # a named preset (seqcpc/image/sizes.py), applied before the fields below
    modality: str = choice("image", ["image"])
    encoder: PatchEncoderConfig = field(default_factory=PatchEncoderConfig)
    context: GridContextConfig = field(default_factory=GridContextConfig)
    predictor: PredictorConfig = field(default_factory=lambda: PredictorConfig(steps=2))
    loss: LossConfig = field(default_factory=lambda: LossConfig(negatives="all"))
    patches: PatchConfig = field(default_factory=PatchConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    objective: str = choice("cpc", OBJECTIVES)  # cpc; or a few-shot learner on this encoder (the meta section)
    meta: MetaConfig = field(default_factory=MetaConfig)


@dataclass
class ImageDataConfig:
    kind: str = choice("images", ["images"])
    images: str = path()  # a folder written by data_prep/idx_images.py or data_prep/image_folder.py
    batch_size: int = number(8, min=1)  # per device
    num_workers: int = number(0, min=0)


@dataclass
class ImageProbeConfig(FewShotConfig):
    """Linear probes, label efficiency and few-shot episodes (seqcpc/image/eval.py)."""
    label_fractions: list[float] = number([0.01, 0.1, 1.0], above=0, max=1)
    l2_grid: list[float] = number([1e-4, 1e-3, 1e-2], min=0)  # probe penalties tried
    pool: int = number(2, min=1)  # the latent grid is average-pooled to pool x pool cells, then flattened
    supervised_epochs: int = number(30, min=1)  # the from-scratch baseline's epochs on each label subset ...
    supervised_max_steps: int = number(400, min=1)  # ... capped at this many steps
    supervised_lr: float = number(2e-3, above=0)
