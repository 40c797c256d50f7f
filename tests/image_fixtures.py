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


def toy_class_store(root, train_classes: int = 12, test_classes: int = 8, per_class: int = 12, size: int = 16,
                    seed: int = 0):
    """A many-class store for few-shot learning: each class a random 4x4 block pattern (shifted by up to a pixel,
    with noise); the "test" split's classes are not the "train" split's. Returns its path."""
    rng = np.random.default_rng(seed)
    n = train_classes + test_classes
    cell = size // 4
    templates = (rng.random((n, 4, 4)) > 0.5).repeat(cell, 1).repeat(cell, 2)
    splits = {}
    for split, classes in (("train", range(train_classes)), ("test", range(train_classes, n))):
        images, labels = [], []
        for c in classes:
            for _ in range(per_class):
                shifted = np.roll(templates[c], tuple(rng.integers(-1, 2, 2)), (0, 1))
                img = shifted * 200 + rng.normal(0, 30, (size, size)) + 25
                images.append(np.clip(img, 0, 255).astype(np.uint8)[..., None])
                labels.append(c)
        splits[split] = (np.stack(images), np.array(labels, dtype=np.int64))
    write_dataset(root, splits, [f"pattern{i}" for i in range(n)], "tests", key="toy classes")
    return root


SHAPE_COLOURS = {"red_disc": (0.85, 0.15, 0.1), "green_square": (0.2, 0.7, 0.2), "blue_diamond": (0.15, 0.25, 0.85)}


def toy_colour_images(n_per_class: int, size: int = 16, seed: int = 0):
    """(N, size, size, 3) uint8 RGB images and (N,) labels: a red disc, a green square or a blue diamond (the class)
    of random size and place on a light grey background, its colour jittered, with noise. Shape and lightness tell
    the colour, and the L and ab channels show the same shape at the same place."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / (size - 1)
    images, labels = [], []
    for label, colour in enumerate(SHAPE_COLOURS.values()):
        for _ in range(n_per_class):
            (cy, cx), radius = rng.uniform(0.3, 0.7, 2), rng.uniform(0.2, 0.35)
            dy, dx = np.abs(yy - cy), np.abs(xx - cx)
            shapes = [dy ** 2 + dx ** 2 < radius ** 2, np.maximum(dy, dx) < radius * 0.85, dy + dx < radius * 1.2]
            inside = shapes[label]
            img = np.full((size, size, 3), rng.uniform(0.75, 0.9))
            img[inside] = np.clip(np.array(colour) + rng.normal(0, 0.05, 3), 0, 1)
            img += rng.normal(0, 0.03, img.shape)
            images.append(np.clip(img * 255, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.array(labels, dtype=np.int64)


def toy_colour_store(root, n_train: int = 40, n_test: int = 20, size: int = 16):
    """A prepared dataset folder of toy_colour_images (3 channels), written by the image writer of data_prep
    (seqcpc.image.store.write_dataset); returns its path."""
    splits = {"train": toy_colour_images(n_train, size, seed=0), "test": toy_colour_images(n_test, size, seed=1)}
    write_dataset(root, splits, list(SHAPE_COLOURS), "tests", key="toy colour shapes")
    return root
