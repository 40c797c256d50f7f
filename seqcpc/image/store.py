"""Prepared image datasets: the one compact format every data_prep image script writes and image recipes read.

A dataset folder holds
  <split>_images.npy  uint8 (N, H, W, C), C = 1 (grey) or 3 (RGB), every image the same size
  <split>_labels.npy  int64 (N,), class indices in [0, num_classes)
  dataset.json        {"classes": [...], "channels": C, "size": [H, W], "splits": {"train": N, "test": M},
                       "source": ..., "fingerprint": ..., "skipped": count}
Splits are "train" and "test". Files are written atomically (temporary file + rename) and dataset.json last,
so a folder whose dataset.json agrees with its arrays is complete. Arrays are read with allow_pickle=False
and memory-mapped, so opening a large dataset costs nothing until images are read.
Shapes: N images, H/W height/width in pixels, C channels.
"""
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from seqcpc.errors import DataError
from seqcpc.files import atomic_save_npy, atomic_write, atomic_write_text, claim_output, named_write

SPLITS = ("train", "test")
INFO = "dataset.json"
RUN_PREP = ("prepare it with a data_prep image script (python -m data_prep.idx_images or "
            "python -m data_prep.image_folder)")


def images_file(root, split: str) -> Path:
    return Path(root) / f"{split}_images.npy"


def labels_file(root, split: str) -> Path:
    return Path(root) / f"{split}_labels.npy"


def write_split(out_dir, split: str, images: np.ndarray, labels: np.ndarray) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, not {split!r}")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise DataError(f"{split} images must be uint8 (N, H, W, 1 or 3), got {images.dtype} {images.shape}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(images):
        raise DataError(f"{split} labels must be {len(images)} integers, got {labels.dtype} {labels.shape}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_save_npy(images_file(out_dir, split), np.ascontiguousarray(images))
    atomic_save_npy(labels_file(out_dir, split), labels.astype(np.int64))


def write_info(out_dir, info: dict) -> None:
    atomic_write_text(Path(out_dir) / INFO, json.dumps(info, indent=2) + "\n")


def read_info(root) -> dict:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image dataset folder {root} does not exist; {RUN_PREP}")
    path = root / INFO
    if not path.is_file():
        raise DataError(f"{path} does not exist, so {root} is not a prepared image dataset; {RUN_PREP}")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path} cannot be read ({err}); {RUN_PREP} again") from err
    missing = [k for k in ("classes", "channels", "size", "splits") if k not in info]
    if missing:
        raise DataError(f"{path} lacks {', '.join(missing)}; {RUN_PREP} again")
    return info


def _load_array(path: Path, mmap: bool) -> np.ndarray:
    if not path.is_file():
        raise DataError(f"{path} does not exist; {RUN_PREP}")
    try:
        # allow_pickle=False: a planted object array or pickle raises instead of running code
        array = np.load(path, allow_pickle=False, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path} is not a plain .npy array ({err})") from err
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise DataError(f"{path} is not a plain .npy array")
    return array


def load_split(root, split: str, mmap: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, H, W, C) uint8, labels (N,) int64) of one split, checked against dataset.json."""
    info = read_info(root)
    images_path, labels_path = images_file(root, split), labels_file(root, split)
    images, labels = _load_array(images_path, mmap), _load_array(labels_path, mmap)
    expected = (*info["size"], info["channels"])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != tuple(expected):
        raise DataError(f"{images_path}: expected uint8 (N, {', '.join(map(str, expected))}) as dataset.json "
                        f"says, got {images.dtype} {images.shape}")
    if labels.dtype != np.int64 or labels.ndim != 1:
        raise DataError(f"{labels_path}: expected int64 (N,), got {labels.dtype} {labels.shape}")
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    num_classes = len(info["classes"])
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"{labels_path}: labels span [{labels.min()}, {labels.max()}], outside the "
                        f"{num_classes} classes of dataset.json")
    return images, labels


def images_to_float(batch: np.ndarray) -> torch.Tensor:
    """uint8 (N, H, W, C) -> float32 (N, C, H, W) in [0, 1]."""
    if batch.dtype != np.uint8 or batch.ndim != 4:
        raise ValueError(f"expected uint8 (N, H, W, C), got {batch.dtype} {batch.shape}")
    x = torch.from_numpy(np.array(batch))  # a copy: memmaps are read-only, torch wants writable memory
    return rearrange(x, "n h w c -> n c h w").float().div_(255)


class ImageDataset(Dataset):
    """Items are (x, i): x float32 (C, H, W) in [0, 1], i the image index, used as the "group id" so that
    labels stay out of pretraining. Labels are in `labels` for probes."""

    def __init__(self, root, split: str):
        self.root, self.split = Path(root), split
        info = read_info(root)
        images, labels = load_split(root, split)
        self._images = images
        self.labels = np.array(labels)  # small: keep in memory
        self.classes, self.channels, self.size = list(info["classes"]), info["channels"], tuple(info["size"])

    @property
    def images(self) -> np.ndarray:
        """All images, uint8 (N, H, W, C), memory-mapped; for bulk evaluation."""
        if self._images is None:  # a DataLoader worker opens its own map
            self._images, _ = load_split(self.root, self.split)
        return self._images

    def __getstate__(self):
        # pickling a memmap would copy the whole array into each worker
        return {**self.__dict__, "_images": None}

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i):
        return images_to_float(self.images[i:i + 1])[0], int(i)


@dataclass
class StoreResult:
    out: Path
    written: bool  # False when the dataset was already up to date
    info: dict = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)  # "path: reason"


def up_to_date(out_dir, key: str) -> bool:
    try:
        info = read_info(out_dir)
    except DataError:
        return False
    files = [f(out_dir, s) for s in SPLITS for f in (images_file, labels_file)]
    return info.get("fingerprint") == key and all(p.is_file() for p in files)


class SplitWriter:
    """Writes one split image by image, holding none of them in memory (an image folder may not fit): rows
    are appended to a raw temporary file, which `close` turns into <split>_images.npy in chunks."""

    CHUNK = 4096  # images copied at a time

    def __init__(self, out_dir, split: str, shape: tuple[int, int, int]):
        self.path, self.shape, self.labels = images_file(out_dir, split), tuple(shape), []
        self.raw_path = self.path.with_name(self.path.name + ".raw")
        self.raw = open(self.raw_path, "wb")
        self.out_dir, self.split = Path(out_dir), split

    def add(self, image: np.ndarray, label: int) -> None:
        if image.dtype != np.uint8 or image.shape != self.shape:
            raise DataError(f"{self.split} image of {image.dtype} {image.shape}, expected uint8 {self.shape}")
        with named_write(self.path):  # a full disk: the file it fails to write, not the raw one
            self.raw.write(np.ascontiguousarray(image).tobytes())
        self.labels.append(label)

    def close(self) -> None:
        self.raw.close()
        atomic_write(self.path, self.copy_rows)
        self.discard()
        atomic_save_npy(labels_file(self.out_dir, self.split), np.array(self.labels, dtype=np.int64))

    def copy_rows(self, tmp) -> None:
        """The raw rows into an .npy file at `tmp`, a chunk at a time."""
        n = len(self.labels)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, *self.shape))
        if n:  # (a memmap of zero rows cannot be opened)
            rows = np.memmap(self.raw_path, np.uint8, "r", shape=(n, *self.shape))
            for start in range(0, n, self.CHUNK):
                out[start: start + self.CHUNK] = rows[start: start + self.CHUNK]
            del rows
        out.flush()
        del out

    def discard(self) -> None:
        self.raw.close()
        self.raw_path.unlink(missing_ok=True)


def claim_store(out_dir, kind: str, extra: tuple[str, ...] = ()) -> Path:
    """claim_output for an image dataset written by the data_prep writer `kind`, which also writes `extra`; a
    long-tailed subset prepared before folders were marked is known by the "long_tail" of its dataset.json."""
    try:
        legacy = "data_prep.long_tail" if "long_tail" in read_info(out_dir) else None
    except DataError:
        legacy = None
    entries = [INFO, *(f(".", s).name for s in SPLITS for f in (images_file, labels_file)), *extra]
    return claim_output(out_dir, kind, entries, legacy)


def begin_dataset(out_dir) -> Path:
    """Make the folder and remove its dataset.json: until finish_dataset, readers see "not prepared", never
    new arrays with old info."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / INFO).unlink(missing_ok=True)
    return out_dir


def finish_dataset(out_dir, classes: list[str], source: str, key: str, skipped: int = 0) -> dict:
    """Write dataset.json for the splits written; returns it."""
    shapes = {s: _load_array(images_file(out_dir, s), mmap=True).shape for s in SPLITS}
    if len({shape[1:] for shape in shapes.values()}) != 1:
        raise DataError(f"the splits of {out_dir} hold images of different shapes {shapes}")
    _, h, w, c = shapes["train"]
    info = {"classes": list(classes), "channels": int(c), "size": [int(h), int(w)],
            "splits": {s: int(shape[0]) for s, shape in shapes.items()}, "source": source,
            "fingerprint": key, "skipped": skipped}
    write_info(out_dir, info)
    return info


def write_dataset(out_dir, splits: dict[str, tuple[np.ndarray, np.ndarray]], classes: list[str], source: str,
                  key: str, skipped: int = 0) -> dict:
    """Write both splits from arrays in memory, then dataset.json; returns the info written."""
    out_dir = begin_dataset(out_dir)
    for split, (images, labels) in splits.items():
        write_split(out_dir, split, images, labels)
    return finish_dataset(out_dir, classes, source, key, skipped)


def summary(out_dir, info: dict) -> str:
    h, w = info["size"]
    counts = ", ".join(f"{s} {n}" for s, n in info["splits"].items())
    classes = ", ".join(info["classes"])
    skipped = f", skipped {info['skipped']} bad files" if info.get("skipped") else ""
    return (f"wrote {out_dir}: {counts} images of {h}x{w}x{info['channels']}, "
            f"{len(info['classes'])} classes ({classes}){skipped}")


def content_warnings(out_dir) -> list[str]:
    """What a prepared data set's content says went wrong: a class whose images are all one image (e.g. flattened
    by a bad conversion), and classes that hold the same set of distinct images (a probe cannot tell them apart)."""
    classes, distinct, counts = read_info(out_dir)["classes"], {}, {}
    for split in SPLITS:
        images, labels = load_split(out_dir, split)
        for image, label in zip(images, labels):
            distinct.setdefault(int(label), set()).add(hashlib.sha1(np.ascontiguousarray(image).tobytes()).digest())
            counts[int(label)] = counts.get(int(label), 0) + 1
    warnings = [f"class {classes[c]!r}: its {counts[c]} images are all the same image"
                for c, digests in sorted(distinct.items()) if len(digests) == 1 and counts[c] > 1]
    seen = {}
    for c, digests in sorted(distinct.items()):
        key = frozenset(digests)
        if key in seen:
            warnings.append(f"classes {classes[seen[key]]!r} and {classes[c]!r} hold the same images")
        seen.setdefault(key, c)
    return warnings
