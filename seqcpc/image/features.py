"""Frozen image features, embedded once: each model's pooled latent grids of a split, computed in inference mode
in large batches (probe.embed_batch) and cached on disk, so every probe reads them back and a probe run that is
repeated (killed and resumed, or its results deleted) never embeds the same images with the same model twice.

Shapes: N images, H x W pixels, C channels, Gh x Gw patch grid, D latent dim, P = pool.
A cache entry is <cache_dir>/<name>-<split>-<key>.npy, float32 (N, D P^2), with a .json beside it saying what was
embedded and how long it took. The key hashes all the features depend on: the model's weights (which checkpoint),
the features of a probe batch of the split's first images (what the code and the settings make of those
weights, e.g. the patch size and stride, which are not weights), the pool, and the image file's size and mtime.
A changed checkpoint, setting or image file gives another key, so a stale entry is never read; entries of old
keys stay on disk until deleted.
"""
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch

from seqcpc.files import atomic_save_npy, atomic_write_text, fingerprint
from seqcpc.image.patches import pool_grid
from seqcpc.image.store import images_to_float
from seqcpc.train.progress import fmt_duration

PROBE_IMAGES = 16  # images of the probe batch whose features enter the key
PROBE_DECIMALS = 4  # the probe features are rounded first, so a change of thread count alone keeps the key


@torch.inference_mode()
def embed_images(model, images, pool: int, batch: int = 1000, log=print, name: str = "") -> np.ndarray:
    """Pooled latent grids of uint8 images (N, H, W, C) -> (N, D P^2) float32, in batches."""
    model.eval()
    out, t0 = [], time.time()
    for start in range(0, len(images), batch):
        z, _ = model.embed(images_to_float(np.asarray(images[start: start + batch])))  # (B, Gh, Gw, D)
        out.append(pool_grid(z, pool).numpy())
        done = start + len(out[-1])
        if done % (20 * batch) == 0 or done == len(images):
            rate = done / max(time.time() - t0, 1e-9)
            log(f"  {name}: embedded {done}/{len(images)} images, {rate:.0f} images/s, "
                f"eta {fmt_duration((len(images) - done) / rate)}")
    return np.concatenate(out)


def weights_digest(model) -> str:
    """sha256 of every parameter and buffer of `model`: names, dtypes, shapes and bytes."""
    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        value = value.detach().cpu().contiguous()
        h.update(f"{key}\t{value.dtype}\t{tuple(value.shape)}\n".encode())
        h.update(value.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def feature_key(model, images, pool: int, images_file) -> str:
    """The cache key of `model`'s pooled features of `images` (read from `images_file`); see the module docstring."""
    probe = embed_images(model, images[:PROBE_IMAGES], pool, log=lambda *_: None)
    probe = np.round(probe, PROBE_DECIMALS) + 0.0  # + 0.0: -0.0 and 0.0 hash alike
    options = {"weights": weights_digest(model), "probe": hashlib.sha256(probe.tobytes()).hexdigest(), "pool": pool,
               "model": type(model).__name__}
    return fingerprint(options, [("images", Path(images_file))])[:16]


def cached_features(model, images, pool: int, cache_dir, name: str, split: str, images_file, batch: int = 1000,
                    log=print) -> tuple[np.ndarray, dict]:
    """(embed_images(model, images, pool), what the cache entry records: images, seconds and images/s of the
    embedding, when it was done), read from the cache when its key is there, else embedded and written."""
    key = feature_key(model, images, pool, images_file)
    path = Path(cache_dir) / f"{name}-{split}-{key}.npy"
    meta = path.with_suffix(".json")
    if path.is_file() and meta.is_file():
        log(f"  {name} {split}: features read from {path}")
        return np.load(path), json.loads(meta.read_text())
    t0 = time.time()
    feats = embed_images(model, images, pool, batch, log, f"{name} {split}")
    seconds = time.time() - t0
    info = {"name": name, "split": split, "images": len(feats), "dim": feats.shape[1], "pool": pool, "batch": batch,
            "seconds": round(seconds, 1), "images_per_s": round(len(feats) / max(seconds, 1e-9), 1),
            "threads": torch.get_num_threads()}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(path, feats)
    atomic_write_text(meta, json.dumps(info, indent=2))  # last: an entry without it is embedded again
    return feats, info
