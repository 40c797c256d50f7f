"""Build an image CPC model (CPC v2) from its config, and refuse impossible shapes before anything runs."""
from torch import nn

from seqcpc.core.predictors import make_predictor
from seqcpc.errors import ConfigError
from seqcpc.image.augment import PatchAugment
from seqcpc.image.config import ImageModelConfig
from seqcpc.fewshot.build import build_learner
from seqcpc.image.encoder import PatchEncoder, PooledPatches
from seqcpc.image.grid_context import MaskedConvContext
from seqcpc.image.model import PatchCPC
from seqcpc.image.patches import grid_shape
from seqcpc.image.store import read_info
from seqcpc.objectives.infonce import InfoNCE, check_negatives


def build_image_model(cfg: ImageModelConfig):
    """PatchCPC, or the few-shot learner of model.objective on the same (pooled) patch encoder."""
    enc, ctx, grid, aug, pred, loss = cfg.encoder, cfg.context, cfg.patches, cfg.augment, cfg.predictor, cfg.loss
    encoder = PatchEncoder(enc.in_channels, enc.dim, grid.widths, grid.blocks)
    augment = PatchAugment(aug.jitter, aug.flip, aug.colour_drop, aug.grey, aug.per_patch)
    if cfg.objective != "cpc":
        return build_learner(cfg.objective, PooledPatches(encoder, augment, grid.size, grid.stride, cfg.meta.pool),
                             cfg.meta)
    n_ctx = 1 if grid.shared_context else grid.directions
    contexts = nn.ModuleList(MaskedConvContext(enc.dim, ctx.dim, ctx.layers, ctx.kernel) for _ in range(n_ctx))
    predictors = nn.ModuleList(make_predictor(pred.kind, ctx.dim, enc.dim, pred.steps, pred.hidden, pred.per_step)
                               for _ in range(grid.directions))
    return PatchCPC(encoder, contexts, predictors,
                    InfoNCE.from_config(loss),
                    augment, grid.size, grid.stride)


def check_image_config(cfg) -> int:
    """Refuse impossible shapes against the prepared data set; return the patches per image (Gh * Gw)."""
    grid, enc, loss = cfg.model.patches, cfg.model.encoder, cfg.model.loss
    if not 1 <= grid.stride <= grid.size or not grid.widths or min(grid.widths) < 1 or grid.blocks < 1:
        raise ConfigError(f"model.patches: need 1 <= stride <= size, non-empty positive widths and blocks >= 1, "
                          f"got {grid}")
    if not 1 <= grid.directions <= 4:
        raise ConfigError(f"model.patches.directions={grid.directions} must be 1, 2, 3 or 4")
    if cfg.model.augment.jitter < 0 or cfg.model.context.kernel < 1:
        raise ConfigError("model.augment.jitter must be >= 0 and model.context.kernel >= 1")
    if cfg.model.objective == "cpc" and loss.negatives == "group":
        raise ConfigError("model.loss.negatives=group needs group ids such as speakers, which image data sets do "
                          "not have; use all, batch or sequence")
    info = read_info(cfg.data.images)
    (height, width), channels = info["size"], info["channels"]
    if channels != enc.in_channels:
        raise ConfigError(f"model.encoder.in_channels={enc.in_channels} but the images in {cfg.data.images} have "
                          f"{channels} channel(s)")
    if grid.size > min(height, width):
        raise ConfigError(f"model.patches.size={grid.size} is larger than the {height}x{width} images")
    rows, cols = grid_shape(height, width, grid.size, grid.stride)
    if cfg.model.objective != "cpc":
        return rows * cols
    K, shortest = cfg.model.predictor.steps, min(rows, cols) if grid.directions > 1 else rows
    if K < 1 or shortest <= K:
        raise ConfigError(f"model.predictor.steps={K} must be between 1 and the {shortest} rows of the "
                          f"{rows}x{cols} patch grid minus one")
    # each grid column is one scored sequence of `rows` positions
    check_negatives(loss, cfg.data.batch_size, rows * cols, rows)
    return rows * cols
