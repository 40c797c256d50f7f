"""The image entry of the modality registry: images as grids of patches (CPC v2), from a prepared image store."""
from seqcpc.image.config import ImageDataConfig, ImageModelConfig, ImageProbeConfig, ImageViewsConfig
from seqcpc.image.eval import run_image_probes
from seqcpc.image.fewshot import image_episode_data, image_frozen_features
from seqcpc.image.parts import ImageParts, check_image_config, complete_image
from seqcpc.image.sizes import SIZES
from seqcpc.image.store import ImageDataset
from seqcpc.modalities import Modality


def image_datasets(cfg: ImageDataConfig, seed: int):
    """(train, test) splits of the prepared data set; the seed is unused (images are read as they are)."""
    return ImageDataset(cfg.images, "train"), ImageDataset(cfg.images, "test")


IMAGE = Modality(
    name="image", model_config=ImageModelConfig, data_config=ImageDataConfig, probe_config=ImageProbeConfig,
    parts=ImageParts, check=check_image_config, complete=complete_image, datasets=image_datasets,
    evaluate=run_image_probes, part_configs={"views": ImageViewsConfig}, item_labels=lambda dataset: dataset.labels,
    items="images", sizes=SIZES, episode_data=image_episode_data, frozen_features=image_frozen_features,
)
