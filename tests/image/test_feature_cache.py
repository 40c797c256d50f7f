"""Each model's image features are embedded once: read back from the cache while nothing they depend on changed,
embedded again when the checkpoint's weights, a setting that shapes the embedding, or the image file changes."""
import os

import numpy as np
import torch

from image_fixtures import toy_image_store
from seqcpc.config import resolve
from seqcpc.eval.probes import random_init
from seqcpc.image.features import cached_features, embed_images
from seqcpc.image.store import images_file, load_split


def tiny_model(root):
    cfg = resolve({"model": {"size": "image_small", "encoder": {"in_channels": 1, "dim": 8}, "context": {"dim": 8},
                             "patches": {"widths": [4, 8]}},
                   "data": {"kind": "images", "images": str(root)}})
    return random_init(cfg, 0)


def test_features_are_read_back_until_the_weights_a_setting_or_the_images_change(tmp_path):
    root = toy_image_store(tmp_path / "data", n_train=10, n_test=2)
    images, _ = load_split(root, "train")
    model, cache, source = tiny_model(root), tmp_path / "cache", images_file(root, "train")
    logs = []

    def features(pool=2):
        logs.clear()
        feats, info = cached_features(model, images, pool, cache, "cpc", "train", source, batch=7, log=logs.append)
        return feats, info, any("read from" in line for line in logs)

    first, info, read = features()
    assert not read and first.shape == (30, 8 * 4) and info["images"] == 30
    np.testing.assert_allclose(first, embed_images(model, images, 2, log=lambda *_: None), rtol=1e-5, atol=1e-6)
    again, info_again, read = features()
    assert read and np.array_equal(again, first) and info_again == info
    assert len(list(cache.glob("*.npy"))) == 1

    assert not features(pool=1)[2]  # another setting of the probes
    with torch.no_grad():  # another checkpoint: the same network, other weights
        next(model.parameters()).add_(0.01)
    changed, _, read = features()
    assert not read and not np.array_equal(changed, first)
    model.stride += 1  # a setting that is not a weight but shapes the embedding (the patch stride)
    assert not features()[2]
    model.stride -= 1
    assert features()[2]
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))  # the images rewritten
    assert not features()[2]
    assert len(list(cache.glob("*.npy"))) == 5
