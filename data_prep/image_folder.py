"""Prepare a folder of images, one sub-folder per class, into an image dataset folder.

    python -m data_prep.image_folder --root DIR --out DIR [--size 32] [--mode auto|grey|rgb] \
        [--test-fraction 0.2] [--min-test 0] [--on-bad-file skip|stop]

Layouts: <root>/<class>/*.{png,jpg,jpeg,bmp,gif,webp} (each image goes to train or test by a hash of its
path, so adding files never moves old ones), or <root>/train/<class>/... and <root>/test/<class>/... (splits
given). Classes are the folder names, sorted. Images of any size are resized (shorter side to --size) and
centre-cropped to size x size. Transparent pixels (an alpha channel, or a palette or grey image with a
transparent colour) are composited on white, as a viewer shows them. --mode auto keeps grey when every image is
grey, else converts the grey ones to RGB. Decoded images stream to disk one by one, so a folder larger than memory
is fine. A file that cannot be decoded (Pillow also refuses images of more than ~179 million pixels), or whose name
a report line cannot hold (a tab, a line break, bytes that are not UTF-8), is skipped and listed in
<out>/bad_files.txt, or stops the run (--on-bad-file stop) before anything is written. A symbolic link to an image
that the folder already holds (clip-art collections file one picture under several classes that way) is kept
once, as the file it points to, and listed. --min-test N leaves out the classes with fewer than N test images
or no training image (listed too), so that every class kept is scored. Writes the format of
seqcpc/image/store.py; running it twice does nothing the second time.
"""
import argparse
import struct
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from seqcpc.argtypes import count, fraction, positive
from seqcpc.errors import DataError, report_errors
from seqcpc.files import atomic_write_text, existing_folder, fingerprint, stable_split, unusable_name
from seqcpc.image.store import (SPLITS, SplitWriter, StoreResult, begin_dataset, claim_store, content_warnings,
                                finish_dataset, summary, up_to_date)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")
# what Pillow raises on truncated, corrupt or non-image files (DecompressionBombError for absurd sizes)
DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, Image.DecompressionBombError)


@dataclass
class ImageFile:
    rel: str  # path relative to the root, posix style
    path: Path
    label: int
    split: str


def usable(paths, root: Path, unusable: list[str]) -> list[Path]:
    """The paths whose names a report can hold; the others are added to `unusable` ("path: reason")."""
    problems = {p: unusable_name(p, root) for p in paths}
    unusable += [problem for problem in problems.values() if problem]
    return [p for p, problem in problems.items() if not problem]


def class_images(class_dir: Path) -> list[Path]:
    files = sorted(p for p in class_dir.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DataError(f"class folder {class_dir} holds no {'/'.join(IMAGE_EXTENSIONS)} files")
    return files


def class_dirs(folder: Path) -> list[Path]:
    return [p for p in sorted(folder.iterdir()) if p.is_dir() and not p.name.startswith(".")]


def without_repeats(paths, root: Path) -> tuple[set[Path], list[str]]:
    """(the paths kept, "path: reason" for the others): one path for each image, a link resolved. Real files come
    before links, so a linked image is kept where it lies."""
    seen = {}  # target -> the path kept for it
    repeats = []
    for path in sorted(paths, key=lambda p: (p.is_symlink(), str(p))):
        target = path.resolve()
        if target in seen:
            repeats.append(f"{path.relative_to(root).as_posix()}: a link to the image kept as "
                           f"{seen[target].relative_to(root).as_posix()}")
        else:
            seen[target] = path
    return set(seen.values()), repeats


def find_images(root: Path, test_fraction: float) -> tuple[list[ImageFile], list[str], list[str], list[str]]:
    """Every image file with its class index and split, the sorted class names, "path: reason" for the class
    folders and files skipped for their names (see seqcpc.files.name_problem), and the same for the links to an
    image kept already (each image is kept once)."""
    root = existing_folder(root, "image folder")
    given = [s for s in SPLITS if (root / s).is_dir()]
    if len(given) == 1:
        raise DataError(f"{root} has {given[0]}/ but no {({*SPLITS} - {given[0]}).pop()}/: give both split "
                        f"folders, or one folder per class")
    unusable = []
    tops = {split: usable(class_dirs(root / split if split else root), root, unusable)
            for split in (given or [None])}
    classes = sorted({d.name for dirs in tops.values() for d in dirs})
    if len(classes) < 2:
        raise DataError(f"{root} has {len(classes)} class folder(s) {classes}: a classifier needs at least 2 "
                        f"(layout: <root>/<class>/*.png or <root>/train/<class>/ + <root>/test/<class>/)")
    images = {(split, d): class_images(d) for split, dirs in tops.items() for d in dirs}
    kept, repeats = without_repeats([p for paths in images.values() for p in paths], root)
    found = []
    for (split, class_dir), paths in images.items():
        for path in usable([p for p in paths if p in kept], root, unusable):
            rel = path.relative_to(root).as_posix()
            found.append(ImageFile(rel, path, classes.index(class_dir.name), split or stable_split(rel, test_fraction)))
    return found, classes, unusable, repeats


def scored_classes(files: list[ImageFile], classes: list[str], min_test: int) -> tuple[list, list, list[str]]:
    """(files, classes, "class: reason" lines) without the classes that have fewer than min_test test images or
    no training image, labels renumbered; every class kept when min_test is 0."""
    if min_test == 0:
        return files, classes, []
    counts = Counter((f.label, f.split) for f in files)
    left_out = {}
    for label, name in enumerate(classes):
        train, test = counts[label, "train"], counts[label, "test"]
        if test < min_test or train == 0:
            left_out[label] = f"class {name!r} left out: {train} training and {test} test images (--min-test {min_test})"
    kept = [name for label, name in enumerate(classes) if label not in left_out]
    if len(kept) < 2:
        raise DataError(f"only {len(kept)} class(es) {kept} have --min-test {min_test} test images and a training "
                        f"image; lower --min-test or raise --test-fraction")
    files = [ImageFile(f.rel, f.path, kept.index(classes[f.label]), f.split) for f in files if f.label not in left_out]
    return files, kept, list(left_out.values())


def is_colour(path: Path) -> bool:
    """Whether an image is stored in colour, from its header alone (an unreadable file counts as grey: the
    decoding pass deals with it)."""
    try:
        with Image.open(path) as im:
            return im.mode not in GREY_MODES
    except DECODE_ERRORS:
        return False


def to_8_bits(im: Image.Image) -> Image.Image:
    """An image with more than 8 bits a channel (16-bit and 32-bit integer grey, float grey) scaled into 8 bits,
    keeping its content: Pillow's own conversion clips values above 255, which makes most 16-bit images one
    flat white. Integer images use the range their bit depth allows; float images 0..1 when they lie in it,
    else their own minimum and maximum."""
    if im.mode not in ("I", "F") and not im.mode.startswith("I;16"):
        return im
    x = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        low, high = (0.0, 1.0) if x.min() >= 0 and x.max() <= 1 else (x.min(), x.max())
    else:
        low, high = 0.0, 255.0 if x.max() <= 255 else 65535.0 if x.max() <= 65535 else float(x.max())
    scaled = (x - low) / max(high - low, 1e-12) * 255
    return Image.fromarray(np.clip(np.round(scaled), 0, 255).astype(np.uint8), mode="L")


def on_white(im: Image.Image) -> Image.Image:
    """An image with transparency (an alpha channel, or a transparent palette index or grey level) composited on
    white, in RGB; others as they are. Pillow's plain convert would keep the colour hidden under each transparent
    pixel instead, often black."""
    if im.mode not in ("RGBA", "LA", "PA", "La", "RGBa") and "transparency" not in im.info:
        return im
    rgba = im.convert("RGBA")
    return Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba).convert("RGB")


def decode(path: Path, size: int, rgb: bool) -> np.ndarray:
    """One image as uint8 (size, size, 3 if rgb else 1); raises DECODE_ERRORS."""
    with Image.open(path) as im:
        im.load()  # decode fully now: truncated files fail here, not halfway through training
        im = to_8_bits(ImageOps.exif_transpose(im))  # exif: photos stored sideways with an orientation tag
        im = on_white(im).convert("RGB" if rgb else "L")  # a grey image among colour ones gets three equal channels
    w, h = im.size
    scale = size / min(w, h)
    w, h = max(size, round(w * scale)), max(size, round(h * scale))
    im = im.resize((w, h), Image.Resampling.BICUBIC)
    left, top = (w - size) // 2, (h - size) // 2
    pixels = np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return pixels if rgb else pixels[..., None]


def decode_all(files: list[ImageFile], writers: dict, size: int, rgb: bool, on_bad_file: str, log=print):
    """Decode every file into its split's writer; returns (kept files, skipped "rel: reason" lines)."""
    kept, skipped = [], []
    for i, f in enumerate(files):
        try:
            writers[f.split].add(decode(f.path, size, rgb), f.label)
            kept.append(f)
        except DECODE_ERRORS as err:
            if on_bad_file == "stop":
                raise DataError(f"{f.path}: cannot be decoded as an image ({err}); nothing was written "
                                f"(--on-bad-file skip skips such files)") from err
            skipped.append(f"{f.rel}: {type(err).__name__}: {err}")
        if (i + 1) % 1000 == 0:
            log(f"decoded {i + 1}/{len(files)} images")
    return kept, skipped


def check_usable(root: Path, kept: list[ImageFile], classes: list[str]) -> None:
    used = {f.label for f in kept}
    for label, name in enumerate(classes):
        if label not in used:
            raise DataError(f"class {name!r} of {root} has no usable image left after skipping bad files")
    for split in SPLITS:
        if not any(f.split == split for f in kept):
            raise DataError(f"the {split} split of {root} is empty ({len(kept)} usable images); "
                            f"add images or change --test-fraction")


def decode_into(root: Path, out: Path, files: list[ImageFile], classes: list[str], rgb: bool, args,
                log=print) -> list[str]:
    """Decode the files of `root` into out's splits (replacing them only once every file was tried and each class
    and split has images); returns the skipped "rel: reason" lines. dataset.json is left to finish_dataset."""
    writers = {split: SplitWriter(out, split, (args.size, args.size, 3 if rgb else 1)) for split in SPLITS}
    try:  # a bad file that stops the run leaves a dataset already in `out` as it was
        kept, skipped = decode_all(files, writers, args.size, rgb, args.on_bad_file, log)
        check_usable(root, kept, classes)
        begin_dataset(out)
        for writer in writers.values():
            writer.close()
    finally:
        for writer in writers.values():
            writer.discard()
    return skipped


def main(argv=None, log=print) -> StoreResult:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", required=True, help="the image folder")
    parser.add_argument("--out", required=True, help="the image dataset folder to write")
    parser.add_argument("--size", type=positive, default=32, help="side of the square images written")
    parser.add_argument("--mode", choices=["auto", "grey", "rgb"], default="auto")
    parser.add_argument("--test-fraction", type=fraction, default=0.2, help="share of each class (one-folder layout)")
    parser.add_argument("--min-test", type=count, default=0,
                        help="leave out classes with fewer test images than this, or no training image")
    parser.add_argument("--on-bad-file", choices=["skip", "stop"], default="skip")
    args = parser.parse_args(argv)
    root, out = Path(args.root), Path(args.out)
    files, classes, unusable, repeats = find_images(root, args.test_fraction)
    if unusable and args.on_bad_file == "stop":
        raise DataError(f"{unusable[0]}; nothing was written (--on-bad-file skip skips such files)")
    unusable += repeats
    found = len(files) + len(unusable)
    files, classes, left_out = scored_classes(files, classes, args.min_test)
    for line in left_out:
        log(line)
    options = {"size": args.size, "mode": args.mode, "test_fraction": args.test_fraction, "transparent": "white"}
    options |= {"min_test": args.min_test} if args.min_test else {}
    # skipped names enter the key only when there are some (and --min-test when given), so that a data set keeps
    # its key while its folder and options do not change; "transparent" changed every key once, when transparent
    # pixels began to be composited on white
    key = fingerprint(options | ({"unusable": unusable} if unusable else {}), [(f.rel, f.path) for f in files])
    if up_to_date(out, key):
        log(f"{out} is up to date with {root} ({len(files)} images); nothing to do")
        return StoreResult(out, written=False)
    rgb = args.mode == "rgb" or (args.mode == "auto" and any(is_colour(f.path) for f in files))
    claim_store(out, "data_prep.image_folder", ("bad_files.txt",))
    skipped = unusable + decode_into(root, out, files, classes, rgb, args, log)
    report = [f"{len(skipped)} of {found} files skipped"] + skipped + left_out
    atomic_write_text(out / "bad_files.txt", "\n".join(report) + "\n")
    info = finish_dataset(out, classes, source=str(root.resolve()), key=key, skipped=len(skipped))
    log(summary(out, info) + (" (see bad_files.txt)" if skipped else ""))
    for warning in content_warnings(out):
        log(f"WARNING: {warning}")
    return StoreResult(out, True, info, skipped)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.image_folder"))
