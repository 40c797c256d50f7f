import gzip
import io
import os
import struct

import numpy as np
import pytest
from PIL import Image

from data_prep import idx_images, image_folder
from seqcpc.image.store import ImageDataset, SplitWriter, images_file, load_split, read_info
from seqcpc.errors import DataError
from seqcpc.files import PREP_MARKER


def write_idx(path, array, magic=None, drop=0):
    """An IDX file of uint8 `array` (gzipped when the name ends in .gz), `drop` bytes short."""
    magic = magic if magic is not None else 0x0800 + array.ndim
    data = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    data = data[:len(data) - drop]
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)


def idx_folder(folder, n_train=12, n_test=5, classes=3):
    """Train files gzipped, test files raw: both kinds are read."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {}
    for prefix, n, ext in (("train", n_train, ".gz"), ("t10k", n_test, "")):
        images = rng.integers(0, 256, (n, 5, 4), dtype=np.uint8)  # H != W to catch a transpose
        labels = (np.arange(n) % classes).astype(np.uint8)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{ext}", images)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{ext}", labels)
        arrays[prefix] = images, labels
    return arrays


def test_idx_round_trip_and_idempotence(tmp_path, capsys):
    arrays = idx_folder(tmp_path / "mnist")
    out = tmp_path / "prep"
    args = ["--src", str(tmp_path / "mnist"), "--out", str(out)]
    assert idx_images.main(args).written
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = load_split(out, split)
        assert images.shape[1:] == (5, 4, 1)
        assert np.array_equal(images[..., 0], arrays[prefix][0]) and np.array_equal(labels, arrays[prefix][1])
    info = read_info(out)
    assert info["classes"] == ["0", "1", "2"] and info["splits"] == {"train": 12, "test": 5}
    assert "train 12, test 5" in capsys.readouterr().out
    mtimes = [p.stat().st_mtime_ns for p in sorted(out.iterdir())]
    assert not idx_images.main(args).written
    assert "up to date" in capsys.readouterr().out
    assert [p.stat().st_mtime_ns for p in sorted(out.iterdir())] == mtimes
    assert idx_images.main(args + ["--class-names", "x,y,z"]).written  # a changed option rewrites
    assert read_info(out)["classes"] == ["x", "y", "z"]


def test_fashion_names_from_the_folder_name(tmp_path):
    idx_folder(tmp_path / "fashion-mnist", classes=10)
    idx_images.main(["--src", str(tmp_path / "fashion-mnist"), "--out", str(tmp_path / "p")])
    assert read_info(tmp_path / "p")["classes"][9] == "Ankle boot"
    with pytest.raises(DataError, match="label 9 has no name"):
        idx_images.main(["--src", str(tmp_path / "fashion-mnist"), "--out", str(tmp_path / "q"),
                         "--class-names", "a,b"])


@pytest.mark.parametrize("damage, message", [
    ("magic", "magic number 0x00000801"), ("truncate", "truncated"), ("gzip", "decompressed"), ("count", "labels")])
def test_bad_idx_files_are_named(tmp_path, damage, message):
    idx_folder(tmp_path / "src")
    images = tmp_path / "src" / "train-images-idx3-ubyte.gz"
    pixels = np.zeros((12, 5, 4), np.uint8)
    if damage == "magic":
        write_idx(images, pixels, magic=0x0801)
    elif damage == "truncate":
        write_idx(images, pixels, drop=7)
    elif damage == "gzip":
        images.write_bytes(images.read_bytes()[:30])
    else:
        write_idx(images, pixels[:11])
    with pytest.raises(DataError, match=message) as err:
        idx_images.main(["--src", str(tmp_path / "src"), "--out", str(tmp_path / "p")])
    assert "train-images-idx3-ubyte" in str(err.value)
    assert not (tmp_path / "p" / "dataset.json").exists()


def save(path, size, color=(200, 30, 10), mode="RGB", fmt=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, color if mode == "RGB" else 120).save(path, fmt)


def folder_args(root, out, *extra):
    return ["--root", str(root), "--out", str(out), "--size", "8", "--test-fraction", "0.5", *extra]


def colour_folder(root, per_class=6):
    for c in ("cat", "dog"):
        for i in range(per_class):
            save(root / c / f"{i}.png", (10 + 7 * i, 12 + 3 * i))  # assorted sizes, some under 8 px
    save(root / "dog" / "grey.png", (20, 9), mode="L")


def test_folder_resizes_converts_grey_and_is_idempotent(tmp_path, capsys):
    colour_folder(tmp_path / "imgs")
    out = tmp_path / "prep"
    result = image_folder.main(folder_args(tmp_path / "imgs", out))
    info = read_info(out)
    assert result.written and info["classes"] == ["cat", "dog"] and info["channels"] == 3
    assert info["size"] == [8, 8] and sum(info["splits"].values()) == 13 and min(info["splits"].values()) > 0
    images = np.concatenate([load_split(out, s)[0] for s in ("train", "test")])
    grey = [im for im in images if (im[..., 0] == im[..., 1]).all() and (im[..., 1] == im[..., 2]).all()]
    assert len(grey) == 1 and grey[0][4, 4, 0] == 120
    ds = ImageDataset(out, "train")
    assert ds[0][0].shape == (3, 8, 8) and set(ds.labels) <= {0, 1}
    assert "2 classes" in capsys.readouterr().out
    assert not image_folder.main(folder_args(tmp_path / "imgs", out)).written
    save(tmp_path / "imgs" / "cat" / "new.png", (8, 8))  # a new file rewrites
    assert image_folder.main(folder_args(tmp_path / "imgs", out)).written


def test_all_grey_stays_grey_unless_rgb_is_asked(tmp_path):
    for c in ("a", "b"):
        for i in range(4):
            save(tmp_path / "imgs" / c / f"{i}.bmp", (9, 9), mode="L", fmt="BMP")
    image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "auto"))
    assert read_info(tmp_path / "auto")["channels"] == 1
    image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "rgb", "--mode", "rgb"))
    assert read_info(tmp_path / "rgb")["channels"] == 3


def damage_folder(root):
    """colour_folder plus a PNG and a JPEG cut in half (noise, so the cut falls in the pixel data) and a
    text file named x.jpg."""
    colour_folder(root)
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8))
    for path, fmt in ((root / "cat" / "broken.png", "PNG"), (root / "dog" / "cut.jpg", "JPEG")):
        buffer = io.BytesIO()
        noise.save(buffer, fmt)
        path.write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    (root / "dog" / "x.jpg").write_text("not an image")


def test_bad_files_are_skipped_and_listed(tmp_path):
    damage_folder(tmp_path / "imgs")
    result = image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "prep"))
    report = (tmp_path / "prep" / "bad_files.txt").read_text()
    assert "3 of 16 files skipped" in report
    assert all(name in report for name in ("cat/broken.png", "dog/cut.jpg", "dog/x.jpg"))
    assert len(result.skipped) == 3 and read_info(tmp_path / "prep")["skipped"] == 3


def test_bad_file_stops_before_writing(tmp_path):
    damage_folder(tmp_path / "imgs")
    with pytest.raises(DataError, match="broken.png"):
        image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "prep", "--on-bad-file", "stop"))
    assert not (tmp_path / "prep").exists() or {p.name for p in (tmp_path / "prep").iterdir()} <= {PREP_MARKER}


def test_class_without_usable_images_is_refused(tmp_path):
    colour_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "owl").mkdir()
    (tmp_path / "imgs" / "owl" / "a.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(DataError, match="class 'owl'.*no usable image"):
        image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "prep"))


def test_empty_class_and_single_class_are_refused(tmp_path):
    colour_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "empty").mkdir()
    (tmp_path / "imgs" / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(DataError, match="empty holds no"):
        image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "p"))
    save(tmp_path / "one" / "cat" / "a.png", (8, 8))
    with pytest.raises(DataError, match="at least 2"):
        image_folder.main(folder_args(tmp_path / "one", tmp_path / "q"))
    with pytest.raises(DataError, match="does not exist"):
        image_folder.main(folder_args(tmp_path / "missing", tmp_path / "r"))


def test_train_test_layout_is_honoured(tmp_path):
    root = tmp_path / "imgs"
    for i in range(3):
        save(root / "train" / "cat" / f"{i}.jpg", (12, 10), fmt="JPEG")
        save(root / "train" / "dog" / f"{i}.png", (10, 12))
    save(root / "test" / "dog" / "t.gif", (8, 8), fmt="GIF")
    save(root / "test" / "emu" / "t.webp", (8, 8), fmt="WEBP")
    image_folder.main(folder_args(root, tmp_path / "prep"))
    info = read_info(tmp_path / "prep")
    assert info["classes"] == ["cat", "dog", "emu"] and info["splits"] == {"train": 6, "test": 2}
    assert sorted(load_split(tmp_path / "prep", "test")[1]) == [1, 2]
    assert images_file(tmp_path / "prep", "test").is_file()


def test_a_stop_at_a_bad_file_keeps_the_dataset_already_there(tmp_path):
    colour_folder(tmp_path / "imgs")
    out = tmp_path / "prep"
    image_folder.main(folder_args(tmp_path / "imgs", out))
    before = {s: load_split(out, s, mmap=False) for s in ("train", "test")}
    damage_folder(tmp_path / "imgs")  # new files, one of them bad
    with pytest.raises(DataError, match="broken.png"):
        image_folder.main(folder_args(tmp_path / "imgs", out, "--on-bad-file", "stop"))
    for split, (images, labels) in before.items():
        after = load_split(out, split)
        assert np.array_equal(after[0], images) and np.array_equal(after[1], labels)
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".raw", ".tmp")) == []


def test_images_stream_to_disk_in_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(SplitWriter, "CHUNK", 3)  # several chunks even for a tiny split
    rng = np.random.default_rng(0)
    for c in ("cat", "dog"):
        for i in range(10):  # noise: every image tells itself apart
            path = tmp_path / "imgs" / c / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(path)
    image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "prep"))
    files, *_ = image_folder.find_images(tmp_path / "imgs", 0.5)
    expected = [f for f in files if f.split == "train"]
    images, labels = load_split(tmp_path / "prep", "train")
    assert len(images) == len(expected) > 6
    for image, label, f in zip(images, labels, expected):  # every image in order, with its own label
        assert np.array_equal(image, image_folder.decode(f.path, 8, rgb=True)) and label == f.label


@pytest.mark.parametrize("mode, dtype, top", [("I;16", np.uint16, 65535), ("I", np.int32, 65535), ("F", np.float32, 1.0)])
def test_images_of_more_than_8_bits_keep_their_content(tmp_path, capsys, mode, dtype, top):
    root = tmp_path / "deep"
    rng = np.random.default_rng(0)
    for name, ramp in (("rising", np.linspace(0, top, 16)), ("falling", np.linspace(top, 0, 16))):
        for i in range(5):
            pixels = (np.tile(ramp, (16, 1)) * rng.uniform(0.6, 1.0)).astype(dtype)
            (root / name).mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(pixels)
            assert image.mode == mode
            image.save(root / name / f"{i}.tif")
    image_folder.main(folder_args(root, tmp_path / "out", "--size", "16"))
    images, labels = load_split(tmp_path / "out", "train")
    for image in images:  # a ramp from dark to light, not an image clipped to white (or to 0 and 1)
        assert image.max() - image.min() > 100 and (image == image.max()).mean() < 0.2, image[..., 0]
    assert "WARNING" not in capsys.readouterr().out


def test_classes_that_hold_the_same_images_are_warned_about(tmp_path, capsys):
    root = tmp_path / "same"
    for name in ("left", "right"):
        for i in range(4):
            save(root / name / f"{i}.png", (12, 12), color=(40 * i, 10, 10))
    image_folder.main(folder_args(root, tmp_path / "out", "--size", "12", "--test-fraction", "0.3"))
    out = capsys.readouterr().out
    assert "WARNING: classes 'left' and 'right' hold the same" in out


def test_files_and_class_folders_with_odd_names_are_skipped_and_listed(tmp_path):
    """A name with a line break, or with bytes that are not UTF-8, stopped the preparation with a traceback;
    such files (and class folders) are skipped and listed as undecodable ones are, or stop the run by name."""
    colour_folder(tmp_path / "imgs")
    odd = ["cat/line\nbreak.png", "dog/tab\there.png", os.fsdecode(b"dog/latin1_\xe9.png"), os.fsdecode(b"\xff_owl/a.png")]
    for name in odd:
        save(tmp_path / "imgs" / name, (9, 9))
    result = image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "prep"))
    assert read_info(tmp_path / "prep")["classes"] == ["cat", "dog"]
    report = (tmp_path / "prep" / "bad_files.txt").read_text()
    assert report.startswith("4 of 17 files skipped") and report.count("rename it") == 4
    assert "line\\nbreak.png" in report and "tab\\there.png" in report and "\\udcff_owl" in report
    assert len(result.skipped) == 4 and not image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "prep")).written
    with pytest.raises(DataError, match="which a manifest or report cannot hold; rename it; nothing was written"):
        image_folder.main(folder_args(tmp_path / "imgs", tmp_path / "stop", "--on-bad-file", "stop"))
    assert not (tmp_path / "stop").exists()
