"""Prepare Debian's clip art (the package openclipart-png) as a long-tailed colour image dataset folder.

    sudo apt-get install openclipart-png     # once: ~160 MB of PNGs under /usr/share/openclipart/png
    python -m data_prep.openclipart --out data/openclipart [--root /usr/share/openclipart/png] [--size 32] \
        [--test-fraction 0.2] [--min-test 3]

The package files drawings made by people in one folder per category (computer, shapes, ... buttons); each is a
class. data_prep/image_folder.py does the work with these defaults: 32x32 RGB, transparent pixels on white, an
image filed under a second category by a symbolic link kept once (where its file lies), a fifth of each class
in the test split by a hash of its path, and the classes with fewer than 3 test images left out (logos and
buttons in openclipart-png 1:0.18+dfsg-19), so that every class kept is scored. Every file left out is listed
in <out>/bad_files.txt with the reason. Running it twice does nothing the second time.
"""
import argparse
import sys
from pathlib import Path

from data_prep import image_folder
from seqcpc.argtypes import count, fraction, positive
from seqcpc.errors import DataError, report_errors
from seqcpc.image.store import StoreResult

ROOT = "/usr/share/openclipart/png"


def main(argv=None, log=print) -> StoreResult:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="the image dataset folder to write")
    parser.add_argument("--root", default=ROOT, help="where the package put the PNGs (dpkg -L openclipart-png)")
    parser.add_argument("--size", type=positive, default=32, help="side of the square images written")
    parser.add_argument("--test-fraction", type=fraction, default=0.2, help="share of each class in the test split")
    parser.add_argument("--min-test", type=count, default=3, help="leave out classes with fewer test images")
    args = parser.parse_args(argv)
    if not Path(args.root).is_dir():
        raise DataError(f"{args.root} does not exist: install the clip art first (sudo apt-get install "
                        f"openclipart-png; `dpkg -L openclipart-png | head` shows where it went) or give --root")
    return image_folder.main(["--root", args.root, "--out", args.out, "--size", str(args.size), "--mode", "auto",
                              "--test-fraction", str(args.test_fraction), "--min-test", str(args.min_test)], log)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.openclipart"))
