"""Prepare MNIST or Fashion-MNIST from their IDX files (gzipped or raw) into an image dataset folder.

    python -m data_prep.idx_images [--src /usr/share/datasets/fashion-mnist] [--out data/fashion_mnist] \
        [--class-names a,b,...]

--src holds train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
t10k-labels-idx1-ubyte, each optionally ending in .gz; t10k becomes the "test" split. Class names: the
--class-names list, else the Fashion-MNIST names when the --src folder's name contains "fashion", else
"0", "1", ... up to the largest label. Writes the format of seqcpc/image/store.py (grey, C = 1). Running it
twice does nothing the second time.
"""
import argparse
import gzip
import struct
import sys
import zlib
from pathlib import Path

import numpy as np

from seqcpc.errors import DataError, report_errors
from seqcpc.files import existing_folder, fingerprint
from seqcpc.image.store import StoreResult, claim_store, content_warnings, summary, up_to_date, write_dataset

FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801  # uint8 data, 3 dims (N, H, W) / 1 dim (N,)
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}


def find_file(src: Path, name: str) -> Path:
    for path in (src / name, src / f"{name}.gz"):
        if path.is_file():
            return path
    raise DataError(f"{src} has neither {name} nor {name}.gz")


def read_idx(path: Path, magic: int) -> np.ndarray:
    """The uint8 array of an IDX file: (N, H, W) for images, (N,) for labels."""
    try:
        data = gzip.open(path).read() if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        raise DataError(f"{path}: cannot be read or decompressed ({err})") from err
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX header ({len(data)} bytes)")
    found = struct.unpack(">I", data[:4])[0]
    if found != magic:
        raise DataError(f"{path}: magic number {found:#010x} is not {magic:#010x}; is it the right IDX file?")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    count = int(np.prod(dims))
    if len(data) - header < count:
        raise DataError(f"{path}: truncated, the header promises {count} bytes of data but only "
                        f"{len(data) - header} follow")
    return np.frombuffer(data, dtype=np.uint8, count=count, offset=header).reshape(dims)


def read_split(src: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_path, labels_path = (find_file(src, name) for name in FILES[split])
    images = read_idx(images_path, IMAGES_MAGIC)[..., None]  # (N, H, W, 1)
    labels = read_idx(labels_path, LABELS_MAGIC).astype(np.int64)
    if len(images) != len(labels):
        raise DataError(f"{images_path} holds {len(images)} images but {labels_path} {len(labels)} labels")
    return images, labels


def class_names(src: Path, option: str | None, max_label: int) -> list[str]:
    if option:
        names = [n.strip() for n in option.split(",")]
    elif "fashion" in src.resolve().name.lower():
        names = FASHION_CLASSES
    else:
        names = [str(i) for i in range(max_label + 1)]
    if max_label >= len(names):
        raise DataError(f"{src}: label {max_label} has no name among the {len(names)} classes {names}")
    return names


def main(argv=None, log=print) -> StoreResult:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX files")
    parser.add_argument("--out", default="data/fashion_mnist", help="the image dataset folder to write")
    parser.add_argument("--class-names", help="comma-separated names, one per label value")
    args = parser.parse_args(argv)
    src, out = existing_folder(args.src, "IDX folder"), Path(args.out)
    files = [(str(p), p) for names in FILES.values() for p in (find_file(src, n) for n in names)]
    key = fingerprint({"class_names": args.class_names}, files)
    if up_to_date(out, key):
        log(f"{out} is up to date with {src}; nothing to do")
        return StoreResult(out, written=False)
    splits = {split: read_split(src, split) for split in FILES}
    max_label = max(int(labels.max(initial=0)) for _, labels in splits.values())
    classes = class_names(src, args.class_names, max_label)
    claim_store(out, "data_prep.idx_images")
    info = write_dataset(out, splits, classes, source=str(src.resolve()), key=key)
    log(summary(out, info))
    for warning in content_warnings(out):
        log(f"WARNING: {warning}")
    return StoreResult(out, True, info)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.idx_images"))
