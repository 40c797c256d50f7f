"""Images in few-shot learning: the evaluation classes' images and the frozen features the episodic evaluation
compares (a learner's feature network is seqcpc.image.encoder.PooledPatches).

Shapes: B images, C channels, H x W pixels, Gh x Gw patch grid, D latent dim, P = objective.pool.
A prepared image store's "train" split holds the training (background) classes, its "test" split the
evaluation classes (data_prep/glyphs.py writes such a store; on other stores the test split's classes are
the training ones, which measures few-shot accuracy on seen classes).
"""
import numpy as np

from seqcpc.eval.probes import random_init, random_subset
from seqcpc.fewshot.evaluate import EpisodeData
from seqcpc.image.patches import pool_grid
from seqcpc.image.store import images_to_float, load_split

BASE_SAMPLE = 2000  # training-class images whose mean feature centres the frozen features


def image_episode_data(cfg, log=print) -> EpisodeData:
    root = cfg.data.images
    images, labels = load_split(root, "test")
    base, _ = load_split(root, "train")
    pick = random_subset(len(base), BASE_SAMPLE, cfg.train.seed)
    log(f"episodic evaluation: {len(images)} test images of {len(np.unique(labels))} classes")
    return EpisodeData(images_to_float(np.asarray(images)), np.array(labels), images_to_float(base[pick]), "images")


def image_frozen_features(cfg, model) -> dict:
    """A CPC model's pooled latent grid (probe.pool cells), the same network untrained, and raw pixels."""
    def pooled(net):
        net.eval()
        return lambda x: pool_grid(net.embed(x)[0], cfg.probe.pool)

    return {"cpc": pooled(model), "random_init": pooled(random_init(cfg, cfg.train.seed)),
            "pixels": lambda x: x.flatten(1)}
