"""Discrete units: the mini-batch k-means never leaves a cluster empty, recovers separated blobs, and its units
are scored (purity, PNMI) and exported in phones.txt's format; `seqcpc units` on a tiny model and corpus."""
import json

import numpy as np
import pytest
import torch
from lightning_fabric import Fabric

from audio_fixtures import toy_speech_corpus
from conftest import cli
from seqcpc.audio.features import MFCCFrames
from seqcpc.audio.io import read_audio
from seqcpc.audio.manifest import read_manifest, read_phones
from seqcpc.builders import build_model
from seqcpc.config import resolve, to_dict
from seqcpc.errors import DataError
from seqcpc.eval.kmeans import assign, fit_kmeans
from seqcpc.audio.units import unit_scores, write_units
from seqcpc.eval.units import joint_counts, unit_metrics
from seqcpc.train.checkpoint import save_checkpoint


def blobs(n=600, centres=5, dim=8, spread=0.1, seed=0):
    """(x (n, dim), y (n,)): points around `centres` far-apart centres."""
    g = torch.Generator().manual_seed(seed)
    means = 10 * torch.randn(centres, dim, generator=g)
    y = torch.arange(n) % centres
    return (means[y] + spread * torch.randn(n, dim, generator=g)).numpy(), y.numpy()


def scores(x, y, centroids):
    return unit_metrics(joint_counts(y, assign(x, centroids)))


def test_kmeans_recovers_separated_blobs_deterministically_from_arrays_and_chunks():
    x, y = blobs()
    km = fit_kmeans(x, 5, batch_size=128)
    assert scores(x, y, km.centroids) == pytest.approx({"phone_purity": 1, "cluster_purity": 1, "pnmi": 1})
    assert torch.equal(km.centroids, fit_kmeans(x, 5, batch_size=128).centroids)
    assert km.inertia == pytest.approx(8 * 0.1 ** 2, rel=0.2)  # D * spread^2: each centroid at its blob's mean
    chunked = fit_kmeans([x[:250], x[250:400], x[400:]], 5, batch_size=128)
    assert scores(x, y, chunked.centroids)["phone_purity"] == 1
    with pytest.raises(TypeError, match="re-iterable"):
        fit_kmeans((chunk for chunk in [x[:300], x[300:]]), 5)


def test_no_cluster_is_left_empty_when_k_exceeds_the_natural_clusters():
    x, _ = blobs(centres=3)
    km = fit_kmeans(x, 16, batch_size=100)
    assert (km.counts >= 1).all() and km.counts.sum() == len(x)
    assert (np.bincount(assign(x, km.centroids), minlength=16) == km.counts).all()


def test_a_collapsed_start_is_re_seeded_into_non_empty_clusters():
    x, y = blobs(centres=4)
    logs = []
    km = fit_kmeans(x, 6, init=torch.full((6, 8), 100.0), batch_size=100, log=logs.append)
    assert any("re-seeded 5 of 6" in line for line in logs)  # every frame went to the first of 6 equal centroids
    assert (np.bincount(assign(x, km.centroids), minlength=6) >= 1).all()
    assert scores(x, y, km.centroids)["phone_purity"] == 1  # 6 units over 4 blobs: split blobs, none shared
    # one pass has no check after it: the final assignment's repair alone fills the 5 empty clusters
    once = fit_kmeans(x, 6, init=torch.full((6, 8), 100.0), passes=1, batch_size=100)
    assert (once.counts >= 1).all() and (np.bincount(assign(x, once.centroids), minlength=6) == once.counts).all()


def test_duplicated_frames_still_fill_every_cluster_or_are_refused_when_too_few_distinct():
    g = torch.Generator().manual_seed(1)
    silence = torch.cat([torch.zeros(1000, 4), torch.randn(40, 4, generator=g)])  # mostly one repeated frame
    km = fit_kmeans(silence, 20, batch_size=256)
    assert (np.bincount(assign(silence, km.centroids), minlength=20) >= 1).all()
    three = torch.eye(4)[torch.arange(300) % 3]  # 3 distinct frames
    with pytest.raises(DataError, match="fewer distinct frames"):
        fit_kmeans(three, 5)
    with pytest.raises(DataError, match="at least 5 frames"):
        fit_kmeans(three[:4], 5)


def test_purity_and_pnmi_by_hand():
    m = unit_metrics(joint_counts([0, 0, 1, 1, 1, 2], [0, 0, 0, 1, 1, 1]))
    # unit 0 holds phones 0,0,1 and unit 1 phones 1,1,2: 2 + 2 frames carry their unit's majority phone
    assert m["phone_purity"] == pytest.approx(4 / 6)
    # phone 0 -> units 0,0; phone 1 -> 0,1,1; phone 2 -> 1: 2 + 2 + 1 frames carry their phone's majority unit
    assert m["cluster_purity"] == pytest.approx(5 / 6)
    h_phone = -(2 / 6 * np.log(2 / 6) + 3 / 6 * np.log(3 / 6) + 1 / 6 * np.log(1 / 6))
    h_phone_given_unit = -2 * (2 / 3 * np.log(2 / 3) + 1 / 3 * np.log(1 / 3)) / 2
    assert m["pnmi"] == pytest.approx((h_phone - h_phone_given_unit) / h_phone)
    # units that split phones without mixing them determine the phone: PNMI 1, cluster purity not
    split = unit_metrics(joint_counts([0, 0, 1, 1], [0, 0, 1, 2]))
    assert split["pnmi"] == pytest.approx(1) and split["phone_purity"] == 1 and split["cluster_purity"] == 0.75
    with pytest.raises(DataError, match="at least two phones"):
        unit_metrics(joint_counts([3, 3, 3], [0, 1, 2]))


def test_pnmi_is_one_for_a_bijection_and_near_zero_for_independent_labels():
    rng = np.random.default_rng(0)
    phones = rng.integers(10, size=50_000)
    assert unit_metrics(joint_counts(phones, rng.permutation(10)[phones]))["pnmi"] == pytest.approx(1)
    independent = unit_metrics(joint_counts(phones, rng.integers(20, size=50_000)))
    assert 0 <= independent["pnmi"] < 0.01
    assert independent["phone_purity"] == pytest.approx(0.1, abs=0.02)  # the majority phone of each unit: chance
    with pytest.raises(ValueError, match="outside"):
        joint_counts([0, 1], [0, 5], num_units=3)


def test_units_round_trip_through_read_phones(tmp_path):
    units = {"a": np.array([3, 3, 0, 49]), "b": np.array([], dtype=np.int64), "c": np.array([7])}
    write_units(tmp_path / "units.txt", units)
    back = read_phones(tmp_path / "units.txt")
    assert list(back) == ["a", "b", "c"] and all((back[k] == v).all() for k, v in units.items())
    assert (tmp_path / "units.txt").read_text().splitlines()[0] == "a 3 3 0 49"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return toy_speech_corpus(tmp_path_factory.mktemp("toy"), speakers=3, heldout=0, utts=4, seconds=1.0)


def test_unit_scores_of_mfcc_frames_beat_a_single_unit(corpus):
    labels = read_phones(corpus.parent / "phones.txt")
    res = unit_scores({"mfcc13": MFCCFrames(13, 16000, 160)}, corpus, labels, 16000, k=8, max_frames=2000)
    test = np.concatenate([labels[r.id] for r in read_manifest(corpus, ["test"])])
    majority = np.bincount(test).max() / len(test)  # the purity of one unit holding every frame
    assert set(res) == {"mfcc13"} and set(res["mfcc13"]) == {"unit_purity", "unit_pnmi"}
    assert res["mfcc13"]["unit_purity"] > majority + 0.2 and res["mfcc13"]["unit_pnmi"] > 0.2  # 4 pitched 'phones'


@pytest.fixture(scope="module")
def checkpoint(corpus, tmp_path_factory):
    cfg = resolve({"model": {"size": "synthetic_tiny", "encoder": {"kernels": [10, 8, 4, 4], "strides": [5, 4, 4, 2]}},
                   "data": {"kind": "manifest", "manifest": str(corpus), "window": 8000}})
    model = build_model(cfg)  # untrained: its frames still follow the pitch of each 'phone'
    path = tmp_path_factory.mktemp("run") / "last.ckpt"
    save_checkpoint(Fabric(accelerator="cpu", devices=1), path, {"model": model, "step": 0, "config": to_dict(cfg)})
    return path, model.eval()


def test_the_units_command_writes_units_centroids_and_scores(corpus, checkpoint, tmp_path, capsys):
    path, model = checkpoint
    code, _, err = cli(capsys, "units", "--checkpoint", path, "--manifest", corpus, "--out", tmp_path, "--k", 6,
                       "--max-frames", 500)
    assert code == 0, err
    test_ids = [r.id for r in read_manifest(corpus, ["test"])]
    units = read_phones(tmp_path / "units.txt")
    centroids = np.load(tmp_path / "centroids.npy")
    assert list(units) == test_ids and centroids.shape[0] == 6
    row = next(read_manifest(corpus, ["test"]))
    with torch.no_grad():
        _, c = model.embed(torch.from_numpy(read_audio(corpus.parent / row.path, sample_rate=16000))[None, None])
    assert (units[row.id] == assign(c[0].numpy(), centroids)).all()  # each frame's nearest centroid
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["counts"]["utterances"] == len(test_ids) and saved["counts"]["fit_frames"] == 500
    assert 0.4 < saved["results"]["phone_purity"] <= 1 and 0 < saved["results"]["pnmi"] <= 1
    assert "PNMI" in (tmp_path / "results.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["centroids.npy", "results.json", "results.md", "units.txt"]


def test_the_units_command_without_phones_or_utterances(corpus, checkpoint, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "manifest.tsv").write_text(corpus.read_text())
    for speaker in ("s0", "s1", "s2"):
        (bare / speaker).symlink_to(corpus.parent / speaker)
    code, _, err = cli(capsys, "units", "--checkpoint", checkpoint[0], "--manifest", bare / "manifest.tsv",
                       "--out", tmp_path / "out", "--k", 4, "--features", "z")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["centroids.npy", "units.txt"]
    code, _, err = cli(capsys, "units", "--checkpoint", checkpoint[0], "--manifest", corpus, "--out",
                       tmp_path / "none", "--split", "heldout")
    assert code == 1 and "no utterance in split 'heldout'" in err
