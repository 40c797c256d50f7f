"""The upstream interface (seqcpc/audio/upstream.py) and its torch.hub entry (hubconf.py)."""
import numpy as np
import pytest
import torch

from seqcpc.audio.upstream import Upstream
from seqcpc.errors import ConfigError, DataError

from conftest import ROOT
from layer_fixtures import save_layered_checkpoint, tiny_layered_model

LENGTHS = (16000, 12345, 3210, 7 * 160 + 159)


@pytest.fixture
def saved(tmp_path):
    path = tmp_path / "last.ckpt"
    cfg, model = save_layered_checkpoint(path)
    return cfg, model, path


def waves():
    return [0.3 * torch.randn(n) for n in LENGTHS]


def test_frame_counts_follow_the_downsample_rate_for_waves_of_different_lengths(saved):
    _, _, path = saved
    upstream = Upstream(path)
    assert upstream.downsample_rate == upstream.get_downsample_rates("hidden_states") == 160
    out = upstream(waves())
    frames = [n // 160 for n in LENGTHS]
    assert out["lengths"].tolist() == frames
    B, T = len(LENGTHS), max(frames)
    assert out["last_hidden_state"].shape == (B, T, 16) and out["z"].shape == (B, T, 24)
    assert len(out["hidden_states"]) == 2 and all(h.shape == (B, T, 16) for h in out["hidden_states"])
    assert out["last_hidden_state"] is out["hidden_states"][-1]
    assert out["padding_mask"].tolist() == [[t >= n for t in range(T)] for n in frames]
    assert out["last_hidden_state"][out["padding_mask"]].abs().sum() == 0


def test_the_downsample_rate_comes_from_the_encoders_strides():
    from seqcpc.builders import cpc_synthetic_tiny

    upstream = Upstream(cpc_synthetic_tiny())  # strides 5, 4, 2: one frame per 40 samples
    assert upstream.downsample_rate == 40
    assert upstream([torch.randn(1000), torch.randn(419)])["lengths"].tolist() == [25, 10]


@pytest.mark.parametrize("norm, encoder", [("batch", "conv"), ("layer", "conv"), ("instance", "conv"),
                                           ("batch", "lfb")])
@pytest.mark.parametrize("kind", ["gru", "transformer"])
def test_a_waves_frames_do_not_depend_on_the_padding_of_its_batch(norm, encoder, kind):
    _, model = tiny_layered_model(norm, kind=kind, encoder=encoder)
    upstream = Upstream(model)
    batch = waves()
    together = upstream(batch)
    for i, wave in enumerate(batch):
        n = len(wave) // 160
        alone = upstream([wave])
        states = model.hidden_states(wave[None, None])  # the model's own features of the wave alone
        for key in ("z", "last_hidden_state"):
            torch.testing.assert_close(together[key][i, :n], alone[key][0], rtol=1e-4, atol=1e-5)
        for h_batch, h_alone, h_model in zip(together["hidden_states"], alone["hidden_states"], states[1:]):
            torch.testing.assert_close(h_batch[i, :n], h_alone[0], rtol=1e-4, atol=1e-5)
            torch.testing.assert_close(h_alone[0], h_model[0, :n], rtol=1e-4, atol=1e-5)


def test_the_plain_encoder_would_let_the_padding_into_the_last_frame():
    """Why the upstream masks each conv's input: without it the check above fails for batch norm."""
    _, model = tiny_layered_model("batch")
    wave = torch.randn(1, 1, 16000)
    alone = model.encoder(wave)
    padded = model.encoder(torch.nn.functional.pad(wave, (0, 3000)))
    assert not torch.allclose(alone[0, 99], padded[0, 99], atol=1e-3)


def test_the_model_stays_in_eval_mode_and_gradients_flow(saved):
    upstream = Upstream(saved[2]).train()
    assert not upstream.model.training and upstream.training
    upstream(waves()[:2])["last_hidden_state"].sum().backward()
    assert upstream.model.encoder.net[0].weight.grad is not None


def test_torch_hub_loads_the_upstream_from_a_local_checkout(saved):
    _, _, path = saved
    hub = torch.hub.load(str(ROOT), "seqcpc_upstream", source="local", checkpoint=str(path))
    assert isinstance(hub, Upstream)
    batch = waves()
    torch.testing.assert_close(hub(batch)["last_hidden_state"], Upstream(path)(batch)["last_hidden_state"])


def test_another_sample_rate_is_refused(saved):
    _, _, path = saved
    with pytest.raises(ConfigError, match="8000 Hz given to a model trained at 16000 Hz"):
        Upstream(path, sample_rate=8000)
    with pytest.raises(ConfigError, match="resample them to 16000 Hz"):
        Upstream(path)(waves(), sample_rate=8000)


def test_a_checkpoint_that_is_not_audio_cpc_is_refused():
    with pytest.raises(ConfigError, match="model.modality=image .* audio CPC checkpoint"):
        Upstream(ROOT / "tests" / "fixtures" / "legacy_v1" / "image.ckpt")
    with pytest.raises(ConfigError, match="not an audio CPC model"):
        Upstream(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("wavs, message", [
    ([torch.randn(2, 1600)], "wave 0 has shape \\(2, 1600\\)"),
    ([torch.randn(1600), torch.randn(100)], "wave 1 has shape \\(100,\\).*one frame long"),
    ([], "not an empty list"),
    (torch.randn(2, 1600), "not a tensor"),
])
def test_what_is_not_a_list_of_mono_waves_is_refused(saved, wavs, message):
    with pytest.raises(DataError, match=message):
        Upstream(saved[2])(wavs)


def test_integer_pcm_is_scaled_as_audio_libraries_read_it(saved):
    """int16 / int32 samples are divided by 2 ** 15 / 2 ** 31 (soundfile's and torchaudio's float reading), so a
    wave read as integers (scipy.io.wavfile) gives the features of the same wave read as floats."""
    upstream = Upstream(saved[2])
    pcm = (0.3 * np.random.default_rng(0).standard_normal(3200) * 2 ** 15).clip(-2 ** 15, 2 ** 15 - 1)
    as_float = torch.from_numpy(pcm.astype(np.float32) / 2 ** 15)
    want = upstream([as_float])["last_hidden_state"]
    for wave in (pcm.astype(np.int16), torch.from_numpy(pcm.astype(np.int32) * 2 ** 16)):
        torch.testing.assert_close(upstream([wave])["last_hidden_state"], want, rtol=1e-4, atol=1e-5)


def spoilt(n: int, index: int, value) -> torch.Tensor:
    wave = 0.3 * torch.randn(n)
    wave[index] = value
    return wave


@pytest.mark.parametrize("bad, message", [
    (spoilt(3200, 7, float("nan")), "wave 1 holds 1 NaN or infinite sample.*sample 7"),
    (spoilt(3200, 100, float("inf")), "wave 1 holds 1 NaN or infinite sample.*sample 100"),
    (torch.randn(3200) * 3000, "wave 1 peaks at .* far outside \\[-1, 1\\]"),  # int16 PCM stored as floats
    (np.ones(3200, dtype=np.float64) * 1e40, "wave 1 peaks at 1e\\+40"),
    (torch.arange(3200), "wave 1 holds torch.int64 samples"),  # no PCM width to scale by
    (np.zeros(3200, dtype=np.uint8), "wave 1 holds torch.uint8 samples"),
    (["a"] * 3200, "wave 1 is not an array of numbers"),
])
def test_waves_that_are_not_audio_samples_are_refused_by_index(saved, bad, message):
    with pytest.raises(DataError, match=message):
        Upstream(saved[2])([0.3 * torch.randn(3200), bad])


def test_a_wave_standardised_to_unit_variance_is_accepted(saved):
    wave = torch.randn(3200)
    wave[10] = 40.0  # a loud click in a unit-variance wave: far above 1, not integer PCM
    assert Upstream(saved[2])([wave])["lengths"].tolist() == [20]
