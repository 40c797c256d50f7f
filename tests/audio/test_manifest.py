import pytest

from audio_fixtures import toy_speech_corpus
from conftest import cli
from seqcpc.audio.manifest import (Utterance, manifest_roots, read_manifest, read_phones,
                             resolve_path, write_manifest, write_phones)
from seqcpc.errors import DataError
from seqcpc.audio.windows import WindowDataset


def rows():
    return [Utterance("a", "a.flac", "s1", "train", 1.5, 16000, 1, 24000, '{"pitch": 50}'),
            Utterance("b", "sub/b.flac", "s2", "test", 2.0, 44100, 2, 88200)]


def test_round_trip_and_split_filter(tmp_path):
    path = tmp_path / "manifest.tsv"
    assert write_manifest(path, rows()) == 2
    assert list(read_manifest(path)) == rows()
    assert [r.id for r in read_manifest(path, ["test"])] == ["b"]
    assert not list(tmp_path.glob("*.tmp"))


def test_empty_or_malformed_manifests_are_named(tmp_path):
    path = tmp_path / "manifest.tsv"
    write_manifest(path, [])
    assert list(read_manifest(path)) == []
    with pytest.raises(DataError, match="no usable utterance among the 0 of train"):
        WindowDataset(path, ["train"], window=1000, sample_rate=16000)
    path.write_text(path.read_text() + "x\ty\n")
    with pytest.raises(DataError, match=r"manifest.tsv:2: expected 9"):
        list(read_manifest(path))
    with pytest.raises(DataError, match="does not exist"):
        list(read_manifest(tmp_path / "none.tsv"))
    (tmp_path / "bad.tsv").write_text("id\tpath\n")
    with pytest.raises(DataError, match="header"):
        list(read_manifest(tmp_path / "bad.tsv"))


def test_paths_outside_the_roots_are_refused_unless_allowed(tmp_path):
    manifest = tmp_path / "corpus" / "manifest.tsv"
    manifest.parent.mkdir()
    roots = manifest_roots(manifest)
    assert resolve_path(manifest, "x/a.flac", roots) == (tmp_path / "corpus/x/a.flac").resolve()
    for evil in ("../secret.flac", "/etc/passwd"):
        with pytest.raises(DataError, match="outside the corpus folders"):
            resolve_path(manifest, evil, roots)
        assert resolve_path(manifest, evil, roots, allow_outside=True).name in ("secret.flac", "passwd")
    (manifest.parent / "audio_roots.txt").write_text(f"{tmp_path / 'audio'}\n")
    roots = manifest_roots(manifest)
    assert resolve_path(manifest, str(tmp_path / "audio/s/a.flac"), roots).name == "a.flac"


def test_phones_round_trip_and_bad_lines(tmp_path):
    write_phones(tmp_path / "p.txt", {"a": [1, 2, 2], "b": [0]})
    got = read_phones(tmp_path / "p.txt")
    assert got["a"].tolist() == [1, 2, 2] and got["b"].tolist() == [0]
    (tmp_path / "bad.txt").write_text("a 1 x\n")
    with pytest.raises(DataError, match="bad.txt:1"):
        read_phones(tmp_path / "bad.txt")


def edit_row(manifest, line: int, **values) -> None:
    """Set fields of the row on `line` (the header is line 1) of a manifest file."""
    lines = manifest.read_text().splitlines()
    header = lines[0].split("\t")
    row = dict(zip(header, lines[line - 1].split("\t")))
    lines[line - 1] = "\t".join({**row, **values}.values())
    manifest.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("values, message", [
    ({"split": "Train"}, "manifest.tsv:3: split 'Train' is not one of train, test, heldout"),
    ({"split": "trian"}, "manifest.tsv:3: split 'trian' is not one of train, test, heldout"),
    ({"id": "s0_u0"}, "manifest.tsv:3: id 's0_u0' is also on line 2; every utterance has one row"),
    ({"speaker": ""}, "manifest.tsv:3: the speaker is empty"),
    ({"duration": "-1.5"}, "manifest.tsv:3: duration -1.5 is not a number of seconds >= 0"),
    ({"duration": "nan"}, "manifest.tsv:3: duration nan is not a number of seconds >= 0"),
    ({"num_samples": "-24000"}, "manifest.tsv:3: num_samples -24000 is negative"),
    ({"sample_rate": "0"}, "manifest.tsv:3: sample_rate 0 and channels 1 must be >= 1"),
    ({"meta": "[1, 2]"}, "manifest.tsv:3: meta '[1, 2]' is not a JSON object"),
    ({"meta": '{"start": -5}'}, "manifest.tsv:3: meta start -5 is not a whole number of samples >= 0"),
    ({"meta": '{"start": 1.5}'}, "manifest.tsv:3: meta start 1.5 is not a whole number of samples >= 0"),
    ({"meta": "{start: 3}"}, "manifest.tsv:3: meta '{start: 3}' is not JSON"),
])
def test_a_row_that_would_be_used_wrongly_is_refused_with_its_line(tmp_path, capsys, values, message):
    """A misspelt split was dropped while the log said 100% of the audio was used, a repeated row counted twice,
    an empty speaker or a negative length were taken as they were."""
    manifest = toy_speech_corpus(tmp_path / "c", speakers=2, heldout=0, utts=3, seconds=1.0)
    edit_row(manifest, 3, **values)
    code, _, err = cli(capsys, "pretrain", "data.kind=manifest", f"data.manifest={manifest}", "data.window=8000",
                       f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and message in err and "Traceback" not in err
