"""The audio entry of the modality registry: 1-D sequences (raw audio from a manifest, or built-in synthetic
sequences) through a strided conv encoder and a recurrent or transformer context."""
from functools import partial

import numpy as np

from seqcpc.audio.parts import (AudioParts, batch_statistics, check_audio_config, complete_audio, count_phones,
                               count_speakers)
from seqcpc.audio.config import (AudioDataConfig, AudioModelConfig, AudioViewsConfig, AugmentPastConfig,
                                 SpeechProbeConfig)
from seqcpc.audio.eval import run_speech_probes
from seqcpc.audio.fewshot import audio_episode_data, audio_frozen_features
from seqcpc.audio.manifest import read_phones
from seqcpc.audio.shards import ShardWindows
from seqcpc.audio.sizes import SIZES
from seqcpc.audio.synthetic import DriftingSines
from seqcpc.audio.windows import GroupBatchSampler, WindowDataset
from seqcpc.modalities import Modality


def audio_datasets(cfg: AudioDataConfig, seed: int):
    """(train, validation): windows of a manifest's train and test splits (with their frame labels when
    data.phones is set, for the online phone probe), batches of a shard folder's, or synthetic sequences."""
    if cfg.kind == "synthetic":
        train = DriftingSines(cfg.num_sequences, cfg.window, cfg.groups, seed=seed)
        return train, DriftingSines(cfg.val_sequences, cfg.window, cfg.groups, seed=seed + 1)
    if cfg.kind == "shards":
        shards = partial(ShardWindows, cfg.shards, window=cfg.window, sample_rate=cfg.sample_rate,
                         batch_size=cfg.batch_size, seed=seed, min_clip=cfg.min_clip, frames=bool(cfg.phones),
                         on_bad_file=cfg.on_bad_file)
        train = shards("train", batching=cfg.batching, per_clip=cfg.windows_per_clip)
        return train, shards("test", shuffle=False, speakers=train.speakers)
    window = partial(WindowDataset, cfg.manifest, window=cfg.window, sample_rate=cfg.sample_rate, seed=seed,
                     allow_outside_paths=cfg.allow_outside_paths, on_bad_file=cfg.on_bad_file,
                     min_clip=cfg.min_clip, frames=read_phones(cfg.phones) if cfg.phones else None)
    train = window(["train"])
    return train, window(["test"], speakers=train.speakers)


def audio_batch_sampler(dataset, cfg, world_size: int, rank: int, seed: int, train: bool = True):
    """Batches of one speaker (data.batching=speaker) or of one utterance (utterance) in training, None (the
    loop's batches) otherwise."""
    if not train or cfg.data.batching == "uniform" or cfg.data.kind == "shards":  # shards batch themselves
        return None
    groups = dataset.groups if cfg.data.batching == "speaker" else np.arange(len(dataset))
    return GroupBatchSampler(groups, cfg.data.batch_size, world_size, rank, seed, dataset=dataset)


AUDIO = Modality(
    name="audio", model_config=AudioModelConfig, data_config=AudioDataConfig, probe_config=SpeechProbeConfig,
    parts=AudioParts, check=check_audio_config, complete=complete_audio, datasets=audio_datasets,
    evaluate=run_speech_probes, part_configs={"views": AudioViewsConfig, "augment_past": AugmentPastConfig},
    gives=frozenset({"labels", "frame_labels"}),
    count_classes=count_speakers, count_frame_classes=count_phones, batch_sampler=audio_batch_sampler,
    item_labels=lambda dataset: dataset.groups, items="windows", batch_statistics=batch_statistics, sizes=SIZES,
    episode_data=audio_episode_data, frozen_features=audio_frozen_features,
)
