"""The image entry of the modality registry: images as grids of patches (CPC v2), from a prepared image store."""
from seqcpc.image.build import build_image_model, check_image_config
from seqcpc.image.config import ImageDataConfig, ImageModelConfig, ImageProbeConfig
from seqcpc.image.eval import run_image_probes
from seqcpc.image.sizes import SIZES
from seqcpc.image.store import ImageDataset
from seqcpc.modalities import Modality


def image_datasets(cfg: ImageDataConfig, seed: int):
    """(train, test) splits of the prepared data set; the seed is unused (images are read as they are)."""
    return ImageDataset(cfg.images, "train"), ImageDataset(cfg.images, "test")


IMAGE = Modality(
    name="image", model_config=ImageModelConfig, data_config=ImageDataConfig, probe_config=ImageProbeConfig,
    build=build_image_model, check=check_image_config, datasets=image_datasets, evaluate=run_image_probes,
    sizes=SIZES,
)
