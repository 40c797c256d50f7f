"""Named sizes of image models: each returns a model config; `model.size: <name>` in a YAML config picks one."""
from seqcpc.image.config import GridContextConfig, ImageModelConfig, PatchConfig, PatchEncoderConfig


def image_small() -> ImageModelConfig:
    """CPC v2 for 28-32 px images on a CPU: 8 px patches every 4 px (a 6x6 grid on 28 px), a ResNet of
    32-64-128 channels with layer norm, a 2-block masked-conv context (CPC on images defaults to CPC v2's
    task: seqcpc/objectives/cpc.py)."""
    return ImageModelConfig(
        size="image_small",
        encoder=PatchEncoderConfig(dim=128),  # in_channels: from the data
        context=GridContextConfig(dim=128, layers=2),
        patches=PatchConfig(size=8, stride=4, widths=[32, 64, 128]),
    )


def image_large() -> ImageModelConfig:
    """CPC v2 for 64-224 px RGB images on GPUs: 16 px patches every 8 px (a 7x7 grid on 64 px), a ResNet of
    64-128-256-512 channels, a 4-block masked-conv context, in all four directions, colour dropping."""
    cfg = ImageModelConfig(
        size="image_large",
        encoder=PatchEncoderConfig(dim=512),  # in_channels: from the data
        context=GridContextConfig(dim=512, layers=4),
        patches=PatchConfig(size=16, stride=8, widths=[64, 128, 256, 512], blocks=2, directions=4),
    )
    cfg.augment.jitter, cfg.augment.colour_drop, cfg.augment.grey = 2, 0.5, 0.2
    return cfg


SIZES = {f.__name__: f for f in (image_small, image_large)}
