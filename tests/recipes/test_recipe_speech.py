"""recipes/speech/run.py end to end on a tiny eSpeak corpus: every step, then every step skipped."""
import json

import yaml

from conftest import run_recipe
from data_prep import abx_items, espeak_corpus

TINY = {
    "prepare": {"script": "espeak_corpus", "options": {"speakers": 6, "heldout_speakers": 5, "utterances": 8,
                                                      "workers": 2}},
    "model": {"size": "audio_paper", "encoder": {"dim": 32}, "context": {"dim": 32}},
    "objective": {"predictor": {"steps": 4}, "loss": {"num_negatives": 16}},
    "data": {"kind": "manifest", "window": 8000, "batch_size": 8},
    "optim": {"lr": 2e-3, "warmup_steps": 5},
    "train": {"max_steps": 60, "log_every": 10, "val_every": 60, "val_batches": 2, "ckpt_every": 60},
    "probe": {"episodes": 100, "phone_frames": 5000, "units": 8, "ceiling_steps": 30},
}
PROBES = ("speaker", "speaker_last", "phone", "5way_1shot", "5way_5shot")  # accuracies, chance well below 0.5


def test_speech_recipe_runs_end_to_end_then_skips_what_is_done(tmp_path):
    cfg = {**TINY, "prepare": {**TINY["prepare"], "options": {**TINY["prepare"]["options"], "out": str(tmp_path / "c")}},
           "data": {**TINY["data"], "manifest": str(tmp_path / "c" / "manifest.tsv")},
           # the first 60 steps of a 120-step schedule, kept (as the learning curves' points are): the supervised
           # ceiling takes neither, and the run counts as done at its stop
           "train": {**TINY["train"], "out_dir": str(tmp_path / "run"), "max_steps": 120, "stop_at": 60,
                     "keep_steps": [60]}}
    # the corpus first, to score ABX on items of its train split: 2 test utterances a speaker give no triplet
    espeak_corpus.main([f"--{k.replace('_', '-')}={v}" for k, v in cfg["prepare"]["options"].items()])
    items = tmp_path / "c" / "abx_train.item"
    abx_items.main(["--manifest", cfg["data"]["manifest"], "--split", "train", "--out", str(items)])
    cfg["probe"] = {**cfg["probe"], "abx_items": str(items)}
    config = tmp_path / "tiny.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = run_recipe("speech", config)
    assert "== data" in out and "== pretraining" in out and "== probes" in out
    results = json.loads((tmp_path / "run" / "probes" / "results.json").read_text())["results"]
    assert set(results) == {"cpc", "cpc_z", "random_init", "mfcc13", "supervised"}
    chance = 1 / 6
    assert results["mfcc13"]["speaker"] > chance and results["mfcc13"]["phone"] > 1 / 40
    assert results["mfcc13"]["speaker_knn"] > chance
    for row in results.values():
        assert {"5way_5shot", "unit_purity", "unit_pnmi", "abx_within", "abx_across"} <= set(row)
        assert 0 <= row["unit_pnmi"] <= 1 and 0 <= row["abx_within"] <= 1
    # MFCC tells phones apart far better than chance (an ABX error of 0.5)
    assert results["mfcc13"]["abx_within"] < 0.4 and results["mfcc13"]["abx_across"] < 0.45
    # 60 steps of pretraining already make better features than the same network's random weights (measured:
    # speaker 0.96 against 0.67, mean of the five probes 0.50 against 0.37)
    assert results["cpc"]["speaker"] > results["random_init"]["speaker"]
    mean = {name: sum(r[k] for k in PROBES) / len(PROBES) for name, r in results.items()}
    assert mean["cpc"] > mean["random_init"] + 0.05, mean
    # 30 steps of the supervised ceiling's own task already name the 6 speakers better than chance
    assert results["supervised"]["speaker"] > 2 * chance
    assert (tmp_path / "run" / "ceiling" / "summary.json").is_file()
    assert (tmp_path / "run" / "checkpoints" / "step-60.ckpt").is_file()
    for name in ("curves.png", "probes/probe_accuracy.png", "probes/speaker_confusion.png", "probes/results.md"):
        assert (tmp_path / "run" / name).is_file(), name

    again = run_recipe("speech", config)
    assert "nothing to do" in again and "pretraining: done before" in again and "probes: done before" in again
