"""The parts an audio model offers objectives, and the checks and completion of an audio config.

Shapes: B batch, L samples, T latent steps, D latent dim, E context dim.
The parts are built from the model section in a fixed order (the conv encoder, then the context), so a run's
initial weights depend only on its config and seed.
"""
import math
from pathlib import Path

from seqcpc.audio.config import AudioModelConfig
from seqcpc.audio.augment import PastAugment, active
from seqcpc.audio.encoder import ConvEncoder, output_length, receptive_field, shortest_clip, valid_length
from seqcpc.audio.lfb import SAMPLE_RATE, LogMelEncoder
from seqcpc.audio.manifest import read_manifest, read_phones
from seqcpc.audio.shards import read_index
from seqcpc.audio.views import audio_views_from_config
from seqcpc.audio.wave_mel import ParallelViews
from seqcpc.core.context import RNNContext, TransformerContext
from seqcpc.core.model import CPC, LocalGlobalContext, PooledContext
from seqcpc.errors import ConfigError, DataError
from seqcpc.modalities import Geometry


class AudioParts:
    """An encoder x (B, 1, L) -> z (B, T, D) (strided convs, or a log mel filterbank) and a causal context
    z -> c (B, T, E), and what objectives assemble from them."""
    labels, frame_labels = "speaker", "phone"  # what a window's class and a frame's class are

    def __init__(self, cfg: AudioModelConfig):
        enc, ctx = cfg.encoder, cfg.context
        if enc.kind == "lfb":
            self.encoder = LogMelEncoder(enc.dim, enc.mels, enc.frame, enc.hop)
        else:
            self.encoder = ConvEncoder(enc.in_channels, enc.dim, enc.kernels, enc.strides, enc.norm, enc.bias)
        self.context = context_network(cfg)
        self.latent_dim, self.context_dim = enc.dim, ctx.dim
        self.cfg = cfg

    def autoregressive(self, task) -> CPC:
        return CPC(self.encoder, self.context, task.predictor(self.context_dim, self.latent_dim),
                   task.loss(self.latent_dim), task.targets(self.latent_dim), task.scale)

    def pooled(self, pool: int = 1, augment: bool = True) -> PooledContext:
        """The context averaged over time (B, E); sequences have no augment and no grid to pool."""
        return PooledContext(self.encoder, self.context, self.context_dim)

    def local_global(self, augment: bool = True) -> LocalGlobalContext:
        """The latents (B, T, D) and the context averaged over time (B, E); sequences have no augment."""
        return LocalGlobalContext(self.encoder, self.context, self.context_dim)

    def multiview(self, pool: int = 1) -> ParallelViews:
        """CMC's views: the waveform through the conv encoder and its context, and a log mel filterbank of the same
        window (the lfb options: mels, frame, hop) through a new context of the same kind, each averaged over time."""
        enc = self.cfg.encoder
        mel = LogMelEncoder(enc.dim, enc.mels, enc.frame, enc.hop)
        return ParallelViews([self.pooled(), PooledContext(mel, context_network(self.cfg), self.context_dim)])

    def augment_past(self, cfg):
        """CPC2's augmentation of the past (seqcpc/audio/augment.py), or None when no effect is ever drawn."""
        if not active(cfg):
            return None
        if not cfg.sample_rate:
            raise ConfigError("objective.augment_past.sample_rate is not set: a run takes data.sample_rate when it "
                              "completes its config (seqcpc.complete_config); set it to build a model alone")
        return PastAugment(cfg)

    def views(self, cfg):
        if not cfg.length:
            raise ConfigError("objective.views.length is not set: a run takes 3/4 of data.window when it completes "
                              "its config (seqcpc.complete_config); set it to build a model alone")
        return audio_views_from_config(cfg)


def context_network(cfg: AudioModelConfig):
    ctx, enc = cfg.context, cfg.encoder
    if ctx.kind == "transformer":
        return TransformerContext(enc.dim, ctx.dim, ctx.layers, ctx.heads)
    return RNNContext(enc.dim, ctx.dim, ctx.layers, cell=ctx.kind)


def check_audio_config(cfg, objective) -> Geometry:
    """Refuse impossible shapes and what the objective cannot learn from; the geometry of one training window."""
    if cfg.data.kind == "synthetic" and cfg.data.batching != "uniform":
        raise ConfigError(f"data.batching={cfg.data.batching} needs a speech corpus (data.kind=manifest); "
                          f"synthetic sequences take data.batching=uniform")
    if cfg.data.kind == "shards" and not cfg.data.shards:
        raise ConfigError("data.kind=shards reads a folder written by data_prep/shards.py: data.shards=FOLDER")
    if cfg.data.windows_per_clip > 1 and (cfg.data.kind != "shards" or cfg.data.batching == "utterance"):
        raise ConfigError(f"data.windows_per_clip={cfg.data.windows_per_clip} cuts several windows from each clip "
                          f"of streamed shards (data.kind=shards, data.batching uniform or speaker); set it to 1")
    enc, window = cfg.model.encoder, cfg.data.window
    if enc.kind == "lfb":
        check_lfb(cfg)
    if len(enc.kernels) != len(enc.strides) or not enc.kernels:
        raise ConfigError(f"model.encoder.kernels {enc.kernels} and strides {enc.strides} must be non-empty "
                          f"lists of the same length")
    if min(enc.kernels + enc.strides) < 1 or any(k < s for k, s in zip(enc.kernels, enc.strides)):
        raise ConfigError(f"model.encoder: every stride must be >= 1 and <= its kernel, got kernels "
                          f"{enc.kernels} and strides {enc.strides}")
    field = receptive_field(*frames_of(enc))
    if window < field:
        raise ConfigError(f"data.window={window} is shorter than the encoder's receptive field ({field} samples)")
    T = output_length(window, *frames_of(enc))
    if "multiview" in objective.parts:
        check_wave_mel(cfg, objective)
    check_min_clip(cfg, objective)
    if objective.batch_sampler is not None and cfg.data.kind != "manifest":
        raise ConfigError(f"objective.name={objective.name} draws its batches from a corpus's speakers: "
                          f"data.kind=manifest data.manifest=PATH (a corpus read at random, not streamed shards)")
    if hasattr(cfg.objective, "views"):
        check_views(cfg, objective)
    if hasattr(cfg.objective, "augment_past"):
        check_augment_past(cfg.objective.augment_past, cfg.data.sample_rate)
    return Geometry(T, T, T, f"latent steps of a data.window={window}")


def frames_of(enc) -> tuple:
    """(kernels, strides) of the conv stack whose outputs sit where the encoder's latents do: the lfb encoder's
    frames are those of one conv layer of kernel `frame` and stride `hop` (seqcpc/audio/lfb.py)."""
    return ([enc.frame], [enc.hop]) if enc.kind == "lfb" else (enc.kernels, enc.strides)


def check_lfb(cfg) -> None:
    enc = cfg.model.encoder
    if enc.in_channels != 1 or cfg.data.sample_rate != SAMPLE_RATE:
        raise ConfigError(f"model.encoder.kind=lfb reads one channel of {SAMPLE_RATE} Hz audio (its mel scale is set "
                          f"for that rate): got model.encoder.in_channels={enc.in_channels}, data.sample_rate="
                          f"{cfg.data.sample_rate}")
    if enc.hop > enc.frame or enc.frame // 2 + 1 < enc.mels:
        raise ConfigError(f"model.encoder.kind=lfb: need hop <= frame and at most frame // 2 + 1 mel bins (the "
                          f"frequencies of one frame), got model.encoder.frame={enc.frame}, hop={enc.hop}, "
                          f"mels={enc.mels}")


def check_wave_mel(cfg, objective) -> None:
    """Refuse what the waveform and log mel views cannot be: the waveform's encoder must be the conv one, and the
    log mel frames must fall where its latents do (their features concatenate frame by frame)."""
    enc, name = cfg.model.encoder, objective.name
    if enc.kind != "conv":
        raise ConfigError(f"objective.name={name} contrasts the waveform through the conv encoder with a log mel "
                          f"filterbank of the same window: set model.encoder.kind=conv (mels, frame and hop set the "
                          f"log mel view)")
    wave, mel = (output_length(cfg.data.window, *frames) for frames in (frames_of(enc), ([enc.frame], [enc.hop])))
    step = math.prod(enc.strides)
    if enc.hop != step or wave != mel:
        raise ConfigError(f"objective.name={name}: the log mel frames every model.encoder.hop={enc.hop} samples "
                          f"({mel} a window) must fall where the conv encoder's latents do (every {step} samples, "
                          f"{wave} a window): set model.encoder.hop={step} and a model.encoder.frame of at least that")
    check_lfb(cfg)


def check_min_clip(cfg, objective) -> None:
    """Refuse a data.min_clip that pads what the objective cannot leave out, or so short that a clip has too few
    latent steps for the objective (every offset 1..K needs K + 1 steps whose receptive field lies in the clip)."""
    data, model = cfg.data, cfg.model
    if data.min_clip > data.window:
        raise ConfigError(f"data.min_clip={data.min_clip} is longer than data.window={data.window}: clips of "
                          f"min_clip..window samples are padded to the window; set data.min_clip <= data.window "
                          f"(0: the window, shorter clips skipped)")
    if data.min_clip in (0, data.window):
        return
    fix = "set data.min_clip=0 (clips shorter than the window skipped)"
    if data.kind == "synthetic":
        raise ConfigError(f"data.min_clip={data.min_clip} pads a corpus's short clips (data.kind=manifest or "
                          f"shards); "
                          f"synthetic sequences are all data.window long: {fix}")
    if objective.padded_steps is None:
        raise ConfigError(f"data.min_clip={data.min_clip} < data.window pads short clips, which objective.name="
                          f"{objective.name} would learn from (only objectives that leave the padding out of "
                          f"their loss, such as cpc, take them): {fix}")
    if data.batching == "utterance":
        raise ConfigError(f"data.batching=utterance with data.min_clip={data.min_clip}: every window of a clip "
                          f"shorter than the window is the same padded clip; use data.batching=uniform or speaker")
    frames, steps = frames_of(model.encoder), objective.padded_steps(cfg.objective)
    valid = int(valid_length([data.min_clip], data.window, *frames)[0])
    shortest = shortest_clip(steps, data.window, *frames)
    if valid < steps and shortest <= data.window:  # else the window itself is too short (the objective says so)
        raise ConfigError(f"data.min_clip={data.min_clip} samples give {valid} latent steps inside the clip, but "
                          f"objective.name={objective.name} with these options needs {steps}: set data.min_clip >= "
                          f"{shortest} (the samples of {steps} latent steps) or predict fewer steps")


def count_speakers(cfg) -> tuple:
    """(speakers of the training data, in words): a manifest's train split, counting only speakers with a clip
    long enough to be used, as the training windows do; or data.groups."""
    data = cfg.data
    if data.kind == "synthetic":
        return data.groups, f"{data.groups} groups (data.groups)"
    if data.kind == "shards":
        speakers = read_index(data.shards)["speakers"]
        return len(speakers), f"{len(speakers)} speakers in the train split of {data.shards}"
    shortest = data.min_clip or data.window
    found = len({row.speaker for row in read_manifest(data.manifest, ["train"])
                 if row.samples_at(data.sample_rate) >= shortest})
    return found, f"{found} speakers in the train split of {data.manifest} (clips of at least {shortest} samples)"


def phones_path(data) -> str:
    return data.phones or str(Path(data.manifest).parent / "phones.txt")


def count_phones(cfg) -> tuple:
    """(phone classes of the frame labels, in words); refuses data that cannot carry frame labels."""
    data = cfg.data
    if data.kind == "shards":
        top = read_index(data.shards).get("phone_max")
        if top is None:
            raise ConfigError(f"objective.online_phones=true needs frame labels, and the shards of {data.shards} "
                              f"hold none: pack a corpus with phones.txt, or set objective.online_phones=false")
        return top + 1, f"phone index {top} in the shards of {data.shards}"
    if data.kind != "manifest":
        raise ConfigError("objective.online_phones=true needs a speech corpus with frame labels: data.kind=manifest "
                          "data.manifest=PATH (with phones.txt beside it, or data.phones=PATH)")
    phones = phones_path(data)
    if not Path(phones).is_file():
        raise ConfigError(f"objective.online_phones=true needs frame labels, and {phones} does not exist: give "
                          f"data.phones=PATH (phones.txt format: an utterance id, then one phone index per 10 ms) "
                          f"or set objective.online_phones=false")
    try:
        labels = read_phones(phones)
    except DataError as err:
        raise ConfigError(f"data.phones: {err}") from err
    trained = [row.id for row in read_manifest(data.manifest, ["train"]) if len(labels.get(row.id, ()))]
    if not trained:
        raise ConfigError(f"objective.online_phones=true: no train utterance of {data.manifest} has labels in "
                          f"{phones} (its first column must hold the manifest's ids)")
    top = max(int(v.max()) for v in labels.values() if len(v))  # validation labels index the head too
    return top + 1, f"phone index {top} in {phones}"


def complete_audio(cfg, objective) -> None:
    """The frame labels' file when the objective asks for them (else none: the windows carry no labels, so a
    config derived from a probed run does not carry them into another objective), and views of 3/4 a window."""
    data, section = cfg.data, cfg.objective
    wants_frames = "frame_labels" in objective.needs(section) and data.kind != "synthetic"
    data.phones = ("shards" if data.kind == "shards" else phones_path(data)) if wants_frames else ""
    if data.kind == "shards" and not data.manifest and data.shards:  # the probes' corpus: the one packed
        packed = Path(read_index(data.shards).get("manifest") or "")
        data.manifest = str(packed) if packed.is_file() else ""
    if hasattr(section, "views") and not section.views.length:
        section.views.length = data.window * 3 // 4  # the views follow the window unless the config says otherwise
    if hasattr(section, "augment_past") and active(section.augment_past) and not section.augment_past.sample_rate:
        section.augment_past.sample_rate = data.sample_rate


def check_augment_past(options, sample_rate: int) -> None:
    """Refuse ranges given high before low, and effects set for another rate than the data's."""
    for name in ("rt60", "band_hz", "snr_db"):
        pair = getattr(options, name)
        if len(pair) != 2 or pair[0] > pair[1]:
            raise ConfigError(f"objective.augment_past.{name}={pair} must be two numbers [low, high], low <= high")
    if options.sample_rate not in (0, sample_rate):
        raise ConfigError(f"objective.augment_past.sample_rate={options.sample_rate} differs from data.sample_rate="
                          f"{sample_rate}: leave it 0 (the data's rate)")


def check_views(cfg, objective) -> None:
    """Refuse views that a window cannot give."""
    views = audio_views_from_config(cfg.objective.views, cfg.data.window)  # raises when the window is too short
    field = receptive_field(*frames_of(cfg.model.encoder))
    if views.length < field:
        raise ConfigError(f"objective.views.length={views.length} is shorter than the encoder's receptive field "
                          f"({field} samples)")


def batch_statistics(cfg: AudioModelConfig) -> str:
    return "model.encoder.norm=batch" if cfg.encoder.kind == "conv" and cfg.encoder.norm == "batch" else ""
