import re

import numpy as np
import pytest
import torch
from lightning_fabric import Fabric

from seqcpc import modalities
from seqcpc.builders import build_model
from seqcpc.config import load_config, to_dict
from seqcpc.errors import CheckpointError, DataError
from seqcpc.train.checkpoint import load_model, save_checkpoint

from conftest import ROOT, TINY, cli, run_cli


@pytest.fixture
def saved(tmp_path):
    cfg = load_config(None, TINY)
    model = build_model(cfg)
    with torch.no_grad():  # make the weights differ from a fresh build's
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    fabric = Fabric(accelerator="cpu", devices=1)
    path = tmp_path / "last.ckpt"
    save_checkpoint(fabric, path, {"model": model, "step": 3, "config": to_dict(cfg)})
    return cfg, model.eval(), path


def test_load_model_rebuilds_identical_embeddings(saved):
    cfg, model, path = saved
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]  # no temporary file left behind
    loaded = load_model(path)
    x = torch.randn(2, 1, cfg.data.window)
    for a, b in zip(model.embed(x), loaded.embed(x)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_extract_writes_the_embeddings_of_the_split(saved, tmp_path):
    cfg, model, path = saved
    run_cli("extract", "--checkpoint", path, "--out", tmp_path / "feats", "--split", "val")
    z, c, groups = (np.load(tmp_path / "feats" / f"{n}.npy") for n in ("z", "c", "groups"))
    _, val = modalities.get("audio").datasets(cfg.data, cfg.train.seed)
    assert z.shape[0] == c.shape[0] == groups.shape[0] == len(val)
    x, g = val[5]
    z5, c5 = model.embed(x[None])
    np.testing.assert_allclose(z[5], z5[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c[5], c5[0].numpy(), rtol=1e-5, atol=1e-6)
    assert groups[5] == g


def test_extract_from_a_folder_of_npy_sequences(saved, tmp_path):
    cfg, model, path = saved
    (tmp_path / "seqs").mkdir()
    x = np.random.randn(3000).astype(np.float32)
    np.save(tmp_path / "seqs" / "a.npy", x)
    run_cli("extract", "--checkpoint", path, "--out", tmp_path / "f", "--npy-dir", tmp_path / "seqs",
            "--features", "c")
    c = np.load(tmp_path / "f" / "a.c.npy")
    np.testing.assert_allclose(c, model.embed(torch.from_numpy(x)[None, None])[1][0].numpy(), rtol=1e-5, atol=1e-6)
    assert not (tmp_path / "f" / "a.z.npy").exists()


@pytest.mark.parametrize("content, message", [
    (np.zeros((2, 3, 100), np.float32), r"expected a sequence of shape \(L,\) or \(1, L\)"),
    (np.array(["a", "b"]), "expected numbers"),
    (b"not an array", "not a plain .npy array"),
])
def test_extract_refuses_npy_inputs_it_cannot_read_with_the_files_name(saved, tmp_path, capsys, content, message):
    _, _, path = saved
    (tmp_path / "seqs").mkdir()
    if isinstance(content, bytes):
        (tmp_path / "seqs" / "bad.npy").write_bytes(content)
    else:
        np.save(tmp_path / "seqs" / "bad.npy", content)
    code, _, err = cli(capsys, "extract", "--checkpoint", path, "--out", tmp_path / "f", "--npy-dir", tmp_path / "seqs")
    assert code == 1 and "bad.npy" in err and re.search(message, err) and "Traceback" not in err


def test_extract_on_a_gpu_that_is_not_there_is_one_clear_error(saved, tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    code, _, err = cli(capsys, "extract", "--checkpoint", saved[2], "--out", tmp_path / "f", "--device", "cuda")
    assert code == 1 and "torch sees no GPU" in err


def test_extract_to_a_path_under_a_file_is_one_clear_error(saved, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, _, err = cli(capsys, "extract", "--checkpoint", saved[2], "--out", tmp_path / "file" / "feats")
    assert code == 1 and "file" in err and "Traceback" not in err


class Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('code ran')",))


def test_a_pickled_payload_in_a_checkpoint_does_not_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.ckpt"
    torch.save({"model": {}, "config": {}, "payload": Exploit()}, path)
    with pytest.raises(CheckpointError, match="could not be read"):
        load_model(path)
    assert not (tmp_path / "PWNED").exists()


def test_missing_checkpoint_is_named(tmp_path):
    with pytest.raises(DataError, match="checkpoint .*nope.ckpt does not exist"):
        load_model(tmp_path / "nope.ckpt")


def test_an_image_checkpoint_given_sequences_is_one_clear_error(tmp_path, capsys):
    (tmp_path / "seqs").mkdir()
    np.save(tmp_path / "seqs" / "a.npy", np.zeros(3000, np.float32))
    image_ckpt = ROOT / "tests" / "fixtures" / "legacy_v1" / "image.ckpt"
    code, _, err = cli(capsys, "extract", "--checkpoint", image_ckpt, "--out", tmp_path / "f", "--npy-dir", tmp_path / "seqs")
    assert code == 1 and "holds an image model" in err and "--split" in err


def not_a_checkpoint(tmp_path, kind: str):
    """A path given as a checkpoint that is not one: a folder, an empty file, text (a Git LFS pointer), a
    truncated checkpoint."""
    path = tmp_path / f"{kind}.ckpt"
    if kind == "folder":
        path.mkdir()
    elif kind == "text":
        path.write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 1\n")
    elif kind == "empty":
        path.write_bytes(b"")
    else:
        path.write_bytes((ROOT / "tests" / "fixtures" / "legacy_v1" / "audio.ckpt").read_bytes()[:1000])
    return path


WHY = {"folder": "is a folder, not a file", "empty": "it is empty",
       "text": "it is not a PyTorch checkpoint (it starts with text: 'version https://git-lfs",
       "truncated": "it is truncated or damaged"}


@pytest.mark.parametrize("kind", WHY)
@pytest.mark.parametrize("command", ["extract", "probe"])
def test_a_checkpoint_that_is_not_one_is_named_with_why_in_one_line(tmp_path, capsys, command, kind):
    path = not_a_checkpoint(tmp_path, kind)
    code, _, err = cli(capsys, command, "--checkpoint", path, "--out", tmp_path / "out")
    assert code == 1 and f"checkpoint {path} " in err and WHY[kind] in err and len(err.strip().splitlines()) == 1
    assert "weights_only" not in err and "Traceback" not in err and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["empty", "text", "truncated"])
def test_train_init_from_a_checkpoint_that_is_not_one_is_named_with_why(tmp_path, capsys, kind):
    path = not_a_checkpoint(tmp_path, kind)
    code, _, err = cli(capsys, "pretrain", *TINY, "train.max_steps=1", f"train.init_from={path}",
                       f"train.out_dir={tmp_path / 'run'}")
    assert code == 1 and str(path) in err and WHY[kind] in err and "weights_only" not in err
    assert not (tmp_path / "run").exists()  # refused before the run folder is touched


def test_a_checkpoint_holding_code_is_refused_without_advice_to_run_it(tmp_path, capsys):
    torch.save({"model": {}, "config": {}, "payload": Exploit()}, tmp_path / "evil.ckpt")
    code, _, err = cli(capsys, "extract", "--checkpoint", tmp_path / "evil.ckpt", "--out", tmp_path / "out")
    assert code == 1 and "exec" in err and "data only" in err and "weights_only" not in err
