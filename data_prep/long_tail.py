"""A long-tailed (or a size-matched balanced) subset of a prepared image dataset's train split, for the
long-tailed benchmark of SDCLR (Jiang et al., ICML 2021): pretrain on the subset, probe on the full train split.

    python -m data_prep.long_tail --src data/fashion_mnist --out data/fashion_mnist_lt100_d0 \
        [--imbalance 100] [--draw 0] [--balanced] [--max-per-class N]

The class of rank r (0 = largest, C-1 = smallest) keeps round(N * imbalance ** (-r / (C - 1))) train images, the
exponential profile of long-tailed CIFAR; N is --max-per-class, by default the smallest class of --src's train
split, so every class can supply any rank's share. --draw seeds which class gets which rank and which images are
taken. --balanced keeps instead the same total spread evenly (counts differ by at most 1), so a long-tailed
subset and its balanced twin of the same draw compare like with like: for each class, the images of either are
the first ones of the same draw-seeded order, so the smaller set is part of the larger.
The test split is --src's, copied. dataset.json adds "class_counts" (train images per class index) and
"long_tail" (the options, --src and its fingerprint). Writes the format of seqcpc/image/store.py; running it
twice with the same options does nothing the second time.
"""
import argparse
import sys

import numpy as np

from seqcpc.argtypes import count, positive, ratio
from seqcpc.errors import ConfigError, DataError, report_errors
from seqcpc.files import fingerprint, laid_out
from seqcpc.image.store import (INFO, SPLITS, claim_store, images_file, labels_file, load_split, read_info,
                                summary, up_to_date, write_dataset, write_info)


def long_tail_counts(n_max: int, classes: int, imbalance: float) -> list[int]:
    """Images per class by rank (0 = largest): n_max down to n_max / imbalance, geometrically, rounded."""
    if n_max < 1 or classes < 1 or imbalance < 1:
        raise ValueError(f"need n_max >= 1, classes >= 1 and imbalance >= 1, got {n_max}, {classes}, {imbalance}")
    if classes == 1:
        return [n_max]
    return [round(n_max * imbalance ** (-r / (classes - 1))) for r in range(classes)]


def balanced_counts(total: int, classes: int) -> list[int]:
    """`total` spread over classes by rank: the first total % classes ranks get one more."""
    base, extra = divmod(total, classes)
    return [base + (r < extra) for r in range(classes)]


def choose(labels: np.ndarray, classes: int, counts_by_rank: list[int], draw: int) -> tuple[np.ndarray, list[int]]:
    """(sorted indices into labels of the images kept, images kept per class index). The draw orders the
    classes (rank r is class order[r]) and the images of each class; a class keeps the first ones of its order."""
    rng = np.random.default_rng(draw)
    order = rng.permutation(classes)  # (C,) class index of each rank
    shuffled = [rng.permutation(np.flatnonzero(labels == c)) for c in range(classes)]
    counts = [0] * classes
    for rank, c in enumerate(order):
        counts[c] = counts_by_rank[rank]
    keep = np.concatenate([shuffled[c][:counts[c]] for c in range(classes)])
    return np.sort(keep), counts  # sorted: the subset keeps --src's order


def check_options(imbalance: float, draw: int, max_per_class: int | None) -> None:
    if not imbalance >= 1:  # also refuses NaN
        raise ConfigError(f"imbalance is largest / smallest class count, so it must be >= 1, not {imbalance}")
    if draw < 0:
        raise ConfigError(f"draw seeds the subset, a whole number >= 0, not {draw}")
    if max_per_class is not None and max_per_class < 1:
        raise ConfigError(f"max_per_class must be >= 1, not {max_per_class}")


def largest_count(src, names: list[str], available: np.ndarray, max_per_class: int | None) -> int:
    """Images of the largest class: max_per_class, by default the smallest class count of the train split;
    refuses classes that cannot supply it (every class may be drawn as the largest)."""
    empty = [repr(names[c]) for c in np.flatnonzero(available == 0)]
    if empty:
        raise DataError(f"{src} train split has no images of {len(empty)} of its {len(names)} classes "
                        f"({', '.join(empty[:5])}{', ...' if len(empty) > 5 else ''}), e.g. the evaluation classes "
                        f"of a few-shot set: a long-tailed subset needs every class in the train split")
    n_max = int(available.min()) if max_per_class is None else max_per_class
    short = [f"{names[c]!r} ({available[c]})" for c in range(len(names)) if available[c] < n_max]
    if short:
        raise DataError(f"{src} train split: classes {', '.join(short)} hold fewer than --max-per-class {n_max} "
                        f"images; lower --max-per-class (every class may be drawn as the largest)")
    return n_max


def build(src, out, imbalance: float = 100.0, draw: int = 0, balanced: bool = False,
          max_per_class: int | None = None, log=print) -> dict:
    """Write the subset store at `out` unless it is up to date; returns its dataset.json info."""
    src, out = laid_out(src), laid_out(out)
    if src == out:
        raise ConfigError(f"--out {out} is --src: write the subset to another folder")
    check_options(imbalance, draw, max_per_class)
    src_info = read_info(src)  # a DataError naming the folder when src is missing or not prepared
    files = [(p.name, p) for p in [src / INFO, *(f(src, s) for s in SPLITS for f in (images_file, labels_file))]]
    options = {"imbalance": float(imbalance), "draw": int(draw), "balanced": bool(balanced),
               "max_per_class": max_per_class, "source": str(src)}
    key = fingerprint(options, files)
    if up_to_date(out, key) and "long_tail" in (info := read_info(out)):  # without it a write stopped half-way
        log(f"{out} is up to date with {src} and these options; nothing to do")
        return info

    images, labels = load_split(src, "train")
    classes = len(src_info["classes"])
    n_max = largest_count(src, src_info["classes"], np.bincount(labels, minlength=classes), max_per_class)
    by_rank = long_tail_counts(n_max, classes, imbalance)
    if by_rank[-1] < 1:
        raise ConfigError(f"imbalance {imbalance} with {n_max} images for the largest class leaves the smallest "
                          f"none (round({n_max / imbalance:.3g})); lower the imbalance or raise --max-per-class")
    if balanced:
        by_rank = balanced_counts(sum(by_rank), classes)
    keep, counts = choose(labels, classes, by_rank, draw)

    test = load_split(src, "test")
    claim_store(out, "data_prep.long_tail")
    info = write_dataset(out, {"train": (images[keep], labels[keep]), "test": test}, src_info["classes"],
                         source=str(src), key=key)
    info |= {"class_counts": counts,
             "long_tail": {"imbalance": float(imbalance), "draw": int(draw), "balanced": bool(balanced),
                           "max_per_class": n_max, "source": str(src),
                           "source_fingerprint": src_info.get("fingerprint")}}
    write_info(out, info)  # last: until here the folder reads as not up to date
    log(summary(out, info))
    kind = "balanced" if balanced else f"long-tailed (imbalance {imbalance:g})"
    log(f"{kind} train split of draw {draw}: {sum(counts)} images, per class {counts}")
    return info


def main(argv=None, log=print) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", required=True, help="the prepared image dataset folder to take the subset of")
    parser.add_argument("--out", required=True, help="the image dataset folder to write")
    parser.add_argument("--imbalance", type=ratio, default=100.0, help="largest class count / smallest")
    parser.add_argument("--draw", type=count, default=0, help="seed of the class ranks and of the images taken")
    parser.add_argument("--balanced", action="store_true", help="the same total, spread evenly over classes")
    parser.add_argument("--max-per-class", type=positive, help="images of the largest class (default: the "
                                                               "smallest class count of --src's train split)")
    args = parser.parse_args(argv)
    return build(args.src, args.out, args.imbalance, args.draw, args.balanced, args.max_per_class, log=log)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.long_tail"))
