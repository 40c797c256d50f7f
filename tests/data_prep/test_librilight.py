"""data_prep.librilight: hour-long files cut at their voice activity into manifest rows that are spans of the
files (no audio copied), and every reader of the manifest reading exactly a row's span."""
import json
import tarfile
from types import SimpleNamespace

import librosa
import numpy as np
import pytest
import soundfile as sf

from audio_fixtures import tone, write
from conftest import run_cli
from data_prep import librilight
from data_prep.librilight import cut_spans
from seqcpc.audio.abx import manifest_waves
from seqcpc.audio.features import frame_dataset, read_windows, window_specs
from seqcpc.audio.manifest import read_manifest
from seqcpc.audio.units import utterance_frames
from seqcpc.audio.windows import WindowDataset
from seqcpc.errors import DataError
from seqcpc.train.checkpoint import read_checkpoint

RATE = 16000
# file A (6 s), cut with --max-seconds 2 --min-seconds 0.5: [0.2, 0.6] and [0.8, 1.5] merge (1.3 s); [1.9, 2.3]
# cannot join them (2.1 s) nor the next one, and is dropped (0.4 s); [3.0, 5.9] is split in two 1.45 s pieces
VAD_A = [[0.2, 0.6], [0.8, 1.5], [1.9, 2.3], [3.0, 5.9]]
CUT_A = [(0.2, 1.5), (3.0, 4.45), (4.45, 5.9)]
# file B (3 s): voice activity said to run past the file's end is cut at the end, then split in two
VAD_B = [[0.5, 3.4]]
CUT_B = [(0.5, 1.75), (1.75, 3.0)]


def librilight_file(root, rel: str, seconds: float, vad, seed: int = 0):
    """<root>/<rel>.flac (a noisy tone: every sample differs) and <rel>.json with LibriLight's metadata."""
    flac = write(root / f"{rel}.flac", tone(seconds, freq=150 + 30 * seed, seed=seed) * 2, RATE)
    meta = {"speaker": rel.split("/")[-3], "snr": 12.5, "book_meta": {"id": "812", "title": "Sea Fairies"}}
    if vad is not None:
        meta["voice_activity"] = vad
    flac.with_suffix(".json").write_text(json.dumps(meta))
    return flac


def small_subset(root):
    """Three speakers, two books of speaker 100: 3 + 2 + 3 + 3 rows at --max-seconds 2 --min-seconds 0.5."""
    librilight_file(root, "100/sea_fairies_0812_librivox/01_baum", 6.0, VAD_A, seed=1)
    librilight_file(root, "100/other_book_librivox/02_x", 3.0, VAD_B, seed=2)
    librilight_file(root, "200/book_b/01_y", 6.0, VAD_A, seed=3)
    librilight_file(root, "300/book_c/01_z", 6.0, VAD_A, seed=4)
    return root


def prep(root, out, *extra):
    return librilight.main(["--root", str(root), "--out", str(out), "--max-seconds", "2", "--min-seconds", "0.5",
                            *extra])


def file_span(path, start: int, frames: int) -> np.ndarray:
    return sf.read(str(path), start=start, frames=frames, dtype="float32")[0]


def test_cut_merges_splits_and_drops():
    # max 10, min 3: [0, 4] + [5, 9] merge; [12, 14] alone (2) is dropped; [20, 45] (25) in 3 equal pieces
    spans = [(0, 4), (5, 9), (12, 14), (20, 45), (46, 50)]
    assert cut_spans(spans, 10, 3) == [(0, 9), (20, 28), (28, 36), (36, 45), (46, 50)]
    assert all(end - start <= 10 for start, end in cut_spans([(0, 101)], 10, 0))
    assert cut_spans([(0, 6), (4, 12)], 10, 0) == [(0, 6), (6, 12)]  # overlapping activity: no sample twice
    assert cut_spans([(0, 25), (22, 27)], 10, 0) == [(0, 8), (8, 16), (16, 25), (25, 27)]


def test_rows_are_spans_of_the_files_cut_at_their_voice_activity(tmp_path):
    root = small_subset(tmp_path / "small")
    result = prep(root, tmp_path / "prep")
    rows = {r.id: r for r in read_manifest(result.manifest)}
    assert len(rows) == 3 + 2 + 3 + 3
    for uid, (start, end) in zip([f"100/sea_fairies_0812_librivox/01_baum_{i:04d}" for i in range(3)], CUT_A):
        row = rows[uid]
        assert row.speaker == "100" and row.path.endswith("01_baum.flac") and row.sample_rate == RATE
        assert (row.start, row.num_samples) == (round(start * RATE), round(end * RATE) - round(start * RATE))
        assert json.loads(row.meta) == {"start": row.start} and row.duration == pytest.approx(end - start, abs=1e-3)
    b = [rows[f"100/other_book_librivox/02_x_{i:04d}"] for i in range(2)]
    assert [(r.start, r.start + r.num_samples) for r in b] == [(8000, 28000), (28000, 48000)]  # ends at 3 s
    assert all(0.5 <= r.duration <= 2.0 for r in rows.values())
    assert {r.speaker for r in rows.values()} == {"100", "200", "300"}
    assert not list((tmp_path / "prep").rglob("*.flac"))  # no audio copied
    assert not prep(root, tmp_path / "prep").written  # the second run does nothing
    vad = root / "200/book_b/01_y.json"
    vad.write_text(vad.read_text().replace("[3.0, 5.9]", "[3.0, 4.25]"))  # new voice activity: prepared again
    again = prep(root, tmp_path / "prep")
    assert again.written and len(again.rows) == len(rows) - 1


def test_every_reader_reads_exactly_the_rows_span(tmp_path):
    root = small_subset(tmp_path / "small")
    manifest = prep(root, tmp_path / "prep", "--test-fraction", "0.5").manifest
    rows = list(read_manifest(manifest, ["train"]))
    # windows longer than every row: each clip is read whole, then zeros
    whole = WindowDataset(manifest, ["train"], window=2 * RATE + 1, sample_rate=RATE, min_clip=1)
    assert len(whole) == len(rows) and whole.starts.dtype == np.int64
    for i, row in enumerate(rows):
        x, _, valid = whole[i]
        expected = file_span(root / row.path, row.start, row.num_samples)
        assert int(valid) == row.num_samples and np.array_equal(x[0, :row.num_samples].numpy(), expected)
        assert not x[0, row.num_samples:].any()
    # at another rate, the span of the whole file resampled (both ends on the new rate's grid)
    resampled = WindowDataset(manifest, ["train"], window=2 * RATE, sample_rate=11025, min_clip=1)
    for i, row in enumerate(rows):
        start, n = row.span_at(11025)
        whole_file = librosa.resample(sf.read(str(root / row.path), dtype="float32")[0], orig_sr=RATE,
                                      target_sr=11025, res_type="soxr_hq")
        assert int(resampled[i][2]) == n == round((row.start + row.num_samples) * 11025 / RATE) - start
        assert np.abs(resampled[i][0][0, :n].numpy() - whole_file[start:start + n]).max() < 1e-4
    # a random window lies inside its row's span
    windows = WindowDataset(manifest, ["train"], window=RATE // 2, sample_rate=RATE)
    for i, row in enumerate(rows):
        x = windows[i][0][0].numpy()
        span = file_span(root / row.path, row.start, row.num_samples)
        at = [k for k in np.flatnonzero(span == x[0]) if np.array_equal(span[k:k + len(x)], x)]
        assert len(at) == 1 and at[0] + len(x) <= row.num_samples
    # the probes' windows and whole utterances
    specs = window_specs(manifest, "train", RATE // 2, RATE, per_utterance=2, per_speaker=0)
    assert len(specs) == 2 * len(rows)
    for spec, wave in zip(specs, read_windows(specs, RATE // 2, RATE)):
        assert any(str(root / r.path) == str(spec.path) and r.start <= spec.start <= r.start + r.num_samples - RATE // 2
                   for r in rows)
        assert np.array_equal(wave.numpy(), file_span(spec.path, spec.start, RATE // 2))
    seen = {}

    def recorder(wave):  # (1, L) -> (1, T, 1) frames at 10 ms, keeping what it was given
        seen[len(seen)] = wave[0].numpy()
        return wave[:, : wave.shape[1] // 160 * 160].reshape(1, -1, 160)[..., :1]

    labels = {r.id: np.zeros(r.num_samples // 160, np.int16) for r in rows}
    frame_dataset({"x": recorder}, manifest, "train", labels, RATE, max_frames=10**6)
    assert len(seen) == len(rows)
    # the units' frames (a "model" whose frames are its samples) and the ABX items' waves
    identity = SimpleNamespace(embed=lambda x: (x[:, 0, :, None], x[:, 0, :, None]))  # (1, 1, L) -> (1, L, 1)
    units = dict(utterance_frames(identity, "c", manifest, "train", RATE, False, "cpu"))
    abx_load = manifest_waves(manifest, [r.id for r in rows], RATE)
    for row, wave in zip(rows, seen.values()):
        expected = file_span(root / row.path, row.start, row.num_samples)
        assert np.array_equal(wave, expected) and np.array_equal(units[row.id][:, 0], expected)
        assert np.array_equal(abx_load(row.id)[0].numpy(), expected)


def test_files_without_voice_activity_are_skipped_and_listed_or_stop(tmp_path):
    root = small_subset(tmp_path / "small")
    librilight_file(root, "300/book_c/02_no_vad", 2.0, None)
    librilight_file(root, "300/book_c/03_bad_json", 2.0, VAD_B).with_suffix(".json").write_text("{not json")
    write(root / "300/book_c/04_no_json.flac", tone(1.0))
    (root / "300/book_c/05_broken.flac").write_bytes(b"fLaC garbage")
    (root / "300/book_c/05_broken.json").write_text(json.dumps({"voice_activity": [[0, 1]]}))
    result = prep(root, tmp_path / "prep")
    assert len(result.rows) == 11 and len(result.skipped) == 4
    report = (tmp_path / "prep" / "prep_report.txt").read_text()
    assert "11 utterances written, 4 files skipped" in report
    assert "02_no_vad.json: no usable \"voice_activity\"" in report and "03_bad_json.json" in report
    assert "04_no_json.flac: no 04_no_json.json beside it" in report and "05_broken.flac" in report
    with pytest.raises(DataError, match="04_no_json.json beside it"):
        prep(root, tmp_path / "stop", "--on-error", "stop")
    (root / "300/book_c/04_no_json.flac").unlink()
    with pytest.raises(DataError, match="02_no_vad.json: no usable"):
        prep(root, tmp_path / "stop", "--on-error", "stop")
    assert not (tmp_path / "stop" / "manifest.tsv").exists()


def test_a_row_past_its_files_end_is_refused_with_the_manifest_and_file(tmp_path):
    root = small_subset(tmp_path / "small")
    manifest = prep(root, tmp_path / "prep").manifest
    text = manifest.read_text()
    manifest.write_text(text.replace('{"start": 28000}', '{"start": 28001}'))  # 02_x's last piece ended at 3 s
    with pytest.raises(DataError, match=r"manifest.tsv: samples 28001..48001 of '100/other_book_librivox/02_x_0001' "
                                        r"run past the end of its file, which holds 48000 \(.*02_x.flac\)"):
        WindowDataset(manifest, ["train", "test"], window=RATE // 2, sample_rate=RATE)


def test_a_root_of_subsets_and_held_out_speakers(tmp_path):
    small_subset(tmp_path / "ll" / "small")
    librilight_file(tmp_path / "ll", "medium/400/book_d/01_w", 6.0, VAD_A, seed=5)
    result = prep(tmp_path / "ll", tmp_path / "prep", "--heldout-speakers", "1")
    rows = list(read_manifest(result.manifest))
    assert len(rows) == 14 and "medium/400/book_d/01_w_0002" in {r.id for r in rows}
    assert all(r.id.startswith(("small/", "medium/")) for r in rows)
    heldout = {r.speaker for r in rows if r.split == "heldout"}
    assert len(heldout) == 1 and all(r.split == "heldout" for r in rows if r.speaker in heldout)


def test_pretraining_runs_on_a_prepared_librilight_folder(tmp_path):
    root = small_subset(tmp_path / "small")
    manifest = prep(root, tmp_path / "prep", "--test-fraction", "0.3").manifest
    assert {r.split for r in read_manifest(manifest)} == {"train", "test"}
    out = tmp_path / "run"
    run_cli("pretrain", "data.kind=manifest", f"data.manifest={manifest}", "model.size=audio_paper",
            "model.encoder.dim=16", "model.context.dim=16", "objective.predictor.steps=4",
            "objective.loss.num_negatives=16", "data.window=8000", "data.batch_size=4", "train.max_steps=3",
            "train.val_batches=1", "train.log_every=1", f"train.out_dir={out}")
    assert read_checkpoint(out / "checkpoints" / "last.ckpt")["step"] == 3


def test_librilight_segments_pack_into_shards_as_the_spans_they_name(tmp_path):
    """The LibriLight layout -> manifest of spans -> shards: each shard item is its span alone, as 16-bit FLAC."""
    from data_prep.shards import pack
    from seqcpc.audio.manifest import manifest_roots, resolve_path
    from seqcpc.audio.shards import read_items

    prep(small_subset(tmp_path / "small"), tmp_path / "ll", "--test-fraction", "0.3")
    pack(tmp_path / "ll", tmp_path / "shards", 0.05, "speaker", 0, ["train", "test"], "stop", log=lambda m: None)
    manifest = tmp_path / "ll" / "manifest.tsv"
    rows = {r.id: r for r in read_manifest(manifest)}
    entries = json.loads((tmp_path / "shards" / "index.json").read_text())["splits"]["train"]
    seen = 0
    for entry in entries:
        with tarfile.open(tmp_path / "shards" / entry["tar"]) as tar:
            for item in read_items(tmp_path / "shards", entry["tar"], RATE):
                row = rows[item.id]
                packed, rate = sf.read(tar.extractfile(f"{item.key}.flac"), dtype="float32")
                path = resolve_path(manifest, row.path, manifest_roots(manifest))
                span = file_span(path, row.start, row.num_samples)
                assert rate == RATE and len(packed) == item.samples == row.num_samples
                assert np.abs(packed - span).max() < 1 / 2**14  # the span, to 16-bit precision
                seen += 1
    assert seen == sum(r.split == "train" for r in rows.values())
