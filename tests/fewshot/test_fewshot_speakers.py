"""Few-shot speaker identification: a learner on the audio encoder + context, trained on the corpus's
training speakers and scored on its held-out ones."""
import json

from audio_fixtures import toy_speech_corpus
from conftest import cli
from seqcpc.config import load_config
from seqcpc.train.loop import pretrain


def test_a_speaker_learner_trains_and_is_scored_on_held_out_speakers(tmp_path, capsys):
    manifest = toy_speech_corpus(tmp_path / "corpus", speakers=6, heldout=5, utts=10, seconds=0.6)
    out = tmp_path / "run"
    cfg = load_config(None, [
        "model.size=synthetic_tiny", "objective.name=protonet", "objective.n_way=3", "objective.k_shot=1",
        "objective.n_query=1", "objective.episodes_per_epoch=10", "data.kind=manifest", f"data.manifest={manifest}",
        "data.window=4000", "optim.lr=2e-3", "optim.warmup_steps=2", f"train.out_dir={out}", "train.max_steps=20",
        "train.log_every=5", "train.val_every=20", "train.val_batches=5", "probe.ways=[5]", "probe.shots=[1,3]",
        "probe.n_query=3", "probe.episodes=50", "probe.windows_per_utterance=1"])
    summary = pretrain(cfg)
    assert summary["step"] == 20 and summary["val_metrics"]["acc"] > 1 / 3  # the test utterances of 6 speakers
    code, _, err = cli(capsys, "probe", "--checkpoint", out / "checkpoints" / "last.ckpt", "--out", tmp_path / "p")
    assert code == 0, err
    rows = json.loads((tmp_path / "p" / "results.json").read_text())
    assert rows["protonet"]["5way_3shot"]["mean"] > 0.2 + 0.15  # 5 held-out speakers with distinct pitch
    code, _, err = cli(capsys, "probe", "--episodic", "--checkpoint", out / "checkpoints" / "last.ckpt",
                       "--out", tmp_path / "p2", "objective.name=cpc")
    assert code != 0 and "cannot be overridden" in err  # the network is the checkpoint's
