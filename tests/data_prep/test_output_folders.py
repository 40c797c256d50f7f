"""One output-folder rule for every data_prep writer (seqcpc.files.claim_output): never the current folder, never
a folder that holds other files or another preparation, and a rerun of the same preparation still skips or
redoes its own work."""
import pytest

from audio_fixtures import librispeech_tree, tone, write
from data_prep import espeak_corpus, folder, glyphs, idx_images, image_folder, librispeech, long_tail
from image_fixtures import toy_image_store
from seqcpc.errors import DataError
from seqcpc.files import PREP_MARKER
from seqcpc.image.store import read_info
from test_data_prep_images import colour_folder, idx_folder

GLYPHS_TINY = ["--max-classes-per-alphabet", "2", "--instances", "2", "--size", "8"]


def writers(tmp_path) -> dict:
    """Each data_prep writer's arguments but --out, on tiny inputs made here."""
    write(tmp_path / "corpus" / "alice" / "a.wav", tone(1.0))
    write(tmp_path / "corpus" / "bob" / "b.wav", tone(1.0))
    idx_folder(tmp_path / "mnist")
    colour_folder(tmp_path / "imgs")
    return {"folder": (folder, ["--root", str(tmp_path / "corpus")]),
            "librispeech": (librispeech, ["--root", str(librispeech_tree(tmp_path / "ls"))]),
            "image_folder": (image_folder, ["--root", str(tmp_path / "imgs"), "--size", "8",
                                            "--test-fraction", "0.5"]),
            "idx_images": (idx_images, ["--src", str(tmp_path / "mnist")]),
            "long_tail": (long_tail, ["--src", str(toy_image_store(tmp_path / "store")), "--imbalance", "2"]),
            "glyphs": (glyphs, GLYPHS_TINY),
            "espeak_corpus": (espeak_corpus, ["--speakers", "2", "--heldout-speakers", "0", "--utterances", "2"])}


NAMES = ["folder", "librispeech", "image_folder", "idx_images", "long_tail", "glyphs", "espeak_corpus"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("out", ["", ".", "CWD"])
def test_the_current_folder_is_refused_by_every_writer(tmp_path, monkeypatch, name, out):
    module, args = writers(tmp_path)[name]
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with pytest.raises(DataError, match="--out must name a folder for the prepared data, not the current folder"):
        module.main([*args, "--out", str(cwd) if out == "CWD" else out])
    assert not list(cwd.iterdir())


@pytest.mark.parametrize("name", NAMES)
def test_a_folder_of_other_files_or_a_file_is_refused_by_every_writer(tmp_path, name):
    module, args = writers(tmp_path)[name]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match=rf"mine holds files that data_prep.{name} does not write \(notes.txt\)"):
        module.main([*args, "--out", str(tmp_path / "mine")])
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    (tmp_path / "file").write_text("")
    with pytest.raises(DataError, match="file is a file, not a folder"):
        module.main([*args, "--out", str(tmp_path / "file")])


def test_glyphs_does_not_replace_a_long_tailed_subset(tmp_path):
    subset = tmp_path / "subset"
    long_tail.main(["--src", str(toy_image_store(tmp_path / "store")), "--out", str(subset), "--imbalance", "2"])
    before = {p.name: p.read_bytes() for p in subset.iterdir()}
    with pytest.raises(DataError, match="subset holds data prepared by data_prep.long_tail, which data_prep.glyphs "
                                        "would replace; choose a new or empty --out folder"):
        glyphs.main(["--out", str(subset), *GLYPHS_TINY])
    (subset / PREP_MARKER).unlink()  # a subset prepared before folders were marked: known by its dataset.json
    with pytest.raises(DataError, match="prepared by data_prep.long_tail"):
        glyphs.main(["--out", str(subset), *GLYPHS_TINY])
    assert {p.name: p.read_bytes() for p in subset.iterdir()} == {k: v for k, v in before.items() if k != PREP_MARKER}
    assert "long_tail" in read_info(subset)


@pytest.mark.parametrize("first, second", [("idx_images", "image_folder"), ("folder", "librispeech"),
                                           ("image_folder", "long_tail")])
def test_another_preparation_is_never_replaced(tmp_path, first, second):
    found = writers(tmp_path)
    module, args = found[first]
    module.main([*args, "--out", str(tmp_path / "prep")])
    kept = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "prep").iterdir()}
    module, args = found[second]
    with pytest.raises(DataError, match=f"prepared by data_prep.{first}, which data_prep.{second} would replace"):
        module.main([*args, "--out", str(tmp_path / "prep")])
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "prep").iterdir()} == kept


@pytest.mark.parametrize("name", ["folder", "image_folder", "idx_images"])
def test_the_same_preparation_is_redone_or_skipped_even_in_a_folder_from_before_markers(tmp_path, name):
    module, args = writers(tmp_path)[name]
    out = tmp_path / "prep"
    assert module.main([*args, "--out", str(out)]).written
    assert (out / PREP_MARKER).read_text() == f"data_prep.{name}\n"
    assert not module.main([*args, "--out", str(out)]).written
    (out / PREP_MARKER).unlink()
    (out / "prep_fingerprint.txt" if name == "folder" else out / "dataset.json").unlink()  # stopped half-way
    assert module.main([*args, "--out", str(out)]).written  # the folder holds only what this writer writes
    assert (out / PREP_MARKER).read_text() == f"data_prep.{name}\n"
