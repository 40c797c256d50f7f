"""data_prep.glyphs on a tiny set (3 classes per alphabet, 4 instances): the store it writes, determinism,
idempotence, the visual deduplication, the distortions and the refusal of bad options."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from data_prep import glyphs
from seqcpc.image.store import load_split, read_info

TINY = ["--max-classes-per-alphabet", "3", "--instances", "4"]
FILES = ("train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy", "alphabets.json")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("glyphs") / "tiny"
    logs = []
    result = glyphs.main(["--out", str(out), *TINY], log=logs.append)
    return out, result, logs


def test_splits_hold_disjoint_alphabets(tiny):
    out, result, logs = tiny
    assert result.written
    classes = read_info(out)["classes"]
    alphabets = json.loads((out / "alphabets.json").read_text())
    assert [a["name"] for a in alphabets] == [name for name, _ in glyphs.ALPHABETS]
    assert len(classes) == 3 * len(alphabets)
    seen = {}
    for split in ("train", "test"):
        images, labels = load_split(out, split)
        assert images.dtype == np.uint8 and images.shape[1:] == (28, 28, 1)
        mine = [a for a in alphabets if a["split"] == split]
        assert len(mine) >= 2  # several alphabets on each side
        assert set(labels.tolist()) == {c for a in mine for c in a["classes"]}
        assert all(classes[c].startswith(a["name"] + "/U+") for a in mine for c in a["classes"])
        assert (np.bincount(labels)[labels] == 4).all()
        # ink bright on a dark background: dark borders, a bright stroke in every image
        assert images[:, [0, -1]].mean() < 10 and (images.reshape(len(images), -1).max(1) > 128).all()
        seen[split] = set(labels.tolist())
    assert not seen["train"] & seen["test"]
    assert any("5-way 1-shot" in line for line in logs) and any("20-way 1-shot" in line for line in logs)


def test_deterministic_and_idempotent(tiny, tmp_path):
    out, _, _ = tiny
    again = tmp_path / "again"
    assert glyphs.main(["--out", str(again), *TINY], log=lambda line: None).written
    for name in FILES:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name
    mtimes = {p.name: p.stat().st_mtime_ns for p in again.iterdir()}
    logs = []
    assert not glyphs.main(["--out", str(again), *TINY], log=logs.append).written
    assert logs == [f"{again} is up to date; nothing to do"]
    assert {p.name: p.stat().st_mtime_ns for p in again.iterdir()} == mtimes


def test_lookalikes_make_one_class():
    alphabets = (("Latin", ((0x41, 0x43),)), ("Greek", ((0x391, 0x393),)), ("Cyrillic", ((0x410, 0x412),)))
    chosen = glyphs.choose_glyphs(glyphs.Fonts(), alphabets, max_per_alphabet=0)
    # Greek Alpha and Beta, Cyrillic A and Ve are drawn like Latin A and B
    assert [chr(g.code) for g in chosen] == ["A", "B", "C", "\u0393", "\u0411"]


def test_no_two_classes_look_the_same(tiny):
    out, _, _ = tiny
    fonts = glyphs.Fonts()
    renderings = set()
    for name in read_info(out)["classes"]:
        code = int(name.split("/U+")[1], 16)
        ink = next(ink for face in fonts.covering(code) if (ink := fonts.draw(face, code)) is not None)
        renderings.add((glyphs.fit(ink, 14, 1.0) > 0.5).numpy().tobytes())  # the default face, 14x14
    assert len(renderings) == len(read_info(out)["classes"])


def test_instances_of_a_class_differ(tiny):
    out, _, _ = tiny
    for split in ("train", "test"):
        images, labels = load_split(out, split)
        for label in np.unique(labels):
            instances = {image.tobytes() for image in images[labels == label]}
            assert len(instances) == 4, label


def test_sampling_grid_is_affine_grid():
    theta = glyphs.random_affines(np.random.default_rng(0), 5)
    expected = F.affine_grid(theta, [5, 1, 16, 16], align_corners=False)
    torch.testing.assert_close(glyphs.sampling_grid(theta, 16), expected)


def test_stroke_steps_thicken_and_thin():
    bars = torch.zeros(3, 1, 9, 9)
    bars[:, :, 3:6, 2:7] = 1  # a bar three pixels thick
    drawn = glyphs.change_stroke(bars.clone(), torch.tensor([1, 0, -1]))
    assert drawn[0].sum() == 5 * 7 and torch.equal(drawn[1], bars[1]) and drawn[2].sum() == 1 * 3


@pytest.mark.parametrize("option, message", [
    (["--instances", "1"], "at least 2 instances"),
    (["--size", "4"], "8 to 128 pixels a side"),
    (["--size", "100000"], "8 to 128 pixels a side"),  # drew 1.6 TB of frames before: a MemoryError traceback
    (["--evaluation-fraction", "1"], "between 0 and 1"),
    (["--evaluation-fraction", "nan"], "not a finite number"),
    (["--max-classes-per-alphabet", "-1"], "negative"),
    (["--seed", "-2"], "negative"),
])
def test_bad_options_are_refused_in_one_line_with_exit_code_2(tmp_path, capsys, option, message):
    with pytest.raises(SystemExit) as stop:
        glyphs.main(["--out", str(tmp_path / "out"), *option])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err
    assert not (tmp_path / "out").exists()
