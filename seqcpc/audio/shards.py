"""Training windows streamed from a sharded corpus (data.kind=shards), written by data_prep/shards.py.

Item shapes as seqcpc.audio.windows: x (1, L) float32, group () int64, length () int64 for padded windows,
labels (U,) int64 with frame labels; but the dataset yields whole batches (B, ...), so a loader takes it with
batch_size=None.

A shard folder holds index.json and, per split, POSIX tar shards in the WebDataset layout (one utterance a key:
<key>.<audio extension> with the audio file's bytes, <key>.json, <key>.phones with int16 frame labels) and
beside each shard <shard>.tsv listing its items (key, id, speaker, samples, sample_rate) in tar order.
index.json: {"format": 1, "order": "shuffled" | "speaker", "speakers": [...train speakers],
"manifest": the corpus it was packed from, "phone_max": int | null, "splits": {split: [{"tar", "items",
"speakers": {speaker: items}, "bytes"}, ...]}}; a tar path is relative to the folder and may be listed twice.
The folder is a local path, a URL that WebDataset's gopen reads (http://, https://, gs://, ...: each file is the
URL joined with its relative path), or a command with {} for the relative path, e.g.
'pipe:aws s3 cp s3://bucket/shards/{} -' (each file is the command's output, read as a stream).

How an epoch is laid out, so that every rank and worker reads a disjoint part, all of them the same number of
batches, and a resumed run sees exactly the batches it would have seen:
- the split's shards are permuted by (seed, epoch) and dealt to S = world size x max(1, data.num_workers)
  slots, k = shards // S each (the few left over this epoch are read in another);
- each shard gives c batches, c the fewest any shard of the split gives (from index.json alone): uniform
  batches are its items shuffled by (seed, epoch, shard) in groups of B; speaker batches are each speaker's
  items shuffled in groups of B, a speaker with fewer than B topped up with other windows of its utterances;
  utterance batches are B windows of one utterance;
- the DataLoader takes batches from its workers in turn, so the i-th batch of a rank's epoch is batch i // W of
  the slot i % W (W workers): the position (epoch, batches done) is all a resumed run needs, and shards before
  it are skipped without being read.
Memory holds the index (a few numbers per shard) and one shard's windows, whatever the size of the corpus. A
clip shorter than data.min_clip (or the window) or one that cannot be read gives its place to another window
of the same shard (of the same speaker for speaker batches), counted in `usage()`.
"""
import csv
import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from seqcpc.audio.io import read_audio
from seqcpc.audio.windows import window_labels
from seqcpc.errors import DataError
from seqcpc.files import existing_file

INDEX, FORMAT = "index.json", 1
BATCHINGS = ("uniform", "speaker", "utterance")


def location(folder, rel: str) -> str:
    """Where the file `rel` of a shard folder is: a path, a URL, or the folder's command with {} filled in."""
    folder = str(folder)
    if "{}" in folder:
        return folder.replace("{}", rel)
    if "://" in folder:
        return folder.rstrip("/") + "/" + rel
    return str(Path(folder) / rel)


def read_file(folder, rel: str, what: str) -> bytes:
    """The bytes of the file `rel` of a shard folder; a missing one is named as `what`."""
    where = location(folder, rel)
    if "{}" not in str(folder) and "://" not in str(folder):
        return existing_file(where, what).read_bytes()
    from webdataset import gopen

    try:
        with gopen(where, "rb") as f:
            data = f.read()
    except Exception as err:  # the transports raise their own types
        raise DataError(f"{what} {where} could not be read: {err}") from err
    if not data:
        raise DataError(f"{what} {where} could not be read: it is empty or the command/URL gave nothing")
    return data


def read_index(folder) -> dict:
    """index.json of a shard folder, checked to be one seqcpc can read."""
    path = location(folder, INDEX)
    try:
        index = json.loads(read_file(folder, INDEX, "shard index"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DataError(f"{path} is not a shard index (JSON): {err}") from err
    if not isinstance(index, dict) or index.get("format") != FORMAT or not isinstance(index.get("splits"), dict):
        raise DataError(f"{path} is not a format-{FORMAT} seqcpc shard index (written by data_prep/shards.py)")
    return index


def shard_batch_count(entry: dict, batching: str, batch_size: int, per_clip: int = 1) -> int:
    """Batches one shard gives, from its index entry alone (per_clip windows of each clip)."""
    if batching == "uniform":
        return entry["items"] * per_clip // batch_size
    if batching == "utterance":
        return entry["items"]
    return sum(max(1, n * per_clip // batch_size) for n in entry["speakers"].values() if n > 0)


@dataclass
class Item:
    key: str
    id: str
    speaker: str
    samples: int  # at data.sample_rate


def read_items(folder, tar: str, sample_rate: int) -> list[Item]:
    """The items of a shard, in tar order, from the .tsv beside it."""
    rel = str(Path(tar).with_suffix(".tsv"))
    path = location(folder, rel)
    text = read_file(folder, rel, "shard item list").decode()
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter="\t", quoting=csv.QUOTE_NONE))
    try:
        return [Item(key, uid, speaker, round(int(samples) * sample_rate / int(rate)))
                for key, uid, speaker, samples, rate in rows]
    except ValueError as err:
        raise DataError(f"{path}: not a shard item list (key, id, speaker, samples, sample_rate): {err}") from err


class ShardWindows(IterableDataset):
    """Batches of random windows of one split of a shard folder (see the module docstring for the layout of an
    epoch). `distribute(world_size, rank, num_workers)` before iterating; `set_position(epoch, batches_done)`."""

    def __init__(self, folder, split: str, window: int, sample_rate: int, batch_size: int, seed: int = 0,
                 batching: str = "uniform", min_clip: int = 0, frames: bool = False, shuffle: bool = True,
                 speakers: list[str] | None = None, on_bad_file: str = "skip", per_clip: int = 1):
        if batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {BATCHINGS}, not {batching!r}")
        if per_clip > 1 and batching == "utterance":
            raise ValueError("utterance batches are already several windows of a clip: per_clip must be 1")
        self.folder, self.split, self.window, self.sample_rate = str(folder), split, window, sample_rate
        self.batch_size, self.seed, self.batching, self.shuffle = batch_size, seed, batching, shuffle
        self.min_clip, self.padded = min_clip or window, 0 < min_clip < window
        self.frames, self.on_bad_file, self.per_clip = frames, on_bad_file, per_clip
        self.label_frames = window * 100 // sample_rate  # U
        index = read_index(folder)
        entries = index["splits"].get(split) or []
        if not entries:
            raise DataError(f"{location(folder, INDEX)}: the split {split!r} has no shards")
        if batching == "speaker" and index.get("order") != "speaker":
            raise DataError(f"data.batching=speaker reads shards packed in speaker order, and {self.folder} was "
                            f"packed in {index.get('order')!r} order: repack with data_prep/shards.py --order speaker")
        self.tars = [e["tar"] for e in entries]
        counts = np.array([shard_batch_count(e, batching, batch_size, per_clip) for e in entries])
        self.per_shard = int(counts.min())  # c
        if self.per_shard == 0:
            small = int(np.argmin(counts))
            raise DataError(f"{self.folder}: shard {self.tars[small]} ({entries[small]['items']} utterances) gives "
                            f"no batch of {batch_size}: repack with larger shards (data_prep/shards.py --shard-mb) "
                            f"or use a smaller data.batch_size")
        self.items = int(sum(e["items"] for e in entries))
        self.speakers = speakers or list(index.get("speakers") or [])
        self.group_of = {s: i for i, s in enumerate(self.speakers)}
        self.epoch, self.done, self.world_size, self.rank, self.workers = 0, 0, 1, 0, 1
        self.replaced: dict[str, int] = {}  # why a window gave its place -> how many (this process)
        self.bad_files: list[str] = []

    # -- the layout of an epoch ----------------------------------------------------------------------------------

    def distribute(self, world_size: int, rank: int, num_workers: int) -> None:
        """This rank's share: its slots are rank x W .. rank x W + W - 1 of world_size x W (W workers, 1 for 0)."""
        self.world_size, self.rank, self.workers = world_size, rank, max(1, num_workers)
        slots = world_size * self.workers
        if len(self.tars) < slots:
            raise DataError(f"{self.folder}: the {self.split} split has {len(self.tars)} shards, and {world_size} "
                            f"devices x {self.workers} loader workers need at least {slots} (one each): repack "
                            f"with smaller shards (data_prep/shards.py --shard-mb) or set fewer data.num_workers")

    @property
    def shards_per_slot(self) -> int:
        return len(self.tars) // (self.world_size * self.workers)

    def set_position(self, epoch: int, batches_done: int = 0) -> None:
        self.epoch, self.done = epoch, batches_done

    def set_epoch(self, epoch: int) -> None:
        self.set_position(epoch)

    def __len__(self) -> int:
        return self.workers * self.shards_per_slot * self.per_shard - self.done

    def slot_shards(self, slot: int) -> np.ndarray:
        """The shard numbers slot `slot` reads this epoch, in order."""
        order = np.arange(len(self.tars))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        return order[slot::self.world_size * self.workers][: self.shards_per_slot]

    def plan(self, shard: int, items: list[Item]) -> list[list[tuple[int, int]]]:
        """The shard's first c batches, each a list of (item position, window number): windows 0 .. per_clip - 1
        of an item are its random windows this epoch, a later one another (a top-up)."""
        rng = np.random.default_rng([self.seed, self.epoch, shard, 1])
        B, n, k = self.batch_size, len(items), self.per_clip
        if self.batching == "utterance":
            order = rng.permutation(n) if self.shuffle else np.arange(n)
            batches = [[(int(i), r) for r in range(B)] for i in order]
        elif self.batching == "uniform":
            picks = [(i, r) for i in range(n) for r in range(k)]
            order = rng.permutation(len(picks)) if self.shuffle else np.arange(len(picks))
            batches = [[picks[j] for j in order[s:s + B]] for s in range(0, len(picks) - B + 1, B)]
        else:
            batches = []
            for speaker in sorted({item.speaker for item in items}):
                idx = rng.permutation([i for i, item in enumerate(items) if item.speaker == speaker])
                picks = [(int(i), r) for r in range(k) for i in idx]
                picks += [(int(idx[r % len(idx)]), k + r // len(idx)) for r in range(max(0, B - len(picks)))]
                batches += [picks[j:j + B] for j in range(0, len(picks) - B + 1, B)]
            batches = [batches[j] for j in rng.permutation(len(batches))]
        return batches[: self.per_shard]

    # -- reading ---------------------------------------------------------------------------------------------------

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        if info is not None and info.num_workers != self.workers:
            raise DataError(f"the shard loader was laid out for {self.workers} workers and runs with "
                            f"{info.num_workers}; call distribute() with the loader's num_workers")
        local = (self.done + worker) % self.workers  # this worker plays the slot whose batch comes next
        first = (self.done + worker) // self.workers  # its batches already done
        shards = self.slot_shards(self.rank * self.workers + local)
        for j in range(first // self.per_shard, len(shards)):
            skip = first - j * self.per_shard if j == first // self.per_shard else 0
            yield from self.shard_batches(int(shards[j]), skip)

    def shard_batches(self, shard: int, skip: int):
        """The batches of shard `shard` after its first `skip`, collated."""
        items = read_items(self.folder, self.tars[shard], self.sample_rate)
        batches = self.plan(shard, items)[skip:]
        wanted = {pick for batch in batches for pick in batch}
        windows = self.read_windows(shard, items, wanted)
        for batch in batches:
            yield self.collate([windows[pick] for pick in batch])

    def read_windows(self, shard: int, items: list[Item], wanted: set) -> dict:
        """{(item, window number): (x, length, labels)} for every window `wanted`, in one pass over the tar; a
        window of a short or unreadable clip is another window of the shard (of the same speaker for speaker
        batches)."""
        from webdataset.tariterators import group_by_keys, tar_file_expander, url_opener

        by_key = {item.key: i for i, item in enumerate(items)}
        per_item: dict[int, list[int]] = {}
        for i, r in wanted:
            per_item.setdefault(i, []).append(r)
        windows = {}
        url = location(self.folder, self.tars[shard])
        try:
            for sample in group_by_keys(tar_file_expander(url_opener([{"url": url}]))):
                i = by_key.get(sample["__key__"])
                if i not in per_item or items[i].samples < self.min_clip:  # gives its place (fill_gaps)
                    continue
                try:
                    for r in per_item[i]:
                        windows[i, r] = self.crop(shard, i, r, items[i], sample, url)
                except DataError as err:
                    self.bad_file(str(err))
        except DataError:
            raise
        except Exception as err:  # a truncated tar, a failed transfer: the windows read so far are kept
            self.bad_file(f"{url}: the shard could not be read to its end ({type(err).__name__}: {err})")
        return self.fill_gaps(windows, wanted, items, url)

    def bad_file(self, why: str) -> None:
        """Stop at a shard or clip that cannot be read (on_bad_file=stop), or warn and go on."""
        if self.on_bad_file == "stop":
            raise DataError(why)
        self.bad_files.append(why)
        print(f"warning: skipping a window: {why}", file=sys.stderr, flush=True)

    def crop(self, shard: int, i: int, r: int, item: Item, sample: dict, url: str):
        """(x (1, L), valid samples, labels (U,) or None, group) of window r of item i; DataError for a clip that
        cannot be read."""
        name = f"{url}:{item.key} ({item.id})"
        audio = next((v for k, v in sample.items() if k not in ("__key__", "__url__", "json", "phones")), None)
        if audio is None:
            raise DataError(f"{name}: no audio member in the shard")
        n, start = item.samples, 0
        if n < self.window:
            x = np.zeros(self.window, dtype=np.float32)
            x[:n] = read_audio(name, 0, n, self.sample_rate, data=audio)
        else:
            rng = np.random.default_rng([self.seed, self.epoch, shard, i, r])
            start = int(rng.integers(0, n - self.window + 1))
            x = read_audio(name, start, self.window, self.sample_rate, data=audio)  # (L,)
        labels = None
        if self.frames:
            phones = np.frombuffer(sample.get("phones", b""), dtype="<i2")
            labels = window_labels(phones, start, n, self.label_frames, self.sample_rate)
        return torch.from_numpy(x)[None], min(n, self.window), labels, self.group_of.get(item.speaker, -1)

    def fill_gaps(self, windows: dict, wanted: set, items: list[Item], url: str) -> dict:
        """Give each wanted window that could not be read the place of a window that was, of the same speaker
        for speaker batches (the next in the shard's order)."""
        missing = sorted(wanted - set(windows))
        if not missing:
            return windows
        read = sorted(windows)
        for pick in missing:
            speaker = items[pick[0]].speaker
            same = [p for p in read if self.batching != "speaker" or items[p[0]].speaker == speaker]
            if not same:
                whose = f"speaker {speaker}" if self.batching == "speaker" else "the shard"
                raise DataError(f"{url}: no window of {whose} could be read (all its clips are shorter than "
                                f"{'data.min_clip' if self.padded else 'the window'} or unreadable)")
            windows[pick] = windows[next((p for p in same if p > pick), same[0])]
            why = "short" if items[pick[0]].samples < self.min_clip else "unreadable"
            self.replaced[why] = self.replaced.get(why, 0) + 1
        return windows

    def collate(self, windows: list) -> tuple:
        x = torch.stack([w[0] for w in windows])  # (B, 1, L)
        group = torch.tensor([w[3] for w in windows], dtype=torch.int64)  # (B,)
        if self.frames:
            length = torch.tensor([w[1] for w in windows], dtype=torch.int64)
            return x, group, length, torch.stack([w[2] for w in windows])  # labels (B, U)
        if self.padded:
            return x, group, torch.tensor([w[1] for w in windows], dtype=torch.int64)
        return x, group

    def usage(self) -> str:
        """What the dataset reads, e.g. "12 shards, 3400 utterances; 2 windows a batch from shards ..."."""
        first, slots = self.rank * self.workers, self.world_size * self.workers
        mine = f"slot {first}" if self.workers == 1 else f"slots {first}-{first + self.workers - 1}"
        layout = (f"{len(self.tars)} shards of {self.split} ({self.items} utterances), {self.shards_per_slot} "
                  f"per loader slot and epoch, {self.per_shard} batches of {self.batch_size} each; this rank "
                  f"reads {mine} of {slots}")
        return layout + "".join(f"; {n} {why} windows replaced so far" for why, n in self.replaced.items())
