"""Build an image CPC model (CPC v2) from its config, and refuse impossible shapes before anything runs."""
from torch import nn

from seqcpc.config import CONTRASTIVE
from seqcpc.core.predictors import check_offsets, predictor_from_config, scored_dim, target_projection
from seqcpc.errors import ConfigError
from seqcpc.image.augment import PatchAugment
from seqcpc.image.config import PRETEXT, ImageModelConfig
from seqcpc.fewshot.build import build_learner
from seqcpc.image.encoder import PatchEncoder, PooledPatches
from seqcpc.image.grid_context import MaskedConvContext
from seqcpc.image.model import PatchCPC
from seqcpc.image.pretext import build_pretext, check_pretext
from seqcpc.image.patches import grid_shape
from seqcpc.image.store import read_info
from seqcpc.image.views import image_views_from_config
from seqcpc.objectives.contrastive import build_contrastive
from seqcpc.objectives.infonce import InfoNCE, check_negatives


def build_image_model(cfg: ImageModelConfig):
    """PatchCPC, or the pretext task, few-shot learner or contrastive objective of model.objective on the same
    patch encoder (pooled for learners and contrastive objectives, which see whole images)."""
    enc, ctx, grid, aug, pred, loss = cfg.encoder, cfg.context, cfg.patches, cfg.augment, cfg.predictor, cfg.loss
    if enc.in_channels is None:
        raise ConfigError("model.encoder.in_channels is not set: it is taken from the prepared images when a run "
                          "checks its config (seqcpc.check_config); set it (1 grey, 3 RGB) to build a model alone")
    encoder = PatchEncoder(enc.in_channels, enc.dim, grid.widths, grid.blocks)
    augment = PatchAugment(aug.jitter, aug.flip, aug.colour_drop, aug.grey, aug.per_patch)
    if cfg.objective in PRETEXT:
        return build_pretext(cfg.objective, encoder, augment, grid.size, grid.stride, cfg.pretext)
    if cfg.objective in CONTRASTIVE:  # views of whole images do the augmenting: the patches are taken as they are
        features = PooledPatches(encoder, PatchAugment(), grid.size, grid.stride, cfg.contrastive.pool)
        return build_contrastive(cfg.objective, features, image_views_from_config(cfg.views), cfg.contrastive)
    if cfg.objective != "cpc":
        return build_learner(cfg.objective, PooledPatches(encoder, augment, grid.size, grid.stride, cfg.meta.pool),
                             cfg.meta)
    n_ctx = 1 if grid.shared_context else grid.directions
    contexts = nn.ModuleList(MaskedConvContext(enc.dim, ctx.dim, ctx.layers, ctx.kernel) for _ in range(n_ctx))
    predictors = nn.ModuleList(predictor_from_config(pred, ctx.dim, enc.dim) for _ in range(grid.directions))
    model = PatchCPC(encoder, contexts, predictors, InfoNCE.from_config(loss, pred.first, scored_dim(pred, enc.dim)),
                     augment, grid.size, grid.stride, target_projection(pred, enc.dim), pred.scale)
    if cfg.contrastive.pruned_competitor:
        model.add_pruned_competitor(cfg.contrastive.prune_ratio)
    return model


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
    if enc.in_channels is None:
        enc.in_channels = channels  # the model follows the data unless the config says otherwise
    elif channels != enc.in_channels:
        raise ConfigError(f"model.encoder.in_channels={enc.in_channels} but the images in {cfg.data.images} have "
                          f"{channels} channel(s); leave it unset to follow the data")
    if grid.size > min(height, width):
        raise ConfigError(f"model.patches.size={grid.size} is larger than the {height}x{width} images")
    rows, cols = grid_shape(height, width, grid.size, grid.stride)
    if cfg.model.objective in PRETEXT:
        check_pretext(cfg.model, height, width)
    if cfg.model.objective != "cpc":
        return rows * cols
    shortest = min(rows, cols) if grid.directions > 1 else rows
    check_offsets(cfg.model.predictor, shortest, f"rows of the {rows}x{cols} patch grid")
    # each grid column is one scored sequence of `rows` positions
    check_negatives(loss, cfg.data.batch_size, rows * cols, rows)
    return rows * cols
