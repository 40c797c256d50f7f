"""Tiny generated image data sets: three classes of stripes that any useful feature tells apart."""
import numpy as np
from PIL import Image

from seqcpc.image.store import write_dataset


def toy_images(n_per_class: int, size: int = 16, channels: int = 1, seed: int = 0):
    """(N, size, size, C) uint8 images and (N,) labels: horizontal stripes, vertical stripes, diagonal stripes,
    each with a random phase, period and noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images, labels = [], []
    for label, coord in enumerate((yy, xx, yy + xx)):
        for _ in range(n_per_class):
            period, phase = rng.uniform(3, 6), rng.uniform(0, 2 * np.pi)
            img = 0.5 + 0.4 * np.sin(2 * np.pi * coord / period + phase) + rng.normal(0, 0.05, (size, size))
            img = np.repeat(img[..., None], channels, -1) * rng.uniform(0.7, 1.0, channels)
            images.append(np.clip(img * 255, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def toy_image_store(root, n_train: int = 40, n_test: int = 20, size: int = 16, channels: int = 1):
    """A prepared dataset folder (seqcpc/image/store.py format) of toy_images; returns its path."""
    splits = {"train": toy_images(n_train, size, channels, seed=0), "test": toy_images(n_test, size, channels, seed=1)}
    write_dataset(root, splits, ["horizontal", "vertical", "diagonal"], "tests", key="toy")
    return root


def toy_image_folder(root, n_per_class: int = 30, size: int = 20):
    """An image-folder layout <root>/<class>/*.png of RGB toy_images; returns its path."""
    images, labels = toy_images(n_per_class, size, channels=3)
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = root / f"class_{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:04d}.png")
    return root
