"""Mistakes a new user makes, injected through the real entry points (`seqcpc ...` in process, data_prep
scripts' `main`): each ends in one clear line or in numbers that do not mislead, and loses nothing."""
import json

import numpy as np
import pytest

from audio_fixtures import toy_speech_corpus, write
from conftest import cli
from data_prep import folder
from seqcpc.audio.manifest import read_manifest, write_manifest

SPEECH = ["data.kind=manifest", "model.size=audio_paper", "model.encoder.dim=16", "model.context.dim=16",
          "objective.predictor.steps=4", "objective.loss.num_negatives=16", "data.window=8000", "data.batch_size=4",
          "train.val_batches=2", "train.log_every=2", "probe.episodes=20", "probe.phone_frames=2000"]


@pytest.mark.parametrize("text", ["model:\n\tsize: audio_paper\n", "", "optim: {lr: 1.0e-3}\noptim: {lr: 1.0e-2}\n",
                                  "model: [unclosed\n"])
def test_a_malformed_config_file_is_one_line(tmp_path, capsys, text):
    (tmp_path / "c.yaml").write_text(text)
    code, _, err = cli(capsys, "pretrain", "--config", tmp_path / "c.yaml", f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and str(tmp_path / "c.yaml") in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_a_corpus_of_silence_trains_to_chance_and_reports_no_hits(tmp_path, capsys):
    """Silent audio carries no information: every candidate scores the same. Accuracy must say so (ties are
    misses), not report the positive, listed first, as always found."""
    manifest = toy_speech_corpus(tmp_path / "c", speakers=2, heldout=0, utts=4, seconds=1.0)
    for row in read_manifest(manifest):
        write(manifest.parent / row.path, np.zeros(16000), 16000)
    code, _, err = cli(capsys, "pretrain", *SPEECH, f"data.manifest={manifest}", "train.max_steps=4",
                       "train.val_every=4", "model.encoder.norm=layer", f"train.out_dir={tmp_path / 'run'}")
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["val_metrics"]["acc"] == 0.0 and summary["val_loss"] == pytest.approx(summary["chance_loss"], rel=0.05)


def test_a_probe_on_a_single_speaker_is_refused_not_scored_100_percent(tmp_path, capsys):
    manifest = toy_speech_corpus(tmp_path / "c", speakers=2, heldout=0, utts=6, seconds=1.0)
    run = tmp_path / "run"
    assert cli(capsys, "pretrain", *SPEECH, f"data.manifest={manifest}", "train.max_steps=2", "train.val_every=2",
               f"train.out_dir={run}")[0] == 0
    write_manifest(manifest, [r for r in read_manifest(manifest) if r.speaker == "s0"])
    code, _, err = cli(capsys, "probe", "--checkpoint", run / "checkpoints" / "last.ckpt", "--out", tmp_path / "p")
    assert code == 1 and "at least two speakers" in err and "Traceback" not in err


def test_a_corpus_of_links_is_prepared_trained_on_and_probed_through_its_links(tmp_path, capsys):
    real = toy_speech_corpus(tmp_path / "real", speakers=3, heldout=0, utts=6, seconds=1.0).parent
    links = tmp_path / "links"
    for row in read_manifest(real / "manifest.tsv"):
        (links / row.speaker).mkdir(parents=True, exist_ok=True)
        (links / row.speaker / row.path.split("/")[-1]).symlink_to(real / row.path)
    manifest = folder.main(["--root", str(links), "--out", str(tmp_path / "prep"), "--test-fraction", "0.3"]).manifest
    run = tmp_path / "run"
    code, _, err = cli(capsys, "pretrain", *SPEECH, f"data.manifest={manifest}", "train.max_steps=2",
                       "train.val_every=2", f"train.out_dir={run}")
    assert code == 0, err
    code, _, err = cli(capsys, "probe", "--checkpoint", run / "checkpoints" / "last.ckpt", "--out", tmp_path / "p")
    assert code == 0, err
    assert json.loads((tmp_path / "p" / "results.json").read_text())["counts"]["speakers"] == 3


def test_home_and_variables_in_paths_are_expanded_by_the_command(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SEQCPC_RUNS", str(tmp_path / "runs"))
    tiny = ["model.size=synthetic_tiny", "data.window=2048", "data.num_sequences=64", "data.val_sequences=16",
            "train.max_steps=2", "train.val_every=2", "train.log_every=1"]
    assert cli(capsys, "pretrain", *tiny, "train.out_dir=~/run")[0] == 0
    assert (tmp_path / "home" / "run" / "checkpoints" / "last.ckpt").is_file() and not (tmp_path / "~").exists()
    assert cli(capsys, "pretrain", *tiny, "train.out_dir=$SEQCPC_RUNS/a")[0] == 0
    assert (tmp_path / "runs" / "a" / "summary.json").is_file()
    monkeypatch.delenv("SEQCPC_RUNS")
    code, _, err = cli(capsys, "pretrain", *tiny, "train.out_dir=$SEQCPC_RUNS/b")
    assert code == 1 and "environment variable in it is not set" in err


@pytest.mark.parametrize("damage", ["deleted", "a folder"])
def test_a_missing_audio_file_or_a_folder_in_its_place_is_named_as_such(tmp_path, capsys, damage):
    """libsndfile says "System error." for both: the message names the file and what is wrong with it."""
    manifest = toy_speech_corpus(tmp_path / "c", speakers=2, heldout=0, utts=4, seconds=1.0)
    audio = manifest.parent / "s0" / "s0_u3.flac"
    audio.unlink()
    if damage == "a folder":
        audio.mkdir()
    code, _, err = cli(capsys, "pretrain", *SPEECH, f"data.manifest={manifest}", "data.on_bad_file=stop",
                       f"train.out_dir={tmp_path / 'run'}")
    expected = f"audio file {audio} does not exist" if damage == "deleted" else f"{audio} is a folder, not an audio file"
    assert code == 1 and expected in err and "System error" not in err


def test_a_folder_given_for_a_manifest_is_named_as_a_folder(tmp_path, capsys):
    manifest = toy_speech_corpus(tmp_path / "c", speakers=2, heldout=0, utts=4, seconds=1.0)
    code, _, err = cli(capsys, "pretrain", *SPEECH, f"data.manifest={manifest.parent}", f"train.out_dir={tmp_path / 'r'}")
    assert code == 1 and f"manifest {manifest.parent} is a folder, not a file" in err
