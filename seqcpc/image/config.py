"""The config sections of image models (CPC v2 on patch grids): model, data and probe."""
import typing
from dataclasses import dataclass, field

from seqcpc.config import FewShotConfig, LossConfig, PredictorConfig, choice


@dataclass
class PatchEncoderConfig:
    in_channels: int = 1
    dim: int = 128


@dataclass
class GridContextConfig:
    kind: str = choice("masked_conv", ["masked_conv"])  # row-causal convolutions over the patch grid
    dim: int = 128
    layers: int = 2
    kernel: int = 3  # kernel side of its row-causal convolutions


@dataclass
class PatchConfig:
    """The patch grid and the per-patch ResNet."""
    size: int = 8  # patch side in pixels
    stride: int = 4  # pixels between patches (size / 2: 50% overlap)
    widths: list[int] = field(default_factory=lambda: [32, 64, 128])  # ResNet stage widths; each halves the side
    blocks: int = 1  # residual blocks per stage
    directions: int = 1  # 1: top-down; up to 4 by rotating the grid
    shared_context: bool = True  # one context network for every direction (else one each)


@dataclass
class AugmentConfig:
    """CPC v2's patch augmentations, applied in training (seqcpc/image/augment.py)."""
    jitter: int = 1  # random shift of each patch, up to this many pixels
    flip: bool = True  # random horizontal flips
    colour_drop: float = 0.0  # RGB: chance of keeping one of the three channels
    grey: float = 0.0  # chance of turning an RGB patch grey
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


@dataclass
class ImageDataConfig:
    kind: str = choice("images", ["images"])
    images: str = ""  # a folder written by data_prep/idx_images.py or data_prep/image_folder.py
    batch_size: int = 8  # per device
    num_workers: int = 0


@dataclass
class ImageProbeConfig(FewShotConfig):
    """Linear probes, label efficiency and few-shot episodes (seqcpc/image/eval.py)."""
    label_fractions: list[float] = field(default_factory=lambda: [0.01, 0.1, 1.0])
    l2_grid: list[float] = field(default_factory=lambda: [1e-4, 1e-3, 1e-2])  # probe penalties tried
    pool: int = 2  # the latent grid is average-pooled to pool x pool cells, then flattened
    supervised_epochs: int = 30  # the from-scratch baseline's epochs on each label subset ...
    supervised_max_steps: int = 400  # ... capped at this many steps
    supervised_lr: float = 2e-3
