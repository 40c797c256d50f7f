import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audio_fixtures import toy_speech_corpus
from seqcpc.builders import build_model
from seqcpc.config import resolve
from seqcpc.audio.manifest import read_manifest, write_manifest
import seqcpc.audio.eval as speech_eval
from seqcpc.audio.eval import run_speech_probes
from seqcpc.audio.features import CPCFrames, MFCCFrames, embed_windows, window_specs
from seqcpc.audio.probes import speaker_groups, speaker_windows
from seqcpc.errors import DataError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return toy_speech_corpus(tmp_path_factory.mktemp("toy"))


def small_cfg(manifest):
    return resolve({"model": {"size": "synthetic_tiny", "encoder": {"kernels": [10, 8, 4, 4], "strides": [5, 4, 4, 2]}},
                    "data": {"kind": "manifest", "manifest": str(manifest), "window": 8000},
                    "probe": {"episodes": 50, "windows_per_utterance": 2}})


def test_mfcc_frames_are_at_100_hz():
    frames = MFCCFrames(13, 16000, 160)(torch.randn(2, 16000))
    assert frames.shape == (2, 100, 13)


def test_c_and_z_extractors_of_one_model_share_its_forward_pass():
    model = build_model(small_cfg("unused.tsv"))
    calls = []
    embed = model.embed
    model.embed = lambda x: calls.append(x) or embed(x)
    c = CPCFrames(model)
    z = CPCFrames(model, "z", other=c)
    waves, other = torch.randn(2, 8000), torch.randn(2, 8000)
    want_z, want_c = embed(waves[:, None])
    assert torch.equal(c(waves), want_c) and torch.equal(z(waves), want_z) and len(calls) == 1
    assert torch.equal(z(other), embed(other[:, None])[0]) and len(calls) == 2  # new waves: a new forward pass
    assert torch.equal(c(waves), want_c) and len(calls) == 3


def test_window_specs_cap_windows_and_utterances(corpus):
    specs = window_specs(corpus, "train", 8000, 16000, per_utterance=2, per_speaker=3)
    assert len(specs) == 6 * 3 * 2
    assert all(0 <= start <= 24000 - 8000 for _, start, _ in specs)


def test_window_features_pool_mean_std_and_last_frame(corpus):
    specs = window_specs(corpus, "train", 8000, 16000, per_utterance=1, per_speaker=1)[:3]
    frames = torch.randn(3, 5, 2)
    emb = embed_windows({"fixed": lambda waves: frames[:len(waves)]}, specs, 8000, 16000)["fixed"]
    np.testing.assert_allclose(emb.pooled, frames.mean(1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(emb.last, frames[:, -1].numpy())
    np.testing.assert_allclose(emb.stats()[:, 2:], frames.std(1, correction=0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(emb.stats()[:, :2], emb.pooled)


def test_probes_beat_chance_and_write_a_report(corpus, tmp_path):
    cfg = small_cfg(corpus)
    torch.manual_seed(0)
    model = build_model(cfg)  # an untrained network: its random features already carry pitch
    out = run_speech_probes(cfg, model, tmp_path, log=lambda *_: None)
    res = out["results"]
    assert set(res) == {"cpc", "cpc_z", "random_init", "mfcc13"}
    for name in res:
        assert res[name]["speaker"] > 2 / 6, name  # chance 1/6
        assert res[name]["speaker_knn"] > 2 / 6, name
        assert res[name]["speaker_stats"] > 2 / 6, name
        assert res[name]["phone"] > 2 / 4, name  # chance ~1/4
        assert 0 < res[name]["unit_pnmi"] <= 1 and res[name]["unit_purity"] > 1 / 4, name
    assert res["cpc"]["5way_5shot"] > 1 / 5 + res["cpc"]["5way_5shot_ci95"]
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["counts"]["speakers"] == 6 and saved["counts"]["heldout_windows"] == 5 * 6 * 2
    for name in ("results.md", "probe_accuracy.png", "speaker_confusion.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_speakers_with_too_few_utterances_are_left_out_with_a_message(tmp_path):
    manifest = toy_speech_corpus(tmp_path, speakers=6, heldout=5, utts=6, seconds=1.5)
    rows = [r for r in read_manifest(manifest)
            if not (r.speaker == "s0" and r.split == "train")  # s0: test utterances only
            and not (r.speaker == "s6" and r.id != "s6_u0")]  # s6: one held-out utterance, too few for 5-shot
    write_manifest(manifest, rows)
    cfg = small_cfg(manifest)
    logs = []
    out = run_speech_probes(cfg, build_model(cfg), tmp_path / "out", log=logs.append)
    assert out["counts"]["speakers"] == 5
    assert any("1 speakers have test but no training utterances" in line for line in logs)
    # only 4 held-out speakers keep enough windows (k + 5 queries) for 5-way episodes: few-shot is skipped
    assert any("few-shot 1-shot skipped" in line for line in logs) and "5way_1shot" not in out["results"]["cpc"]


def test_a_corpus_of_one_speaker_is_refused_not_scored_100_percent(tmp_path):
    manifest = toy_speech_corpus(tmp_path, speakers=2, heldout=0, utts=6, seconds=1.5)
    write_manifest(manifest, [r for r in read_manifest(manifest) if r.speaker == "s0"])
    cfg = small_cfg(manifest)
    with pytest.raises(DataError, match="at least two speakers"):
        run_speech_probes(cfg, build_model(cfg), tmp_path / "out", log=lambda *_: None)


def test_a_corpus_of_symlinks_is_read_through_its_links_in_prep_training_and_probes(tmp_path):
    """One policy everywhere: paths are kept as the user laid them out (links are not resolved), so files that
    are links into another folder are inside the corpus for data_prep, the training windows and the probes."""
    from data_prep import folder
    from seqcpc.audio.windows import WindowDataset

    real = toy_speech_corpus(tmp_path / "real", speakers=3, heldout=0, utts=6, seconds=1.5).parent
    links = tmp_path / "links"
    for row in read_manifest(real / "manifest.tsv"):
        link = links / row.speaker / Path(row.path).name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(real / row.path)
    manifest = folder.main(["--root", str(links), "--out", str(tmp_path / "prep"), "--test-fraction", "0.3"]).manifest
    assert all(str(links) in r.path and "real" not in r.path for r in read_manifest(manifest))
    WindowDataset(manifest, ["train"], window=8000, sample_rate=16000)  # no "outside the corpus" refusal
    cfg = small_cfg(manifest)
    out = run_speech_probes(cfg, build_model(cfg), tmp_path / "out", log=lambda *_: None)
    assert out["counts"]["speakers"] == 3


def test_the_probes_honour_the_outside_paths_override_their_error_recommends(tmp_path):
    manifest = toy_speech_corpus(tmp_path / "c", speakers=3, heldout=0, utts=6, seconds=1.5)
    rows = list(read_manifest(manifest))
    elsewhere = tmp_path / "elsewhere" / "moved.flac"
    elsewhere.parent.mkdir()
    (manifest.parent / rows[0].path).rename(elsewhere)
    rows[0].path = str(elsewhere)
    write_manifest(manifest, rows)
    cfg = small_cfg(manifest)
    with pytest.raises(DataError, match="data.allow_outside_paths=true"):
        run_speech_probes(cfg, build_model(cfg), tmp_path / "out", log=lambda *_: None)
    cfg.data.allow_outside_paths = True
    assert run_speech_probes(cfg, build_model(cfg), tmp_path / "out", log=lambda *_: None)["counts"]["speakers"] == 3


def test_speaker_groups_halve_the_tested_speakers_by_train_utterances_ties_by_name(tmp_path):
    manifest = tmp_path / "manifest.tsv"
    assert speaker_groups(manifest, {"a", "b"}) == {}  # a balanced corpus has no speaker_counts.json
    (tmp_path / "speaker_counts.json").write_text(json.dumps({"d": 1, "c": 10, "b": 3, "a": 10, "e": 5, "x": 4,
                                                              "y": 4}))
    assert speaker_groups(manifest, {"a", "b", "c", "d", "e"}) == {"head": ["a", "c", "e"], "tail": ["b", "d"]}
    assert speaker_groups(manifest, {"x", "y"}) == {"head": ["x"], "tail": ["y"]}
    with pytest.raises(DataError, match="another corpus"):
        speaker_groups(manifest, {"a", "zed"})


def test_a_long_tailed_corpus_reports_its_head_and_tail_speakers(tmp_path):
    manifest = toy_speech_corpus(tmp_path / "c", speakers=4, heldout=0, utts=6, seconds=1.5)
    counts_path = manifest.parent / "speaker_counts.json"
    counts_path.write_text(json.dumps({"s0": 2, "s1": 8, "s2": 2, "s3": 5}))
    cfg = small_cfg(manifest)
    out = run_speech_probes(cfg, build_model(cfg), tmp_path / "out", log=lambda *_: None)
    assert out["counts"]["head_speakers"] == 2 and out["counts"]["tail_speakers"] == 2
    for r in out["results"].values():  # every speaker has as many test windows: the halves average to the whole
        assert r["speaker"] == pytest.approx((r["speaker_head"] + r["speaker_tail"]) / 2)
    report = (tmp_path / "out" / "results.md").read_text()
    assert "speaker_head" in report and "speaker_tail" in report
    assert json.loads((tmp_path / "out" / "results.json").read_text())["results"]["cpc"]["speaker_tail"] >= 0

    counts_path.write_text(json.dumps({"s0": 2, "s1": 8}))  # another corpus's counts
    with pytest.raises(DataError, match="no count for speakers"):
        run_speech_probes(cfg, build_model(cfg), tmp_path / "out", log=lambda *_: None)


def test_a_new_probe_is_one_function_and_one_line_in_the_list(corpus, tmp_path, monkeypatch):
    """A probe reads the shared context and returns its rows; listed once, its column reaches results.json and the
    table of results.md beside the others, and the windows it reads are embedded once for all the probes."""
    def speaker_centroid_probe(ctx):
        """speaker_centroid: the nearest speaker mean of the averaged training windows."""
        w, rows = speaker_windows(ctx), {}
        for name in ctx.data.extractors:
            train, test = w.features["train"][name].pooled, w.features["test"][name].pooled  # (N, D)
            means = np.stack([train[w.y["train"] == c].mean(0) for c in range(len(w.speakers))])  # (C, D)
            pred = ((test[:, None] - means[None]) ** 2).sum(-1).argmin(1)
            rows[name] = {"speaker_centroid": float((pred == w.y["test"]).mean())}
        return {"results": rows}

    monkeypatch.setattr(speech_eval, "SPEECH_PROBES", [*speech_eval.SPEECH_PROBES, speaker_centroid_probe])
    cfg = small_cfg(corpus)
    cfg.probe.units = cfg.probe.knn = 0  # fewer columns, the same loop
    logs = []
    run_speech_probes(cfg, build_model(cfg), tmp_path, log=logs.append)
    saved = json.loads((tmp_path / "results.json").read_text())["results"]
    assert all(list(row)[-1] == "speaker_centroid" and 0 <= row["speaker_centroid"] <= 1 for row in saved.values())
    assert saved["mfcc13"]["speaker_centroid"] > 2 / 6  # chance 1/6
    header = next(line for line in (tmp_path / "results.md").read_text().splitlines() if line.startswith("| features"))
    assert header.endswith("| 5way_5shot | speaker_centroid |")
    assert logs.count("speaker probe: embedding windows") == 1 and "[probe 9/9] speaker_centroid_probe" in logs
