import subprocess
import sys

import numpy as np
import pytest

from data_prep import long_tail
from data_prep.long_tail import build, long_tail_counts
from seqcpc.errors import ConfigError, DataError
from seqcpc.image.store import load_split, read_info, write_dataset

CLASSES = 10


@pytest.fixture
def src(tmp_path):
    """10 classes of random 8x8 images: 30 to 34 per class in train (unequal, shuffled), 5 in test."""
    rng = np.random.default_rng(0)
    train_labels = rng.permutation(np.repeat(np.arange(CLASSES), [30, 31, 32, 33, 34, 30, 31, 32, 33, 34]))
    test_labels = np.repeat(np.arange(CLASSES), 5)
    splits = {split: (rng.integers(0, 256, (len(labels), 8, 8, 1), dtype=np.uint8), labels.astype(np.int64))
              for split, labels in (("train", train_labels), ("test", test_labels))}
    write_dataset(tmp_path / "src", splits, [f"c{i}" for i in range(CLASSES)], "tests", key="src")
    return tmp_path / "src"


def train_counts(out):
    return np.bincount(load_split(out, "train")[1], minlength=CLASSES)


def test_counts_follow_the_exponential_profile():
    counts = long_tail_counts(6000, 10, 100)
    assert counts[0] == 6000 and counts[-1] == 60 and len(counts) == 10
    assert all(a > b for a, b in zip(counts, counts[1:]))
    assert counts[5] == round(6000 * 100 ** (-5 / 9))
    assert long_tail_counts(30, 10, 1) == [30] * 10 and long_tail_counts(7, 1, 100) == [7]
    with pytest.raises(ValueError, match="imbalance"):
        long_tail_counts(30, 10, 0.5)


def test_the_subset_is_long_tailed_and_taken_from_src(src, tmp_path):
    info = build(src, tmp_path / "lt", imbalance=10, draw=0, log=lambda _: None)
    counts = train_counts(tmp_path / "lt")
    assert sorted(counts, reverse=True) == long_tail_counts(30, CLASSES, 10)  # n_max: the smallest class, 30
    assert counts.max() / counts.min() == 10
    assert info["class_counts"] == counts.tolist() == read_info(tmp_path / "lt")["class_counts"]
    assert info["long_tail"] == {"imbalance": 10.0, "draw": 0, "balanced": False, "max_per_class": 30,
                                 "source": str(src), "source_fingerprint": "src"}
    assert info["classes"] == read_info(src)["classes"] and info["splits"]["train"] == counts.sum()

    src_images, src_labels = load_split(src, "train")
    images, labels = load_split(tmp_path / "lt", "train")
    where = {image.tobytes(): i for i, image in enumerate(src_images)}  # random images: all distinct
    found = [where[image.tobytes()] for image in images]  # a KeyError if an image is not src's
    assert np.array_equal(src_labels[found], labels)
    assert len(set(found)) == len(found) and found == sorted(found)  # no repeats, in src's order
    for split_src, split_out in zip(load_split(src, "test"), load_split(tmp_path / "lt", "test")):
        assert np.array_equal(split_src, split_out)


def test_draws_choose_the_rare_classes(src, tmp_path):
    rarest = {}
    for draw in range(4):
        build(src, tmp_path / f"d{draw}", imbalance=10, draw=draw, log=lambda _: None)
        rarest[draw] = int(np.argmin(train_counts(tmp_path / f"d{draw}")))
    assert len(set(rarest.values())) > 1
    build(src, tmp_path / "again", imbalance=10, draw=2, log=lambda _: None)
    for a, b in zip(load_split(tmp_path / "d2", "train"), load_split(tmp_path / "again", "train")):
        assert np.array_equal(a, b)


def test_the_balanced_twin_has_the_same_total_spread_evenly(src, tmp_path):
    lt = build(src, tmp_path / "lt", imbalance=10, draw=3, log=lambda _: None)
    twin = build(src, tmp_path / "bal", imbalance=10, draw=3, balanced=True, log=lambda _: None)
    counts = train_counts(tmp_path / "bal")
    assert counts.sum() == sum(lt["class_counts"]) == twin["splits"]["train"]
    assert counts.max() - counts.min() <= 1 and twin["long_tail"]["balanced"]
    # each class's images of the smaller set are among the larger one's: the pair shares what it can
    lt_images, lt_labels = load_split(tmp_path / "lt", "train")
    bal_images, bal_labels = load_split(tmp_path / "bal", "train")
    for c in range(CLASSES):
        a, b = {i.tobytes() for i in lt_images[lt_labels == c]}, {i.tobytes() for i in bal_images[bal_labels == c]}
        assert a <= b or b <= a


def test_max_per_class(src, tmp_path):
    build(src, tmp_path / "lt", imbalance=4, max_per_class=20, log=lambda _: None)
    assert sorted(train_counts(tmp_path / "lt"), reverse=True) == long_tail_counts(20, CLASSES, 4)
    with pytest.raises(DataError, match=r"classes 'c0' \(30\), 'c5' \(30\) hold fewer than --max-per-class 31"):
        build(src, tmp_path / "big", max_per_class=31)
    with pytest.raises(ConfigError, match="leaves the smallest none"):
        build(src, tmp_path / "steep", imbalance=100)  # round(30 / 100) = 0
    assert not (tmp_path / "big").exists() and not (tmp_path / "steep").exists()


def test_idempotent_and_rewritten_when_an_option_changes(src, tmp_path, capsys):
    args = ["--src", str(src), "--out", str(tmp_path / "lt"), "--imbalance", "10", "--draw", "1"]
    long_tail.main(args)
    mtimes = [p.stat().st_mtime_ns for p in sorted((tmp_path / "lt").iterdir())]
    capsys.readouterr()
    assert long_tail.main(args)["class_counts"] == train_counts(tmp_path / "lt").tolist()
    assert "up to date" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in sorted((tmp_path / "lt").iterdir())] == mtimes
    info = long_tail.main(args + ["--balanced"])
    assert info["long_tail"]["balanced"] and "up to date" not in capsys.readouterr().out


def test_a_missing_src_is_named_in_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "data_prep.long_tail", "--src", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{tmp_path / 'nope'} does not exist" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_classes_without_train_images_are_named_in_one_line(tmp_path):
    """A few-shot set (data_prep.glyphs) keeps its evaluation classes out of the train split: there is no
    long tail to draw from them (it was a ValueError traceback)."""
    rng = np.random.default_rng(0)
    train, test = np.repeat(np.arange(3), 6), np.repeat(np.arange(5), 2)
    write_dataset(tmp_path / "fewshot", {split: (rng.integers(0, 256, (len(y), 8, 8, 1), dtype=np.uint8), y)
                                         for split, y in (("train", train), ("test", test))},
                  ["a", "b", "c", "d", "e"], "tests", key="fewshot")
    proc = subprocess.run([sys.executable, "-m", "data_prep.long_tail", "--src", str(tmp_path / "fewshot"),
                           "--out", str(tmp_path / "out")], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert "train split has no images of 2 of its 5 classes ('d', 'e')" in proc.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("option, message", [
    (["--imbalance", "nan"], "nan is not a finite number"),
    (["--imbalance", "inf"], "inf is not a finite number"),
    (["--imbalance", "0.5"], "0.5 is not a number >= 1"),
    (["--draw", "-1"], "-1 is negative"),
    (["--max-per-class", "0"], "0 is not a whole number >= 1"),
    (["--max-per-class", "-3"], "-3 is not a whole number >= 1"),
])
def test_arguments_that_make_no_sense_are_refused_with_exit_code_2(src, tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as stop:
        long_tail.main(["--src", str(src), "--out", str(tmp_path / "out"), *option])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
