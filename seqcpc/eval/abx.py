"""ABX phone discrimination (ZeroSpeech / Libri-light): is a phone closer to another token of itself than to a
token of another phone said in the same context?

An item file (data_prep.abx_items, or any corpus's file in the same format) lists phone tokens: file (the
manifest id), onset and offset in seconds, phone, previous and next phone, speaker. The features of a token are
the frames whose centres fall in [onset, offset] (at least one). For a triplet (A, B, X) with A and X tokens of
phone a, B of phone b, all three in the same context (previous, next phone), X is right when
dtw(X, A) < dtw(X, B), half right on a tie (seqcpc.eval.dtw: angular frame distance, DTW cost over path length).
  within   A, B, X from one speaker (X another token than A)
  across   A and B from one speaker, X from another
Scores are averaged over the triplets of each (context, speaker(s), phone pair), then over contexts, then over
speakers, then over phone pairs (Libri-light's order); the error rate is 1 - score.
Work is capped as Libri-light does: at most `max_per_group` tokens of each (phone, context, speaker) and, across,
at most `max_x_speakers` X speakers for each (context, A speaker), both drawn with `seed`. The features cost
the most (a model's forward pass over every file): `files_per_speaker` keeps the first files of each speaker.

Modality-agnostic: a `load(file)` callable gives a file's waves; seqcpc.audio.abx reads them from a manifest.

Shapes: L samples, T frames, D feature dim.
"""
import math
import time
from collections import defaultdict
from pathlib import Path
from typing import NamedTuple

import numpy as np

from seqcpc.errors import ConfigError, DataError
from seqcpc.eval.dtw import pair_distances

MODES = ("within", "across")


class Item(NamedTuple):
    file: str  # manifest id
    onset: float  # seconds
    offset: float
    phone: str
    prev: str
    next: str
    speaker: str


class NoTriplet(DataError):
    """Items that make no ABX triplet: a corpus too small for ABX, not a malformed item file."""


def read_items(path) -> list[Item]:
    """The tokens of an item file (header `#file onset offset #phone prev-phone next-phone speaker`); a file that
    is missing, not text, empty or malformed (wrong columns, times that are not a span) is refused with its row."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"ABX item file {path} does not exist (write one with python -m data_prep.abx_items)")
    try:
        lines = path.read_text().split("\n")
    except UnicodeDecodeError as err:
        raise DataError(f"ABX item file {path} is not text ({err})") from err
    items = []
    for line_no, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or (line_no == 1 and parts[0] == "#file"):
            continue
        if len(parts) != 7:
            raise DataError(f"{path}:{line_no}: expected 7 space-separated fields (file onset offset phone "
                            f"prev-phone next-phone speaker), got {len(parts)}")
        try:
            onset, offset = float(parts[1]), float(parts[2])
        except ValueError as err:
            raise DataError(f"{path}:{line_no}: onset and offset must be seconds ({err})") from err
        if not 0 <= onset < offset < math.inf:
            raise DataError(f"{path}:{line_no}: onset {onset} and offset {offset} are not a time span")
        items.append(Item(parts[0], onset, offset, *parts[3:]))
    if not items:
        raise DataError(f"ABX item file {path} holds no items")
    return items


def frame_span(onset: float, offset: float, frame_rate: float, num_frames: int) -> slice:
    """The frames whose centres ((t + 0.5) / frame_rate) fall in [onset, offset]; for a span shorter than a
    frame, the frame nearest its middle; always at least one frame of the num_frames there are."""
    start = math.ceil(onset * frame_rate - 0.5 - 1e-6)
    stop = math.floor(offset * frame_rate - 0.5 + 1e-6) + 1
    if stop <= start:
        start = round((onset + offset) / 2 * frame_rate - 0.5)
        stop = start + 1
    start = min(max(start, 0), num_frames - 1)
    return slice(start, min(max(stop, start + 1), num_frames))


def token_features(extractors: dict, load, items, frame_rate: float = 100) -> dict:
    """{name: [frames (T_i, D) of each item]} for several extractors (waves (1, L) -> frames (1, T, D) at
    frame_rate); load(file) gives the waves (1, L) of a file, called once per file."""
    by_file = defaultdict(list)
    for i, item in enumerate(items):
        by_file[item.file].append(i)
    out = {name: [None] * len(items) for name in extractors}
    for uid, members in by_file.items():
        waves = load(uid)  # (1, L)
        for name, fn in extractors.items():
            frames = fn(waves)[0].float()  # (T, D)
            for i in members:
                out[name][i] = frames[frame_span(items[i].onset, items[i].offset, frame_rate, len(frames))].clone()
    return out


def capped_groups(items, max_per_group: int, seed: int) -> dict:
    """{(context, speaker): {phone: [item index]}} with at most max_per_group items per phone (0: all)."""
    groups = defaultdict(lambda: defaultdict(list))
    for i, item in enumerate(items):
        groups[(item.prev, item.next), item.speaker][item.phone].append(i)
    rng = np.random.default_rng(seed)
    for by_phone in groups.values():
        for phone, members in by_phone.items():
            if max_per_group and len(members) > max_per_group:
                by_phone[phone] = sorted(rng.choice(members, max_per_group, replace=False).tolist())
    return groups


class Block(NamedTuple):
    """The triplets of one (context, speaker(s)): X from `xs`, A and B from `refs`."""
    context: tuple
    speakers: tuple  # (speaker,) within, (A/B speaker, X speaker) across
    xs: dict  # {phone: [item index]}
    refs: dict


def triplet_blocks(items, mode: str, max_per_group: int = 10, max_x_speakers: int = 5, seed: int = 0) -> list:
    """[Block] of every (context, speaker(s)) that makes a triplet in `mode`, after the caps."""
    if mode not in MODES:
        raise ConfigError(f"ABX mode {mode!r} is not one of {', '.join(MODES)}")
    capped = capped_groups(items, max_per_group, seed)
    groups = {key: dict(by_phone) for key, by_phone in capped.items() if len(by_phone) > 1}  # two phones or none
    if mode == "within":
        return [Block(ctx, (spk,), by_phone, by_phone) for (ctx, spk), by_phone in groups.items()]
    by_context = defaultdict(dict)
    for (ctx, spk), by_phone in capped.items():
        by_context[ctx][spk] = dict(by_phone)
    rng, blocks = np.random.default_rng(seed), []
    for (ctx, spk), refs in groups.items():
        others = sorted(s for s, xs in by_context[ctx].items() if s != spk and set(xs) & set(refs))
        if max_x_speakers and len(others) > max_x_speakers:
            others = sorted(rng.choice(others, max_x_speakers, replace=False).tolist())
        for other in others:
            xs = {p: members for p, members in by_context[ctx][other].items() if p in refs}
            blocks.append(Block(ctx, (spk, other), xs, refs))
    return blocks


def block_pairs(blocks) -> list[tuple[int, int]]:
    """Every (X, reference) item pair the blocks compare, each unordered pair once."""
    pairs = set()
    for block in blocks:
        refs = [i for members in block.refs.values() for i in members]
        for members in block.xs.values():
            pairs.update((min(x, r), max(x, r)) for x in members for r in refs if x != r)
    return sorted(pairs)


def phone_slices(by_phone: dict) -> tuple[list, dict]:
    """([item index] of all phones in turn, {phone: slice of its items in that list})."""
    flat, slices = [], {}
    for phone, members in by_phone.items():
        slices[phone] = slice(len(flat), len(flat) + len(members))
        flat += members
    return flat, slices


def block_scores(block, distance) -> dict:
    """{(phone a, phone b): share of the block's triplets (X, A of a, B of b) with X closer to A}."""
    (xs, row), (refs, col) = phone_slices(block.xs), phone_slices(block.refs)
    d = np.array([[distance(x, r) for r in refs] for x in xs])  # (X, R)
    other = np.array(xs)[:, None] != np.array(refs)  # (X, R): the triplet's A must be another token than X
    out = {}
    for a in block.xs:
        counted = other[row[a], col[a]]  # (X, A)
        if not counted.any():
            continue
        d_xa = d[row[a], col[a]][:, :, None]  # (X, A, 1)
        for b in block.refs:
            if b != a:
                d_xb = d[row[a], col[b]][:, None]  # (X, 1, B)
                right = (d_xa < d_xb) + 0.5 * (d_xa == d_xb)  # (X, A, B)
                out[a, b] = float(right[counted].mean())
    return out


def abx_errors(features, items, mode: str, max_per_group: int = 10, max_x_speakers: int = 5, seed: int = 0,
               max_floats: int = 2 ** 24) -> float:
    """ABX error rate (1 - score) of one feature set: features[i] (T_i, D) are the frames of items[i]."""
    if len(features) != len(items):
        raise ValueError(f"abx_errors: {len(features)} feature sequences for {len(items)} items")
    blocks = triplet_blocks(items, mode, max_per_group, max_x_speakers, seed)
    pairs = block_pairs(blocks)
    if not pairs:
        raise NoTriplet(f"ABX {mode}: no triplet: no context holds two phones of one speaker"
                        + (" and a token of one of them from another speaker" if mode == "across" else ""))
    first, second = np.array(pairs).T  # (P,) each
    dist = pair_distances(features, first, second, max_floats).tolist()
    slot = {pair: n for n, pair in enumerate(pairs)}

    def distance(i, j):
        return dist[slot[min(i, j), max(i, j)]] if i != j else 0.0

    # (a, b) -> speakers -> [score of each context]: averaged over contexts, speakers, then phone pairs
    nested = defaultdict(lambda: defaultdict(list))
    for block in blocks:
        for phones, score in block_scores(block, distance).items():
            nested[phones][block.speakers].append(score)
    if not nested:
        raise NoTriplet(f"ABX {mode}: no triplet: no phone has two tokens in a context of one speaker")
    per_pair = [np.mean([np.mean(ctx_scores) for ctx_scores in by_speakers.values()])
                for by_speakers in nested.values()]
    return 1.0 - float(np.mean(per_pair))


def first_files(items, per_speaker: int) -> list[Item]:
    """The items of the first `per_speaker` files of each speaker, in item-file order (0: all items)."""
    if not per_speaker:
        return list(items)
    kept = defaultdict(list)
    for item in items:
        if item.file not in kept[item.speaker] and len(kept[item.speaker]) < per_speaker:
            kept[item.speaker].append(item.file)
    return [item for item in items if item.file in kept[item.speaker]]


def abx_table(extractors: dict, load, items, frame_rate: float = 100, max_per_group: int = 10,
              max_x_speakers: int = 5, seed: int = 0, modes=MODES, log=print) -> dict:
    """{name: {"abx_within": error, "abx_across": error}} of each extractor on `items`, each file loaded once
    (see token_features); max_per_group, max_x_speakers and seed cap the triplets (see abx_errors)."""
    began = time.perf_counter()
    features = token_features(extractors, load, items, frame_rate)
    log(f"ABX: features of {len(items)} items of {len({i.file for i in items})} files for {len(extractors)} "
        f"feature sets in {time.perf_counter() - began:.1f} s")
    results = {}
    for name, feats in features.items():
        results[name] = {}
        for mode in modes:
            began = time.perf_counter()
            results[name][f"abx_{mode}"] = abx_errors(feats, items, mode, max_per_group, max_x_speakers, seed)
            log(f"  {name}: abx_{mode} {100 * results[name][f'abx_{mode}']:.2f}% "
                f"({time.perf_counter() - began:.1f} s)")
    return results
