"""The config sections of audio (and other 1-D sequence) models: model, data and probe."""
import typing
from dataclasses import dataclass, field

from seqcpc.config import FewShotConfig, LossConfig, PredictorConfig, choice


@dataclass
class ConvEncoderConfig:
    in_channels: int = 1
    dim: int = 512
    kernels: list[int] = field(default_factory=lambda: [10, 8, 4, 4, 4])
    strides: list[int] = field(default_factory=lambda: [5, 4, 2, 2, 2])
    norm: str = choice("batch", ["batch", "layer", "instance", "none"])


@dataclass
class SequenceContextConfig:
    kind: str = choice("gru", ["gru", "lstm", "transformer"])
    dim: int = 256
    layers: int = 1
    heads: int = 4  # transformer only


@dataclass
class AudioModelConfig:
    size: typing.Optional[str] = None  # a named preset (seqcpc/audio/sizes.py), applied before the fields below
    modality: str = choice("audio", ["audio"])
    encoder: ConvEncoderConfig = field(default_factory=ConvEncoderConfig)
    context: SequenceContextConfig = field(default_factory=SequenceContextConfig)
    predictor: PredictorConfig = field(default_factory=PredictorConfig)
    loss: LossConfig = field(default_factory=LossConfig)


@dataclass
class AudioDataConfig:
    kind: str = choice("synthetic", ["synthetic", "manifest"])
    window: int = 20480  # input samples per training window
    batch_size: int = 8  # per device
    num_workers: int = 0
    batching: str = choice("uniform", ["uniform", "speaker", "utterance"])  # manifest: one speaker / utterance a batch
    manifest: str = ""  # manifest: a prepared corpus's manifest.tsv (train split to train, test to validate)
    sample_rate: int = 16000  # manifest: the rate windows are read at (files at other rates are resampled)
    allow_outside_paths: bool = False  # manifest: let rows point outside the manifest's folder
    on_bad_file: str = choice("skip", ["skip", "stop"])  # manifest: leave out (and list) or stop at a bad file
    num_sequences: int = 512  # synthetic: training sequences
    val_sequences: int = 64  # synthetic: validation sequences
    groups: int = 8  # synthetic: number of "speakers" (sources with their own frequencies)


@dataclass
class SpeechProbeConfig(FewShotConfig):
    """Speaker, phone and few-shot probes (seqcpc/audio/eval.py); few-shot episodes on held-out speakers."""
    window: int = 0  # samples per probe window; 0: data.window
    windows_per_utterance: int = 2  # speaker probes: non-overlapping windows cut from each utterance
    utterances_per_speaker: int = 0  # speaker probes: utterances per speaker and split; 0: all
    phone_utterances_per_speaker: int = 0  # phone probe: utterances per speaker and split; 0: all
    phone_frames: int = 200_000  # cap on the frames (random subset) each split gives the phone probe
    mfcc: int = 13  # coefficients of the MFCC baseline
