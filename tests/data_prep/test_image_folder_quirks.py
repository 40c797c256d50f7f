"""data_prep/image_folder.py on what a real clip-art folder holds (Debian's openclipart-png): transparent RGBA,
palette and grey+alpha PNGs, an image filed under two classes by a symbolic link, a corrupt file, and classes too
small to be scored on the test split."""
import numpy as np
import pytest
from PIL import Image

from data_prep import image_folder, openclipart
from seqcpc.errors import DataError
from seqcpc.image.store import load_split, read_info

RED = (200, 30, 10)


def shape_on_nothing(mode: str) -> Image.Image:
    """An 8x8 image: a red (grey 80 in LA) left half, the right half transparent with black hidden under it."""
    rgba = np.zeros((8, 8, 4), dtype=np.uint8)
    rgba[:, :4] = (*RED, 255)
    image = Image.fromarray(rgba, "RGBA")
    if mode == "LA":
        return image.convert("LA")  # grey + alpha, the hidden half still black
    if mode == "P":  # palette entry 1 (black) is the transparent one (PNG's tRNS chunk)
        palette = Image.fromarray((rgba[..., 3] == 0).astype(np.uint8), "P")
        palette.putpalette([*RED, 0, 0, 0])
        palette.info["transparency"] = 1
        return palette
    return image


def write(path, image: Image.Image) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)


def clip_art(root) -> None:
    """Two classes of 8 images in RGBA, palette and LA PNGs (all with transparency), one of them also filed under
    `plants` by a link; a corrupt PNG; `plants` with 3 images of its own and `logos` with 2."""
    modes = ["RGBA", "P", "LA", "RGBA"]
    for c in ("animals", "computer"):
        for i in range(8):
            write(root / c / f"{i}.png", shape_on_nothing(modes[i % 4]))
    for i in range(3):
        write(root / "plants" / f"{i}.png", shape_on_nothing("RGBA"))
    (root / "plants" / "tree_linked.png").symlink_to("../animals/0.png")
    for i in range(2):
        write(root / "logos" / f"{i}.png", shape_on_nothing("P"))
    (root / "computer" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")


def prepare(root, out, *extra):
    return image_folder.main(["--root", str(root), "--out", str(out), "--size", "8", "--test-fraction", "0.4",
                              *extra], log=lambda line: None)


def test_transparent_pixels_become_white_in_every_png_kind(tmp_path):
    clip_art(tmp_path / "art")
    for mode in ("RGBA", "P", "LA"):
        write(tmp_path / f"{mode}.png", shape_on_nothing(mode))
        image = Image.open(tmp_path / f"{mode}.png")  # as read back from a file
        assert image.mode == mode and (mode != "P" or "transparency" in image.info)
        pixels = image_folder.on_white(image)
        assert pixels.mode == "RGB" and pixels.getpixel((6, 3)) == (255, 255, 255), mode  # not the black under it
        left = pixels.getpixel((1, 3))
        assert left == RED if mode != "LA" else left[0] == left[1] == left[2] < 200, mode
    decoded = image_folder.decode(tmp_path / "art" / "animals" / "2.png", 8, rgb=False)  # LA, kept grey
    assert decoded[3, 6, 0] == 255 and decoded[3, 1, 0] < 200


def test_links_are_kept_once_and_bad_files_and_small_classes_are_listed(tmp_path):
    clip_art(tmp_path / "art")
    result = prepare(tmp_path / "art", tmp_path / "out")
    report = (tmp_path / "out" / "bad_files.txt").read_text()
    assert "plants/tree_linked.png: a link to the image kept as animals/0.png" in report
    assert "computer/broken.png: " in report and len(result.skipped) == 2
    info = read_info(tmp_path / "out")
    assert info["classes"] == ["animals", "computer", "logos", "plants"] and info["channels"] == 3
    assert sum(info["splits"].values()) == 8 + 8 + 2 + 3  # the link and the broken file are not images of it
    images = np.concatenate([load_split(tmp_path / "out", s)[0] for s in ("train", "test")])
    assert (images[:, :, -1] == 255).all()  # the transparent right edge is white, not the black under it
    (tmp_path / "art" / "computer" / "broken.png").unlink()
    prepare(tmp_path / "art", tmp_path / "stop", "--on-bad-file", "stop")  # a link is no bad file
    left = images[:, :, 0, 0]  # the red (or, from a grey+alpha file, grey) left edge: neither black nor white
    assert ((left > 50) & (left < 255)).all()


def test_min_test_leaves_out_the_classes_it_cannot_score(tmp_path):
    clip_art(tmp_path / "art")
    files, classes, *_ = image_folder.find_images(tmp_path / "art", 0.4)
    tests = {c: sum(f.split == "test" and classes[f.label] == c for f in files) for c in classes}
    assert tests == {"animals": 2, "computer": 3, "logos": 0, "plants": 0}  # the split hashes the relative paths
    prepare(tmp_path / "art", tmp_path / "out", "--min-test", "2")
    assert read_info(tmp_path / "out")["classes"] == ["animals", "computer"]
    report = (tmp_path / "out" / "bad_files.txt").read_text()
    assert "class 'logos' left out: 2 training and 0 test images (--min-test 2)" in report
    assert "class 'plants' left out: 3 training and 0 test images (--min-test 2)" in report
    labels = np.concatenate([load_split(tmp_path / "out", s)[1] for s in ("train", "test")])
    assert sorted(set(labels)) == [0, 1]  # renumbered without gaps
    with pytest.raises(DataError, match=r"only 1 class\(es\) \['computer'\] have --min-test 3"):
        prepare(tmp_path / "art", tmp_path / "out2", "--min-test", "3")


def test_openclipart_says_what_to_install_when_the_package_is_missing(tmp_path):
    with pytest.raises(DataError, match=r"does not exist: install the clip art first \(sudo apt-get install "
                                        r"openclipart-png"):
        openclipart.main(["--root", str(tmp_path / "none"), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
