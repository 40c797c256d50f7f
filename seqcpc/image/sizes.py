"""Named sizes of image models: each returns a model config; `model.size: <name>` in a YAML config picks one."""
from seqcpc.config import LossConfig, PredictorConfig
from seqcpc.image.config import GridContextConfig, ImageModelConfig, PatchConfig, PatchEncoderConfig


def cpc_v2_predictor() -> PredictorConfig:
    """The prediction task of CPC v2's published pseudocode (Henaff et al. 2020, appendix A.2: steps_to_ignore=2,
    steps_to_predict=3, target_dim=64, emb_scale=0.1): only the row 3 below a context is predicted (rows 1 and 2
    below are skipped; with patches overlapping by half, row 1 below shares pixels with the context's own row),
    against the latents projected to 64 dims, the predictions scaled by 0.1."""
    return PredictorConfig(first=3, steps=3, target_dim=64, scale=0.1)


def image_small() -> ImageModelConfig:
    """CPC v2 for 28-32 px images on a CPU: 8 px patches every 4 px (a 6x6 grid on 28 px), a ResNet of
    32-64-128 channels with layer norm, a 2-block masked-conv context, CPC v2's prediction of the row 3 below
    (targets projected to 64 dims, predictions scaled by 0.1), every other patch of the batch a negative."""
    return ImageModelConfig(
        size="image_small",
        encoder=PatchEncoderConfig(dim=128),  # in_channels: from the data
        context=GridContextConfig(dim=128, layers=2),
        predictor=cpc_v2_predictor(),
        loss=LossConfig(negatives="all"),
        patches=PatchConfig(size=8, stride=4, widths=[32, 64, 128]),
    )


def image_large() -> ImageModelConfig:
    """CPC v2 for 64-224 px RGB images on GPUs: 16 px patches every 8 px (a 7x7 grid on 64 px), a ResNet of
    64-128-256-512 channels, a 4-block masked-conv context, CPC v2's prediction of the row 3 below, in all four
    directions, colour dropping."""
    cfg = ImageModelConfig(
        size="image_large",
        encoder=PatchEncoderConfig(dim=512),  # in_channels: from the data
        context=GridContextConfig(dim=512, layers=4),
        predictor=cpc_v2_predictor(),
        loss=LossConfig(negatives="all"),
        patches=PatchConfig(size=16, stride=8, widths=[64, 128, 256, 512], blocks=2, directions=4),
    )
    cfg.augment.jitter, cfg.augment.colour_drop, cfg.augment.grey = 2, 0.5, 0.2
    return cfg


SIZES = {f.__name__: f for f in (image_small, image_large)}
