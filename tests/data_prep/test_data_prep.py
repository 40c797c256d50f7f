import os

import pytest

from audio_fixtures import librispeech_tree, tone, write
from data_prep import folder, librispeech
from seqcpc.audio.manifest import read_manifest, read_phones
from seqcpc.errors import DataError


def test_folder_layout_any_rate_and_channels(tmp_path):
    root = tmp_path / "corpus"
    write(root / "alice" / "day1" / "x.wav", tone(1.0, rate=22050, channels=2), rate=22050)
    write(root / "alice" / "y.flac", tone(1.2))
    write(root / "bob" / "z.ogg", tone(0.8, rate=48000), rate=48000)
    (root / "bob" / "notes.txt").write_text("ignored")
    result = folder.main(["--root", str(root), "--out", str(tmp_path / "prep"), "--test-fraction", "0.5"])
    rows = {r.id: r for r in read_manifest(result.manifest)}
    assert set(rows) == {"alice/day1/x", "alice/y", "bob/z"}
    assert (rows["alice/day1/x"].sample_rate, rows["alice/day1/x"].channels) == (22050, 2)
    assert rows["bob/z"].speaker == "bob" and rows["bob/z"].duration == pytest.approx(0.8, abs=1e-3)
    assert {r.split for r in rows.values()} <= {"train", "test"}
    again = folder.main(["--root", str(root), "--out", str(tmp_path / "prep"), "--test-fraction", "0.5"])
    assert not again.written  # idempotent


def test_folder_prep_skips_or_stops_on_a_bad_file(tmp_path):
    root = tmp_path / "corpus"
    write(root / "alice" / "good.wav", tone(1.0))
    (root / "alice" / "broken.wav").write_bytes(b"RIFF....garbage")
    result = folder.main(["--root", str(root), "--out", str(tmp_path / "a")])
    assert [r.id for r in read_manifest(result.manifest)] == ["alice/good"]
    report = (tmp_path / "a" / "prep_report.txt").read_text()
    assert "1 files skipped" in report and "broken.wav" in report
    with pytest.raises(DataError, match="broken.wav"):
        folder.main(["--root", str(root), "--out", str(tmp_path / "b"), "--on-error", "stop"])
    assert not (tmp_path / "b" / "manifest.tsv").exists()


def test_empty_folder_is_refused(tmp_path):
    (tmp_path / "corpus" / "alice").mkdir(parents=True)
    with pytest.raises(DataError, match="no .wav/.flac/.ogg files"):
        folder.main(["--root", str(tmp_path / "corpus"), "--out", str(tmp_path / "p")])


def test_librispeech_layout_with_split_files_and_phones(tmp_path, capsys):
    root = librispeech_tree(tmp_path / "train-clean-100", speakers=("19", "26", "27"), utts=3, seconds=1.5)
    (tmp_path / "train_split.txt").write_text("19-198-0000\n19-198-0001\n26-198-0000\n26-198-0001\n27-198-0000\n")
    (tmp_path / "test_split.txt").write_text("19-198-0002\n26-198-0002\n999-1-1\n")
    frames = 150  # 1.5 s at 100 frames/s
    lines = [f"19-198-000{u} " + " ".join(["3"] * frames) for u in range(3)]
    lines.append("26-198-0000 " + " ".join(["1"] * (frames + 9)))  # disagrees with the audio
    lines.append("26-198-0001 " + " ".join(["2"] * (frames - 1)))  # within tolerance
    (tmp_path / "phones.txt").write_text("\n".join(lines) + "\n")
    out = tmp_path / "prep"
    args = ["--root", str(root), "--out", str(out), "--phones", str(tmp_path / "phones.txt"),
            "--train-split", str(tmp_path / "train_split.txt"), "--test-split", str(tmp_path / "test_split.txt")]
    result = librispeech.main(args)
    assert "1 ids of the split files are not in the corpus" in capsys.readouterr().out
    rows = {r.id: r for r in read_manifest(result.manifest)}
    assert len(rows) == 7 and "27-198-0001" not in rows  # only ids named in a split file
    assert rows["19-198-0002"].split == "test" and rows["27-198-0000"].split == "train"
    phones = read_phones(out / "phones.txt")
    assert set(phones) == {"19-198-0000", "19-198-0001", "19-198-0002", "26-198-0001"}
    assert "26-198-0000" in (out / "phones_report.txt").read_text()
    assert not librispeech.main(args).written


def test_librispeech_heldout_speakers_and_hash_splits(tmp_path):
    root = librispeech_tree(tmp_path / "ls", speakers=("1", "2", "3", "4"), utts=4, seconds=0.5)
    result = librispeech.main(["--root", str(root), "--out", str(tmp_path / "p"), "--heldout-speakers", "1"])
    rows = list(read_manifest(result.manifest))
    heldout = {r.speaker for r in rows if r.split == "heldout"}
    assert len(heldout) == 1 and all(r.split == "heldout" for r in rows if r.speaker in heldout)
    assert {r.split for r in rows if r.speaker not in heldout} <= {"train", "test"}


@pytest.mark.parametrize("option, message", [
    (["--heldout-speakers", "-1"], "-1 is negative"),
    (["--test-fraction", "1.5"], "1.5 is not between 0 and 1"),
    (["--test-fraction", "0"], "0 is not between 0 and 1"),
    (["--test-fraction", "nan"], "nan is not a finite number"),
])
def test_options_that_make_no_sense_are_refused_before_anything_is_written(tmp_path, capsys, option, message):
    librispeech_tree(tmp_path / "ls")
    with pytest.raises(SystemExit) as stop:
        folder.main(["--root", str(tmp_path / "ls"), "--out", str(tmp_path / "out"), *option])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_more_heldout_speakers_than_the_corpus_has_is_refused_in_one_line(tmp_path):
    import subprocess
    import sys

    librispeech_tree(tmp_path / "ls")  # 2 speakers
    proc = subprocess.run([sys.executable, "-m", "data_prep.librispeech", "--root", str(tmp_path / "ls"),
                           "--out", str(tmp_path / "out"), "--heldout-speakers", "2"], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--heldout-speakers 2: the corpus has 2 speakers" in proc.stderr
    assert not (tmp_path / "out" / "manifest.tsv").exists()


def test_files_that_share_an_id_are_refused_not_merged(tmp_path):
    root = tmp_path / "corpus"
    write(root / "alice" / "a.wav", tone(1.0))
    write(root / "alice" / "a.flac", tone(1.2))
    with pytest.raises(DataError, match="1 utterance ids name more than one file, e.g. 'alice/a'"):
        folder.main(["--root", str(root), "--out", str(tmp_path / "p")])
    assert not (tmp_path / "p" / "manifest.tsv").exists()


def test_ids_in_both_split_files_are_refused(tmp_path):
    root = librispeech_tree(tmp_path / "ls")
    (tmp_path / "train.txt").write_text("19-198-0000\n19-198-0001\n")
    (tmp_path / "test.txt").write_text("19-198-0001\n26-198-0000\n")
    with pytest.raises(DataError, match="1 utterance ids are in both .* e.g. 19-198-0001"):
        librispeech.main(["--root", str(root), "--out", str(tmp_path / "p"), "--train-split", str(tmp_path / "train.txt"),
                          "--test-split", str(tmp_path / "test.txt")])


@pytest.mark.parametrize("bad_line, message", [
    ("19-198-0001 3 x 3", "phone indices must be integers"),
    ("19-198-0001 3 -1 3", "phone index -1 is outside"),
    ("19-198-0001 3 70000 3", "phone index 70000 is outside"),
])
def test_a_bad_label_file_stops_before_anything_is_marked_done(tmp_path, bad_line, message):
    root = librispeech_tree(tmp_path / "ls")
    phones = tmp_path / "phones.txt"
    phones.write_text("19-198-0000 " + " ".join(["3"] * 150) + f"\n{bad_line}\n")
    args = ["--root", str(root), "--out", str(tmp_path / "p"), "--phones", str(phones)]
    with pytest.raises(DataError, match=message):
        librispeech.main(args)
    assert not (tmp_path / "p" / "prep_fingerprint.txt").exists()
    phones.write_text("19-198-0000 " + " ".join(["3"] * 150) + "\n")  # fixed: the rerun writes the labels
    assert librispeech.main(args).written and (tmp_path / "p" / "phones.txt").read_text().startswith("19-198-0000 3")


ODD_NAMES = ["tab\there.wav", "line\nbreak.wav", os.fsdecode(b"latin1_\xe9.wav")]  # the last is not UTF-8


def test_files_whose_names_a_manifest_cannot_hold_are_skipped_and_listed(tmp_path):
    """A tab or line break in a name stopped the preparation at the manifest, bytes that are not UTF-8 with a
    traceback: such files are skipped and listed as unreadable ones are, or stop the run by name."""
    root = tmp_path / "corpus"
    write(root / "alice" / "good.wav", tone(1.0))
    write(root / "bob" / "fine.wav", tone(1.0))
    for name in ODD_NAMES:
        write(root / "alice" / "odd.wav", tone(1.0)).rename(root / "alice" / name)  # libsndfile takes UTF-8 only
    result = folder.main(["--root", str(root), "--out", str(tmp_path / "prep")])
    assert [r.id for r in read_manifest(result.manifest)] == ["alice/good", "bob/fine"]
    report = (tmp_path / "prep" / "prep_report.txt").read_text()
    assert "2 utterances written, 3 files skipped" in report and report.count("rename it") == 3
    assert "tab\\there.wav" in report and "line\\nbreak.wav" in report and "latin1_\\udce9.wav" in report
    assert not folder.main(["--root", str(root), "--out", str(tmp_path / "prep")]).written
    with pytest.raises(DataError, match="which a manifest or report cannot hold; rename it; nothing was written"):
        folder.main(["--root", str(root), "--out", str(tmp_path / "stop"), "--on-error", "stop"])
    assert not (tmp_path / "stop").exists()
