"""Windows streamed from shards (seqcpc.audio.shards): every rank and worker reads its own shards, all the same
number of batches; a position restarts an epoch exactly; speaker batches, padded short clips and frame labels;
and training through the real `seqcpc pretrain`, killed mid-epoch and resumed bit for bit."""
import http.server
import itertools
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from audio_fixtures import toy_speech_corpus
from conftest import ROOT, TINY_ANY, cli, run_cli
from data_prep.shards import pack
from seqcpc.audio.manifest import read_phones
from seqcpc.audio.shards import ShardWindows, read_items
from seqcpc.errors import DataError
from seqcpc.extract import extract_split
from seqcpc.train.checkpoint import read_checkpoint

WINDOW, B = 2048, 4


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("shards")
    manifest = toy_speech_corpus(root / "corpus", speakers=6, heldout=2, utts=10, seconds=1.5)
    quiet = lambda message: None  # noqa: E731
    pack(root / "corpus", root / "shuffled", 0.15, "shuffled", 0, ["train", "test"], "skip", log=quiet)
    pack(root / "corpus", root / "speaker", 0.15, "speaker", 0, ["train", "test"], "skip", log=quiet)
    return manifest.parent, root / "shuffled", root / "speaker"


def windows(folder, **kw) -> ShardWindows:
    return ShardWindows(folder, kw.pop("split", "train"), WINDOW, 16000, kw.pop("batch_size", B), seed=3, **kw)


def epoch(ds, workers=0, world=1, rank=0, position=(0, 0)) -> list:
    ds.distribute(world, rank, workers)
    ds.set_position(*position)
    return list(DataLoader(ds, batch_size=None, num_workers=workers))


def same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(all(torch.equal(x, y) for x, y in zip(p, q)) for p, q in zip(a, b))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_position_restarts_an_epoch_at_the_batch_an_uninterrupted_epoch_would_give(corpus, workers):
    ds = windows(corpus[1])
    full = epoch(ds, workers, position=(1, 0))
    assert len(full) == len(ds) and len(full) > 4
    for done in (1, 3, len(full) - 1):
        assert same(epoch(windows(corpus[1]), workers, position=(1, done)), full[done:]), done
    assert not same(epoch(windows(corpus[1]), workers, position=(2, 0)), full)  # another epoch, another order


def test_ranks_and_workers_read_disjoint_shards_and_the_same_number_of_batches(corpus):
    ds = windows(corpus[1])
    ds.distribute(2, 0, 2)
    slots = [set(ds.slot_shards(s).tolist()) for s in range(4)]
    assert all(len(s) == ds.shards_per_slot > 0 for s in slots)
    assert len(set().union(*slots)) == 4 * ds.shards_per_slot  # no shard read twice in an epoch
    lengths = [len(epoch(windows(corpus[1]), 2, world=2, rank=r)) for r in (0, 1)]
    assert lengths[0] == lengths[1] == 2 * ds.shards_per_slot * ds.per_shard


def test_an_epoch_reads_every_utterance_of_its_shards_once(corpus):
    """One batch per shard (uniform, B = the smallest shard): the windows of an epoch are distinct clips."""
    ds = windows(corpus[1], batch_size=4)
    batches = epoch(ds)
    x = torch.cat([b[0] for b in batches]).flatten(1)  # (N, L)
    assert len(torch.unique(x, dim=0)) == len(x)


def test_speaker_batches_hold_one_speaker_and_need_speaker_ordered_shards(corpus):
    batches = epoch(windows(corpus[2], batching="speaker"))
    assert batches and all(len(set(b[1].tolist())) == 1 for b in batches)
    with pytest.raises(DataError, match="--order speaker"):
        windows(corpus[1], batching="speaker")


def test_utterance_batches_are_windows_of_one_clip(corpus):
    ds = windows(corpus[1], batching="utterance")
    x, group = epoch(ds)[0]
    assert len(set(group.tolist())) == 1 and len(torch.unique(x.flatten(1), dim=0)) == B


def test_short_clips_are_padded_or_give_their_place_and_labels_follow_the_window(corpus):
    long = 16000 * 2  # longer than every 1.5 s clip
    padded = epoch(ShardWindows(corpus[1], "test", long, 16000, B, min_clip=16000, frames=True, shuffle=False))
    x, group, length, labels = padded[0]
    assert x.shape == (B, 1, long) and (length == 24000).all() and (x[:, :, 24000:] == 0).all()
    assert labels.shape == (B, 200) and (labels[:, :150] >= 0).all() and (labels[:, 150:] == -1).all()
    phones = read_phones(corpus[0] / "phones.txt")
    first = read_items(corpus[1], "test/shard-000000.tar", 16000)
    assert any(np.array_equal(labels[j, :150].numpy(), phones[item.id][:150]) for j in range(B) for item in first)
    with pytest.raises(DataError, match="no window of the shard could be read"):
        epoch(ShardWindows(corpus[1], "test", long, 16000, B, shuffle=False))


def test_too_few_shards_for_the_ranks_and_workers_is_refused_with_the_fix(corpus):
    ds = windows(corpus[1], split="test")
    with pytest.raises(DataError, match="3 shards.*4 devices x 1 loader workers need at least 4.*--shard-mb"):
        ds.distribute(4, 0, 0)


EXACT = [*TINY_ANY, "data.batch_size=4", "objective.predictor.steps=4", "objective.loss.num_negatives=16",
         "train.deterministic=true", "optim.min_lr_ratio=1.0", "train.val_every=6", "train.log_every=3"]


def test_training_killed_mid_epoch_resumes_to_the_uninterrupted_weights_bit_for_bit(corpus, tmp_path, capsys):
    args = [*EXACT, "data.kind=shards", f"data.shards={corpus[1]}", "train.max_steps=24"]
    straight = tmp_path / "straight"
    run_cli("pretrain", *args, f"train.out_dir={straight}")
    out = tmp_path / "run"
    ckpt = out / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "seqcpc", "pretrain", *args, "train.ckpt_every=7",
                             f"train.out_dir={out}"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    stopped = read_checkpoint(ckpt)["step"]
    per_epoch = 10  # 11 shards of 4-5 clips: one batch of 4 from each of the first 10 in an epoch
    assert stopped % per_epoch, "the checkpoint to resume from should lie inside an epoch"
    code, _, err = cli(capsys, "pretrain", *args, "train.ckpt_every=7", f"train.out_dir={out}", "--resume")
    assert code == 0, err
    a, b = read_checkpoint(straight / "checkpoints" / "last.ckpt"), read_checkpoint(ckpt)
    assert b["step"] == 24
    for name, tensor in a["model"].items():
        assert torch.equal(b["model"][name], tensor), name


def test_shards_train_with_loader_workers_and_the_probes_read_the_packed_corpus(corpus, tmp_path):
    out = tmp_path / "run"
    proc = run_cli("pretrain", *EXACT, "data.kind=shards", f"data.shards={corpus[1]}", "data.num_workers=2",
                   "objective.online_phones=true", "train.max_steps=12", f"train.out_dir={out}")
    assert "10 shards of train" not in proc.stdout and "11 shards of train" in proc.stdout
    saved = (out / "config.yaml").read_text()
    assert f"manifest: {corpus[0] / 'manifest.tsv'}" in saved and "phones: shards" in saved
    rows = [line.split(",") for line in (out / "metrics.csv").read_text().splitlines()[1:]]
    assert any(r[1] == "val" for r in rows)
    assert list(itertools.islice((r for r in rows if r[1] == "train"), 1))
    written = extract_split(out / "checkpoints" / "last.ckpt", tmp_path / "feats", "val", ("z", "c"))
    z, groups = np.load(written["z"]), np.load(tmp_path / "feats" / "groups.npy")
    assert z.ndim == 3 and len(z) == len(groups) == 3 * B  # the test split's 3 shards, a batch each


def test_shards_stream_from_a_url_or_a_command_as_from_disk(corpus):
    """Object storage in miniature: the folder served over HTTP (WebDataset's gopen, through curl), or read by a
    command with {} for each file's path (as 'pipe:aws s3 cp s3://bucket/shards/{} -' would)."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(corpus[1]))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        local = epoch(windows(corpus[1]), position=(0, 2))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert same(epoch(windows(url), position=(0, 2)), local)
        assert same(epoch(windows(f"pipe:cat {corpus[1]}/{{}}"), position=(0, 2)), local)
    finally:
        server.shutdown()
    with pytest.raises(DataError, match="shard index .*missing.*could not be read"):
        windows(f"pipe:cat {corpus[1]}/missing/{{}}")


def test_a_truncated_shard_gives_its_windows_places_or_stops_the_run_naming_it(corpus, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(corpus[1], broken)
    tar = broken / "test" / "shard-000001.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size * 2 // 3])
    batches = epoch(windows(broken, split="test", shuffle=False))
    assert len(batches) == 3 and "shard-000001.tar" in capsys.readouterr().err
    with pytest.raises(DataError, match="shard-000001.tar"):
        epoch(windows(broken, split="test", shuffle=False, on_bad_file="stop"))


def test_several_windows_per_clip_multiply_an_epoch_and_differ(corpus):
    one, three = windows(corpus[1]), windows(corpus[1], per_clip=3)
    batches = epoch(three)
    assert len(batches) == 11 * (4 * 3 // B) > len(epoch(one))  # 11 shards of >= 4 clips, 3 windows each
    x = torch.cat([b[0] for b in batches]).flatten(1)
    assert len(torch.unique(x, dim=0)) == len(x)
    speakers = epoch(windows(corpus[2], batching="speaker", per_clip=2))
    assert all(len(set(b[1].tolist())) == 1 for b in speakers)
    assert len(epoch(windows(corpus[1], batching="uniform", per_clip=1))) == len(epoch(one))


def test_options_that_would_do_nothing_are_refused(corpus, capsys, tmp_path):
    code, _, err = cli(capsys, "pretrain", *EXACT, "data.windows_per_clip=2", f"train.out_dir={tmp_path}")
    assert code == 1 and "data.windows_per_clip=2 cuts several windows" in err
    code, _, err = cli(capsys, "pretrain", *EXACT, "data.kind=shards", f"train.out_dir={tmp_path}")
    assert code == 1 and "data.shards=FOLDER" in err
