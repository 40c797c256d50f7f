"""The parts an image model offers objectives (CPC v2's patch grid), and the checks and completion of an image
config against its prepared data set.

Shapes: B batch, C channels, H x W pixels, Gh x Gw patch grid, D latent dim, E context dim, P pool cells a side.
The parts are built from the model section in a fixed order (the patch encoder first; a context network only
for the objectives that ask for one), so a run's initial weights depend only on its config and seed.
"""
from torch import nn

from seqcpc.errors import ConfigError
from seqcpc.image.augment import PatchAugment
from seqcpc.image.config import ImageModelConfig, check_probe_config
from seqcpc.image.encoder import LocalGlobalPatches, PatchEncoder, PooledPatches
from seqcpc.image.grid_context import MaskedConvContext
from seqcpc.image.lab_views import LabViews
from seqcpc.image.model import PatchCPC
from seqcpc.image.patches import grid_shape
from seqcpc.image.store import read_info
from seqcpc.image.views import image_views_from_config
from seqcpc.modalities import Geometry


class ImageParts:
    """A per-patch ResNet x (B, C, H, W) -> z (B, Gh, Gw, D) with CPC v2's patch augment, and what objectives
    assemble from it."""
    labels = frame_labels = None  # image batches carry item indices, not classes

    def __init__(self, cfg: ImageModelConfig):
        enc, grid, aug = cfg.encoder, cfg.patches, cfg.augment
        if enc.in_channels is None:
            raise ConfigError("model.encoder.in_channels is not set: it is taken from the prepared images when a "
                              "run completes its config (seqcpc.complete_config); set it (1 grey, 3 RGB) to build "
                              "a model alone")
        self.cfg = cfg
        self.encoder = PatchEncoder(enc.in_channels, enc.dim, grid.widths, grid.blocks)
        self.augment = PatchAugment(aug.jitter, aug.flip, aug.colour_drop, aug.grey, aug.per_patch)
        self.latent_dim, self.context_dim = enc.dim, cfg.context.dim

    def autoregressive(self, task) -> PatchCPC:
        """The masked-conv context (one, or one per direction) and a predictor per direction on the grid."""
        ctx, grid = self.cfg.context, self.cfg.patches
        n_ctx = 1 if grid.shared_context else grid.directions
        contexts = nn.ModuleList(MaskedConvContext(self.latent_dim, ctx.dim, ctx.layers, ctx.kernel)
                                 for _ in range(n_ctx))
        predictors = nn.ModuleList(task.predictor(ctx.dim, self.latent_dim) for _ in range(grid.directions))
        return PatchCPC(self.encoder, contexts, predictors, task.loss(self.latent_dim), self.augment, grid.size,
                        grid.stride, task.targets(self.latent_dim), task.scale)

    def pooled(self, pool: int = 1, augment: bool = True) -> PooledPatches:
        """The latent grid pooled to pool x pool cells (B, D P^2); patches augmented as in CPC unless views of
        whole images do the augmenting (augment=False)."""
        grid = self.cfg.patches
        return PooledPatches(self.encoder, self.augment if augment else PatchAugment(), grid.size, grid.stride, pool)

    def local_global(self, augment: bool = True) -> LocalGlobalPatches:
        """The latent grid (B, Gh, Gw, D) and its mean (B, D), patches augmented as in CPC unless `augment` is off."""
        grid = self.cfg.patches
        return LocalGlobalPatches(self.encoder, self.augment if augment else PatchAugment(), grid.size, grid.stride)

    def views(self, cfg):
        return image_views_from_config(cfg)

    def patches(self) -> tuple:
        """(encoder, patch augment, patch side, stride) for objectives that cut their own patches."""
        return self.encoder, self.augment, self.cfg.patches.size, self.cfg.patches.stride

    def lab_encoder(self, channels: int) -> PatchEncoder:
        """A new patch encoder of the model's widths, blocks and dim on `channels` channels of Lab colour (1: L,
        2: ab), for the objectives that split colour images (seqcpc/image/lab.py); check_lab refuses grey data."""
        enc, grid = self.cfg.encoder, self.cfg.patches
        return PatchEncoder(channels, enc.dim, grid.widths, grid.blocks)

    def multiview(self, pool: int = 1) -> LabViews:
        """CMC's views: the L and the ab channels, each through its own new patch encoder, pooled to pool x pool."""
        grid = self.cfg.patches
        return LabViews([self.lab_encoder(1), self.lab_encoder(2)], self.augment, grid.size, grid.stride, pool)


def complete_image(cfg, objective) -> None:
    """The encoder's input channels from the prepared images, unless given."""
    channels, enc = read_info(cfg.data.images)["channels"], cfg.model.encoder
    if enc.in_channels is None:
        enc.in_channels = channels  # the model follows the data unless the config says otherwise


def check_image_config(cfg, objective) -> Geometry:
    """Refuse impossible shapes against the prepared data set; the geometry of one image's patch grid."""
    grid, enc = cfg.model.patches, cfg.model.encoder
    if not 1 <= grid.stride <= grid.size or not grid.widths or min(grid.widths) < 1 or grid.blocks < 1:
        raise ConfigError(f"model.patches: need 1 <= stride <= size, non-empty positive widths and blocks >= 1, "
                          f"got {grid}")
    if not 1 <= grid.directions <= 4:
        raise ConfigError(f"model.patches.directions={grid.directions} must be 1, 2, 3 or 4")
    if cfg.model.augment.jitter < 0 or cfg.model.context.kernel < 1:
        raise ConfigError("model.augment.jitter must be >= 0 and model.context.kernel >= 1")
    info = read_info(cfg.data.images)
    (height, width), channels = info["size"], info["channels"]
    if {"multiview", "lab_encoder"} & set(objective.parts):
        check_lab(cfg, channels)
    if enc.in_channels is not None and channels != enc.in_channels:
        raise ConfigError(f"model.encoder.in_channels={enc.in_channels} but the images in {cfg.data.images} have "
                          f"{channels} channel(s); leave it unset to follow the data")
    if grid.size > min(height, width):
        raise ConfigError(f"model.patches.size={grid.size} is larger than the {height}x{width} images")
    rows, cols = grid_shape(height, width, grid.size, grid.stride)
    # each grid column is one scored sequence of `rows` positions; more directions also run along the rows
    shortest = min(rows, cols) if grid.directions > 1 else rows
    geometry = Geometry(rows * cols, shortest, rows, f"rows of the {rows}x{cols} patch grid", pool=min(rows, cols))
    geometry.check_pool("probe.pool", cfg.probe.pool)
    check_probe_config(cfg.probe)
    return geometry


def check_lab(cfg, channels: int) -> None:
    """Refuse grey images, and patch augments that change colours, for an objective that splits colour images into
    their L and ab channels of Lab colour (CMC, colourisation)."""
    name = cfg.objective.name
    if channels != 3:
        raise ConfigError(f"objective.name={name} splits colour images into the L and ab channels of Lab colour, and "
                          f"the images in {cfg.data.images} are grey ({channels} channel): use colour images")
    aug = cfg.model.augment
    if aug.colour_drop or aug.grey:
        raise ConfigError(f"objective.name={name} reads the images' colours (their ab channels), which "
                          f"model.augment.colour_drop={aug.colour_drop} and model.augment.grey={aug.grey} change: "
                          f"set both to 0")


def image_size(cfg) -> tuple:
    """(height, width) of the prepared images."""
    return tuple(read_info(cfg.data.images)["size"])
