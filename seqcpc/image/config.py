"""The config sections of image models (CPC v2 on patch grids): model, data and probe."""
import typing
from dataclasses import dataclass, field

from seqcpc.config import FewShotConfig
from seqcpc.fields import choice, number, path


@dataclass
class PatchEncoderConfig:
    in_channels: typing.Optional[int] = number(None, min=1)  # None: the prepared data set's channels (1 or 3)
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
class ImageViewsConfig:
    """SimCLR's augmentations, giving the views of each image for objectives that compare views (SimCLR, MoCo
    v2, SDCLR): the section objective.views (seqcpc/image/views.py). The probabilities are per image."""
    crop_scale: list[float] = number([0.2, 1.0], above=0, max=1)  # [low, high] area fraction of the random crop
    crop_ratio: list[float] = number([3 / 4, 4 / 3], above=0)  # [low, high] crop aspect ratio (log-uniform)
    flip: float = number(0.5, min=0, max=1)  # chance of a horizontal flip
    jitter: float = number(0.4, min=0, max=1)  # brightness, contrast, saturation factors in [1 - jitter, 1 + jitter]
    jitter_prob: float = number(0.8, min=0, max=1)  # chance of the colour jitter
    grey: float = number(0.2, min=0, max=1)  # RGB: chance of turning the image grey
    blur: float = number(0.0, min=0, max=1)  # chance of a Gaussian blur (SimCLR on ImageNet: 0.5; small images: 0)
    blur_sigma: list[float] = number([0.1, 2.0], above=0)  # [low, high] blur sigma in pixels


@dataclass
class ImageModelConfig:
    size: typing.Optional[str] = None  # a named preset (seqcpc/image/sizes.py), applied before the fields below
    modality: str = choice("image", ["image"])
    encoder: PatchEncoderConfig = field(default_factory=PatchEncoderConfig)
    context: GridContextConfig = field(default_factory=GridContextConfig)
    patches: PatchConfig = field(default_factory=PatchConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)


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
    # the same encoder trained from scratch on each label subset, to convergence: it stops when the accuracy on a
    # held-out part of the subset has not improved for `patience` checks, and keeps its best weights
    supervised_epochs: int = number(100, min=1)  # at most this many epochs ...
    supervised_max_steps: int = number(0, min=0)  # ... and steps (0: no cap); reported when a cap stops it
    supervised_patience: int = number(5, min=1)  # held-out checks in a row without a gain before it stops
    supervised_check_every: int = number(500, min=1)  # steps between held-out checks (at most one epoch)
    supervised_holdout: float = number(0.1, above=0, max=0.5)  # share of each class held out (<= 2000 images)
    supervised_lr: float = number(2e-3, above=0)  # AdamW; halved when a check brings no gain twice in a row
