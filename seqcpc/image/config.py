"""The config sections of image models (CPC v2 on patch grids): model, data and probe."""
import typing
from dataclasses import dataclass, field

from seqcpc.config import FewShotConfig
from seqcpc.errors import ConfigError
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
    embed_batch: int = number(1000, min=1)  # images a model embeds at once for the probes
    feature_cache: str = path("")  # where each model's features are cached ("": <probes folder>/features)
    # the same encoder trained from scratch on each label subset (seqcpc/image/supervised.py): AdamW with a warm-up
    # and a cosine decay over a budget of epochs, chosen once among supervised_budgets budgets (the longest, half
    # of it, a quarter, ...) on a validation set, then trained with that budget by every seed
    supervised_fractions: list[float] = number([], above=0, max=1)  # of label_fractions ([]: all of them)
    supervised_epochs: list[float] = number([40.0], above=0)  # the longest budget, per label fraction (one: every)
    supervised_budgets: int = number(2, min=1)  # budgets tried: the longest, then halved (1: no choice)
    supervised_tolerance: float = number(0.005, min=0, max=1)  # the shortest budget this close to the best wins
    supervised_val_images: int = number(5000, min=1)  # stratified validation set, never trained on
    supervised_checks: int = number(5, min=1)  # validation checks along each budget's run (its curve)
    supervised_schedule: str = path("")  # the chosen budgets, read by every seed ("": <probes folder>/...json)
    supervised_max_steps: int = number(0, min=0)  # caps each run's steps (0: no cap)
    supervised_lr: float = number(2e-3, above=0)  # AdamW's peak learning rate


def check_probe_config(probe: ImageProbeConfig) -> None:
    """Refuse supervised-baseline settings that do not fit the label fractions."""
    if len(probe.supervised_epochs) not in (1, len(probe.label_fractions)):
        raise ConfigError(f"probe.supervised_epochs={probe.supervised_epochs}: give one budget, or one per label "
                          f"fraction of probe.label_fractions={probe.label_fractions}")
    unknown = sorted(set(probe.supervised_fractions) - set(probe.label_fractions))
    if unknown:
        raise ConfigError(f"probe.supervised_fractions: {unknown} are not among probe.label_fractions="
                          f"{probe.label_fractions}")
