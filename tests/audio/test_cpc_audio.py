"""Importing facebookresearch/CPC_audio checkpoints: fake reference checkpoints with the reference's parameter
names, shapes and config keys, converted, and checked against a plain re-implementation of its forward pass.

Shapes: B batch, L samples, T latent steps, D encoder dim (hiddenEncoder), H context dim (hiddenGar).
"""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from seqcpc.audio.cpc_audio import convert_cpc_audio
from seqcpc.errors import CheckpointError, ConfigError, DataError
from seqcpc.train.checkpoint import load_config_and_model

from conftest import cli

D, H = 32, 24
KERNELS, STRIDES, PADDINGS = (10, 8, 4, 4, 4), (5, 4, 2, 2, 2), (3, 2, 1, 1, 1)
GATES = {"LSTM": 4, "GRU": 3}
NORM_MODES = ("batchNorm", "layerNorm", "instanceNorm", "ID")


def reference_args(**changes) -> dict:
    """The reference's argparse arguments as its checkpoints hold them (a subset; the rest play no part)."""
    args = {"hiddenEncoder": D, "hiddenGar": H, "nPredicts": 12, "negativeSamplingExt": 128, "learningRate": 2e-4,
            "sizeWindow": 20480, "nEpoch": 200, "samplingType": "samespeaker", "cpc_mode": None,
            "encoder_type": "cpc", "normMode": "layerNorm", "arMode": "LSTM", "nLevelsGRU": 1,
            "rnnMode": "transformer", "dropout": False, "abspos": False, "pathDB": "/data/LibriSpeech"}
    return {**args, **changes}


def reference_weights(args: dict) -> dict:
    """A CPCModel state dict with random values, named and shaped as the reference's."""
    w = {}
    width = 1
    for i, k in enumerate(KERNELS):
        w[f"gEncoder.conv{i}.weight"] = torch.randn(D, width, k) / (width * k) ** 0.5
        w[f"gEncoder.conv{i}.bias"] = 0.5 * torch.randn(D)
        norm = f"gEncoder.batchNorm{i}"
        if args["normMode"] == "batchNorm":
            w.update({f"{norm}.weight": 1 + 0.3 * torch.randn(D), f"{norm}.bias": 0.3 * torch.randn(D),
                      f"{norm}.running_mean": 0.3 * torch.randn(D), f"{norm}.running_var": 0.5 + torch.rand(D),
                      f"{norm}.num_batches_tracked": torch.tensor(1000)})
        elif args["normMode"] == "layerNorm":  # the reference's ChannelNorm keeps (1, D, 1) weights
            w.update({f"{norm}.weight": 1 + 0.3 * torch.randn(1, D, 1), f"{norm}.bias": 0.3 * torch.randn(1, D, 1)})
        elif args["normMode"] == "instanceNorm":
            w.update({f"{norm}.weight": 1 + 0.3 * torch.randn(D), f"{norm}.bias": 0.3 * torch.randn(D)})
        width = D
    gates, width = GATES[args["arMode"]], D
    for k in range(args["nLevelsGRU"]):
        w[f"gAR.baseNet.weight_ih_l{k}"] = torch.randn(gates * H, width) / width ** 0.5
        w[f"gAR.baseNet.weight_hh_l{k}"] = torch.randn(gates * H, H) / H ** 0.5
        w[f"gAR.baseNet.bias_ih_l{k}"] = 0.1 * torch.randn(gates * H)
        w[f"gAR.baseNet.bias_hh_l{k}"] = 0.1 * torch.randn(gates * H)
        width = H
    return w


def write_published(path, args, weights):
    """The layout of the reference's published models (its hubconf): {"config", "weights"}."""
    torch.save({"config": args, "weights": weights}, path)
    return path


def norm(x, w, i, mode):  # x (B, D, T)
    p = f"gEncoder.batchNorm{i}"
    if mode == "ID":
        return x
    if mode == "batchNorm":  # eval mode: the running statistics
        x = (x - w[f"{p}.running_mean"][:, None]) / torch.sqrt(w[f"{p}.running_var"][:, None] + 1e-5)
    elif mode == "instanceNorm":  # each channel over time, biased variance
        x = (x - x.mean(2, keepdim=True)) / torch.sqrt(x.var(2, unbiased=False, keepdim=True) + 1e-5)
    else:  # ChannelNorm: the channels of each step, unbiased variance, eps inside the root
        x = (x - x.mean(1, keepdim=True)) / torch.sqrt(x.var(1, unbiased=True, keepdim=True) + 1e-5)
    return x * w[f"{p}.weight"].reshape(1, D, 1) + w[f"{p}.bias"].reshape(1, D, 1)


def rnn_layer(x, w, k, mode):  # x (B, T, in) -> (B, T, H), from zero state, PyTorch's gate order
    wi, wh = w[f"gAR.baseNet.weight_ih_l{k}"], w[f"gAR.baseNet.weight_hh_l{k}"]
    bi, bh = w[f"gAR.baseNet.bias_ih_l{k}"], w[f"gAR.baseNet.bias_hh_l{k}"]
    h = c = torch.zeros(x.shape[0], H, dtype=x.dtype)
    out = []
    for t in range(x.shape[1]):
        gi, gh = x[:, t] @ wi.T + bi, h @ wh.T + bh
        if mode == "LSTM":  # input, forget, cell, output
            i, f, g, o = (gi + gh).chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
        else:  # reset, update, new
            (ir, iz, inn), (hr, hz, hn) = gi.chunk(3, 1), gh.chunk(3, 1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            h = (1 - z) * torch.tanh(inn + r * hn) + z * h
        out.append(h)
    return torch.stack(out, 1)


def reference_forward(wave, args, weights):
    """z (B, T, D), c (B, T, H) as the reference computes them in eval mode, written out from its description."""
    x = wave[:, None]  # (B, 1, L)
    for i, (s, pad) in enumerate(zip(STRIDES, PADDINGS)):
        x = F.conv1d(x, weights[f"gEncoder.conv{i}.weight"], weights[f"gEncoder.conv{i}.bias"], stride=s,
                     padding=pad)
        x = F.relu(norm(x, weights, i, args["normMode"]))
    z = x.transpose(1, 2)  # (B, T, D)
    c = z
    for k in range(args["nLevelsGRU"]):
        c = rnn_layer(c, weights, k, args["arMode"])
    return z, c


def assert_reference_features(model, args, weights, wave):
    """The converted model's (z, c) of `wave` (B, L) equal the reference forward pass's; returns them."""
    with torch.no_grad():
        z, c = model.embed(wave)
    want_z, want_c = reference_forward(wave, args, weights)
    torch.testing.assert_close(z, want_z, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(c, want_c, rtol=1e-4, atol=1e-5)
    return z, c


@pytest.mark.parametrize("ar, layers", [("GRU", 1), ("LSTM", 1), ("GRU", 2), ("LSTM", 2)])
@pytest.mark.parametrize("mode", NORM_MODES)
def test_features_equal_the_reference_forward_pass(tmp_path, mode, ar, layers):
    args = reference_args(normMode=mode, arMode=ar, nLevelsGRU=layers)
    weights = reference_weights(args)
    cfg, model = convert_cpc_audio(write_published(tmp_path / "ref.pt", args, weights))
    assert (cfg.model.encoder.dim, cfg.model.context.dim, cfg.model.context.layers) == (D, H, layers)
    z, c = assert_reference_features(model, args, weights, 0.3 * torch.randn(2, 3200))  # (B, L): 20 latent steps
    assert z.shape == (2, 20, D) and c.shape == (2, 20, H)


def test_a_biased_channel_norm_would_not_match(tmp_path):
    """The reference's ChannelNorm divides by the unbiased variance: seqcpc's plain layer norm is measurably off,
    which is why the import uses norm=layer_unbiased."""
    args = reference_args(normMode="layerNorm")
    weights = reference_weights(args)
    _, model = convert_cpc_audio(write_published(tmp_path / "ref.pt", args, weights))
    for block in model.encoder.net:
        if hasattr(block, "unbiased"):
            block.unbiased = False
    wave = 0.3 * torch.randn(1, 1600)
    with torch.no_grad():
        z, _ = model.embed(wave)
    assert (z - reference_forward(wave, args, weights)[0]).abs().max() > 1e-3


def test_training_checkpoints_read_their_arguments_beside_them(tmp_path):
    args = reference_args(normMode="batchNorm", arMode="GRU", nLevelsGRU=2, samplingType="sequential")
    weights = reference_weights(args)
    (tmp_path / "checkpoint_args.json").write_text(json.dumps(args))
    torch.save({"gEncoder": weights, "cpcCriterion": {"wPrediction.0.predictor.weight": torch.randn(D, H)},
                "optimizer": {"state": {}, "param_groups": [{"lr": 2e-4, "params": [0, 1]}]}, "best": None},
               tmp_path / "checkpoint_3.pt")
    _, model = convert_cpc_audio(tmp_path / "checkpoint_3.pt")
    assert_reference_features(model, args, weights, 0.3 * torch.randn(1, 1600))
    (tmp_path / "checkpoint_args.json").unlink()
    with pytest.raises(DataError, match="checkpoint_args.json"):
        convert_cpc_audio(tmp_path / "checkpoint_3.pt")


@pytest.mark.parametrize("key, value", [("arMode", "transformer"), ("arMode", "RNN"), ("arMode", "no_ar"),
                                        ("encoder_type", "mfcc"), ("cpc_mode", "reverse"), ("cpc_mode", "bert"),
                                        ("normMode", "groupNorm"), ("hiddenGar", 0)])
def test_what_seqcpc_cannot_represent_is_refused_by_its_key(tmp_path, key, value):
    args = reference_args(**{key: value})
    weights = reference_weights(reference_args())
    with pytest.raises(ConfigError, match=f"{key}={value!r}"):
        convert_cpc_audio(write_published(tmp_path / "ref.pt", args, weights))


def test_weights_that_do_not_fit_their_config_are_refused(tmp_path):
    weights = reference_weights(reference_args(arMode="GRU", nLevelsGRU=2))
    with pytest.raises(CheckpointError, match="gAR.baseNet.weight_ih_l1"):  # one layer too many
        convert_cpc_audio(write_published(tmp_path / "a.pt", reference_args(arMode="GRU"), weights))
    with pytest.raises(CheckpointError, match="gAR.baseNet.weight_ih_l0 has shape"):  # an LSTM read as a GRU
        convert_cpc_audio(write_published(tmp_path / "b.pt", reference_args(arMode="GRU"),
                                          reference_weights(reference_args())))
    torch.save({"model": {}, "config": {}}, tmp_path / "c.pt")
    with pytest.raises(CheckpointError, match="seqcpc checkpoint already"):
        convert_cpc_audio(tmp_path / "c.pt")


def test_the_cli_writes_a_seqcpc_checkpoint_that_loads_alone(tmp_path, capsys):
    args = reference_args(normMode="layerNorm", arMode="LSTM", nLevelsGRU=2)
    weights = reference_weights(args)
    ref = write_published(tmp_path / "ref.pt", args, weights)
    code, out, err = cli(capsys, "import-cpc-audio", "--checkpoint", ref, "--out", tmp_path / "model.ckpt")
    assert code == 0, err
    assert "lstm 2x24" in out
    cfg, model = load_config_and_model(tmp_path / "model.ckpt")
    assert cfg.model.encoder.norm == "layer_unbiased" and cfg.model.encoder.bias
    assert_reference_features(model, args, weights, 0.3 * torch.randn(1, 1600))
    code, _, err = cli(capsys, "import-cpc-audio", "--checkpoint", tmp_path / "missing.pt", "--out", tmp_path / "x")
    assert code == 1 and "missing.pt" in err


def one_line_refusal(code, err, *words):
    """A refusal as the guarantees promise it: exit 1, one line naming `words`, no traceback."""
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert all(w in err for w in words), err


def test_the_import_replaces_no_file_unless_told(tmp_path, capsys):
    ref = write_published(tmp_path / "ref.pt", reference_args(), reference_weights(reference_args()))
    ref_bytes = ref.read_bytes()
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    (run / "last.ckpt").write_bytes(b"an existing run's checkpoint")
    code, _, err = cli(capsys, "import-cpc-audio", "--checkpoint", ref, "--out", run / "last.ckpt")
    one_line_refusal(code, err, "last.ckpt", "--overwrite")
    assert (run / "last.ckpt").read_bytes() == b"an existing run's checkpoint"
    for same in (ref, tmp_path / "run" / ".." / "ref.pt"):  # the input itself, however spelt, even with --overwrite
        code, _, err = cli(capsys, "import-cpc-audio", "--checkpoint", ref, "--out", same, "--overwrite")
        one_line_refusal(code, err, "is the checkpoint to convert")
    assert ref.read_bytes() == ref_bytes
    code, _, err = cli(capsys, "import-cpc-audio", "--checkpoint", ref, "--out", run / "last.ckpt", "--overwrite")
    assert code == 0, err
    assert load_config_and_model(run / "last.ckpt")[0].model.encoder.dim == D
    assert sorted(p.name for p in run.iterdir()) == ["last.ckpt"]  # written atomically: no temporary file is left


@pytest.mark.parametrize("key, value, words", [
    ("sizeWindow", 400, ["sizeWindow=400", "receptive field"]),  # the conv stack sees 465 samples
    ("nPredicts", 128, ["nPredicts=128", "objective.predictor.steps=128"]),  # a 20480-sample window: 128 steps
    ("negativeSamplingExt", 5000, ["negativeSamplingExt=5000", "objective.loss.num_negatives=5000"]),
])
def test_the_import_runs_the_checks_of_a_run(tmp_path, capsys, key, value, words):
    ref = write_published(tmp_path / "ref.pt", reference_args(**{key: value}), reference_weights(reference_args()))
    code, _, err = cli(capsys, "import-cpc-audio", "--checkpoint", ref, "--out", tmp_path / "model.ckpt")
    one_line_refusal(code, err, "ref.pt", *words)
    assert not (tmp_path / "model.ckpt").exists()


def malformed(tmp_path, kind):
    """A file that is no well-formed CPC_audio checkpoint, written as `kind` says; returns its path."""
    args, weights = reference_args(), reference_weights(reference_args())
    path = tmp_path / "ref.pt"
    if kind == "text":
        path.write_text("hiddenEncoder: 256\n")
    elif kind == "list":
        torch.save([weights], path)
    elif kind == "config not a mapping":
        torch.save({"config": ["hiddenEncoder", 256], "weights": weights}, path)
    elif kind == "weights not a mapping":
        torch.save({"config": args, "weights": torch.zeros(3)}, path)
    elif kind == "a weight not a tensor":
        torch.save({"config": args, "weights": {**weights, "gEncoder.conv0.weight": [0.0] * 10}}, path)
    elif kind == "a norm mode not a name":
        torch.save({"config": reference_args(normMode=["layerNorm"]), "weights": weights}, path)
    elif kind == "arguments not a mapping":
        (tmp_path / "checkpoint_args.json").write_text(json.dumps([args]))
        torch.save({"gEncoder": weights}, path)
    elif kind == "encoder not a mapping":
        (tmp_path / "checkpoint_args.json").write_text(json.dumps(args))
        torch.save({"gEncoder": [1, 2]}, path)
    elif kind == "missing keys":
        torch.save({"weights": weights}, path)
    elif kind == "wrong shape":
        torch.save({"config": args, "weights": {**weights, "gEncoder.conv2.weight": torch.zeros(D, D, 3)}}, path)
    return path


@pytest.mark.parametrize("kind, words", [
    ("text", ["could not be read"]), ("list", ["holds a list"]),
    ("config not a mapping", ["'config'", "list"]), ("weights not a mapping", ["'weights'", "Tensor"]),
    ("a weight not a tensor", ["gEncoder.conv0.weight", "list"]), ("a norm mode not a name", ["normMode"]),
    ("arguments not a mapping", ["checkpoint_args.json", "list"]), ("encoder not a mapping", ["'gEncoder'"]),
    ("missing keys", ["'config' and 'weights'"]), ("wrong shape", ["gEncoder.conv2.weight has shape (32, 32, 3)"]),
])
def test_a_malformed_reference_checkpoint_is_one_line(tmp_path, capsys, kind, words):
    code, _, err = cli(capsys, "import-cpc-audio", "--checkpoint", malformed(tmp_path, kind), "--out",
                       tmp_path / "model.ckpt")
    one_line_refusal(code, err, *words)
    assert not (tmp_path / "model.ckpt").exists()


def test_extract_of_a_split_refuses_an_imported_model_with_no_data_of_its_own(tmp_path, capsys):
    """The import names no data set: --split would extract the built-in synthetic sines of the defaults."""
    args = reference_args()
    weights = reference_weights(args)
    ref = write_published(tmp_path / "ref.pt", args, weights)
    assert cli(capsys, "import-cpc-audio", "--checkpoint", ref, "--out", tmp_path / "cpc.ckpt")[0] == 0
    code, _, err = cli(capsys, "extract", "--checkpoint", tmp_path / "cpc.ckpt", "--out", tmp_path / "f")
    one_line_refusal(code, err, "cpc.ckpt", "ref.pt", "--npy-dir")
    assert not (tmp_path / "f").exists()
    (tmp_path / "waves").mkdir()
    wave = 0.3 * torch.randn(1600)
    np.save(tmp_path / "waves" / "a.npy", wave.numpy())
    code, _, err = cli(capsys, "extract", "--checkpoint", tmp_path / "cpc.ckpt", "--out", tmp_path / "f",
                       "--npy-dir", tmp_path / "waves", "--features", "z")
    assert code == 0, err
    want_z, _ = reference_forward(wave[None], args, weights)
    np.testing.assert_allclose(np.load(tmp_path / "f" / "a.z.npy"), want_z[0].numpy(), rtol=1e-4, atol=1e-5)
