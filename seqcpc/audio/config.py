"""The config sections of audio (and other 1-D sequence) models: model, data and probe."""
import typing
from dataclasses import dataclass, field

from seqcpc.config import FewShotConfig
from seqcpc.fields import choice, number, path


@dataclass
class ConvEncoderConfig:
    # conv: strided convs on the raw samples; lfb: a log mel filterbank then a 1x1 projection (seqcpc/audio/lfb.py)
    kind: str = choice("conv", ["conv", "lfb"])
    in_channels: int = number(1, min=1)
    dim: int = number(512, min=1)
    kernels: list[int] = number([10, 8, 4, 4, 4], min=1)  # conv only
    strides: list[int] = number([5, 4, 2, 2, 2], min=1)  # conv only
    # conv only; layer_unbiased: layer norm over channels with the unbiased variance (CPC_audio's ChannelNorm)
    norm: str = choice("batch", ["batch", "layer", "layer_unbiased", "instance", "none"])
    bias: typing.Optional[bool] = None  # conv biases; null: only without a norm (true in imported CPC_audio models)
    mels: int = number(40, min=1)  # lfb only: mel bins
    frame: int = number(400, min=1)  # lfb only: samples per analysis window (25 ms at 16 kHz)
    hop: int = number(160, min=1)  # lfb only: samples between frames (10 ms: the paper encoder's downsampling)


@dataclass
class SequenceContextConfig:
    kind: str = choice("gru", ["gru", "lstm", "transformer"])
    dim: int = number(256, min=1)
    layers: int = number(1, min=1)
    heads: int = number(4, min=1)  # transformer only


@dataclass
class AudioViewsConfig:
    """The random views of a window, for objectives that compare views (SimCLR, MoCo v2, SDCLR): the section
    objective.views (seqcpc/audio/views.py). Each view is a crop of `length` samples at a random offset, so the
    window must be longer than a view."""
    length: int = number(0, min=0)  # samples per view; 0: 3/4 of data.window
    gain_db: float = number(6.0, min=0)  # gain uniform in [-gain_db, +gain_db] dB
    snr_db: list[float] = number([10.0, 30.0])  # [low, high] SNR of the added white noise, in dB
    noise_prob: float = number(0.8, min=0, max=1)  # chance of adding noise
    speed: list[float] = number([0.9, 1.1], above=0)  # [low, high] speed factor (resampling; pitch moves too)
    speed_prob: float = number(0.5, min=0, max=1)  # chance of a speed change
    eq_prob: float = number(0.5, min=0, max=1)  # chance of a spectral tilt
    eq_db: float = number(6.0, min=0)  # the tilt goes linearly from -eq_db to +eq_db (random sign) across frequency


@dataclass
class AugmentPastConfig:
    """CPC's augmentation of the past (CPC2, Kharitonov et al. 2020): the context reads the latents of an augmented
    copy of each window, the targets stay the clean window's (seqcpc/audio/augment.py); the section
    objective.augment_past. Each effect is drawn per window with its probability; all 0 (the default): off."""
    pitch_prob: float = number(0.0, min=0, max=1)  # chance of a pitch shift (timing kept)
    pitch_cents: float = number(300.0, min=0)  # the shift is uniform in +-pitch_cents (CPC2: 300)
    reverb_prob: float = number(0.0, min=0, max=1)  # chance of reverberation by a synthetic room response
    rt60: list[float] = number([0.1, 0.6], above=0)  # [low, high] seconds for the room's sound to fall by 60 dB
    band_reject_prob: float = number(0.0, min=0, max=1)  # chance of a rejected frequency band
    band_hz: list[float] = number([100.0, 1000.0], above=0)  # [low, high] width of the band, in Hz
    time_drop_prob: float = number(0.0, min=0, max=1)  # chance of a silenced stretch
    time_drop_ms: float = number(50.0, above=0)  # the stretch is up to this long
    noise_prob: float = number(0.0, min=0, max=1)  # chance of added white noise
    snr_db: list[float] = number([5.0, 30.0])  # [low, high] SNR of that noise, in dB
    sample_rate: int = number(0, min=0)  # for the Hz and seconds above; 0: data.sample_rate, filled in by a run


@dataclass
class AudioModelConfig:
    size: typing.Optional[str] = None  # a named preset (seqcpc/audio/sizes.py), applied before the fields below
    modality: str = choice("audio", ["audio"])
    encoder: ConvEncoderConfig = field(default_factory=ConvEncoderConfig)
    context: SequenceContextConfig = field(default_factory=SequenceContextConfig)


@dataclass
class AudioDataConfig:
    kind: str = choice("synthetic", ["synthetic", "manifest", "shards"])
    window: int = number(20480, min=1)  # input samples per training window
    # manifest, objectives that leave padding out (cpc): clips of min_clip..window samples are used whole,
    # zero-padded to the window, the padding never scored; shorter clips are skipped. 0: the window
    min_clip: int = number(0, min=0)
    batch_size: int = number(8, min=1)  # per device
    num_workers: int = number(0, min=0)
    batching: str = choice("uniform", ["uniform", "speaker", "utterance"])  # corpus: one speaker / utterance a batch
    manifest: str = path()  # manifest: a prepared corpus's manifest.tsv (train split to train, test to validate)
    # shards: a folder written by data_prep/shards.py (train split to train, test to validate); data.manifest is
    # then the corpus the probes read, by default the one the shards were packed from
    shards: str = path()
    # shards: random windows cut from each clip an epoch; a long clip (e.g. LibriLight's cuts of up to 20 s)
    # then gives several windows for one read of its bytes
    windows_per_clip: int = number(1, min=1)
    # manifest: frame labels (phones.txt format, one index per 10 ms) the windows carry when the objective asks
    # for them (objective.online_phones); "": phones.txt beside the manifest, filled in when a run completes its
    # config; with data.kind=shards "shards" (the labels packed in the shards)
    phones: str = path()
    sample_rate: int = number(16000, min=1)  # manifest: the rate windows are read at (files at other rates are resampled)
    allow_outside_paths: bool = False  # manifest: let rows point outside the manifest's folder
    on_bad_file: str = choice("skip", ["skip", "stop"])  # manifest: leave out (and list) or stop at a bad file
    num_sequences: int = number(512, min=1)  # synthetic: training sequences
    val_sequences: int = number(64, min=1)  # synthetic: validation sequences
    groups: int = number(8, min=1)  # synthetic: number of "speakers" (sources with their own frequencies)


@dataclass
class SpeechProbeConfig(FewShotConfig):
    """Speaker, phone and few-shot probes (seqcpc/audio/eval.py); few-shot episodes on held-out speakers."""
    window: int = number(0, min=0)  # samples per probe window; 0: data.window
    windows_per_utterance: int = number(2, min=1)  # speaker probes: non-overlapping windows cut from each utterance
    utterances_per_speaker: int = number(0, min=0)  # speaker probes: utterances per speaker and split; 0: all
    phone_utterances_per_speaker: int = number(0, min=0)  # phone probe: utterances per speaker and split; 0: all
    phone_frames: int = number(200_000, min=1)  # cap on the frames (random subset) each split gives the phone probe
    mfcc: int = number(13, min=1)  # coefficients of the MFCC baseline
    cpc_z: bool = True  # also probe the encoder's z (the row cpc_z) beside the context c (the row cpc)
    knn: int = number(20, min=0)  # neighbours of the k-NN speaker probe (speaker_knn); 0: none
    units: int = number(50, min=0)  # k-means units on the phone probe's frames, scored by purity and PNMI; 0: none
    abx_items: str = path()  # an ABX item file; "": abx_test.item beside the manifest when it is there
    abx_files_per_speaker: int = number(4, min=0)  # ABX on the items of the first files of each speaker; 0: all
    # speech recipe: steps of the supervised speaker classifier (objective.name=supervised, same encoder) probed
    # as the table's ceiling row; 0: none
    ceiling_steps: int = number(0, min=0)
