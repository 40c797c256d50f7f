"""The image entry of the modality registry: images as grids of patches (CPC v2), from a prepared image store."""
from seqcpc.config import LEARNERS
from seqcpc.fewshot.episodes import episode_sampler
from seqcpc.image.build import build_image_model, check_image_config
from seqcpc.image.config import ImageDataConfig, ImageModelConfig, ImageProbeConfig
from seqcpc.image.eval import run_image_probes
from seqcpc.image.fewshot import image_episode_data, image_frozen_features
from seqcpc.image.sizes import SIZES
from seqcpc.image.store import ImageDataset
from seqcpc.modalities import Modality


def image_datasets(cfg: ImageDataConfig, seed: int):
    """(train, test) splits of the prepared data set; the seed is unused (images are read as they are)."""
    return ImageDataset(cfg.images, "train"), ImageDataset(cfg.images, "test")


def image_batch_sampler(dataset, cfg, world_size: int, rank: int, seed: int, train: bool = True):
    """Episodes of labelled images for a few-shot learner; None (the loop's batches) for CPC and pretext tasks."""
    if cfg.model.objective not in LEARNERS:
        return None
    return episode_sampler(dataset.labels, cfg, rank, seed, train, "images")


IMAGE = Modality(
    name="image", model_config=ImageModelConfig, data_config=ImageDataConfig, probe_config=ImageProbeConfig,
    build=build_image_model, check=check_image_config, datasets=image_datasets, evaluate=run_image_probes,
    batch_sampler=image_batch_sampler, sizes=SIZES, episode_data=image_episode_data,
    frozen_features=image_frozen_features,
)
