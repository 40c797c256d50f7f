"""Build the embedded multi-speaker speech corpus with eSpeak NG, with exact phone alignments.

    python -m data_prep.espeak_corpus --out data/espeak [--speakers 100] [--heldout-speakers 20]
        [--utterances 40] [--variation on|off] [--workers 2] [--seed 0] [--tail 0] [--min-utterances 4]

A speaker is an eSpeak voice variant x English accent x base pitch, pitch range and rate. With variation on
(the default) every utterance jitters pitch (+-10 on eSpeak's 0-100 scale), range (+-10) and rate (+-15%)
around its speaker's values and passes through a random channel (first-order spectral tilt) with white noise
at 10-30 dB SNR, so that speaker identity is not a fixed spectrum. Each utterance's settings are in the
manifest's meta column. Audio is resampled to 16 kHz and written as FLAC; phones.txt holds one phone index
per 10 ms frame (phones_vocab.txt names them). Splits: the last 20% of each speaker's utterances are "test";
the held-out speakers' utterances are all "heldout" (few-shot evaluation, never seen in pretraining).

Long tail (`--tail ALPHA` > 0, for head / tail speaker benchmarks as in SDCLR): the speaker of rank r (0-based,
in an order drawn from the seed, not the voice order) keeps max(MIN, round(N * (r + 1) ** -ALPHA)) of its "train"
utterances, where N is the train share of --utterances (32 of 40) and MIN is --min-utterances (never above N).
Only the train share is thinned: every speaker keeps the same "test" utterances (8 of 40), so each speaker's
probe score rests on as many windows; held-out speakers are unchanged. The kept utterances are the ones a
balanced corpus of the same seed has (same ids, texts and audio), and speaker_counts.json records each
speaker's train utterances. --tail 0 (the default) is the balanced corpus and writes no speaker_counts.json.

Deterministic for a seed (breathy variants are left out: their noise is not). Idempotent: a second run with
the same options does nothing, and a run killed midway resumes with the utterances already written.
"""
import argparse
import json
import sys
import time
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from data_prep import abx_items
from data_prep import espeak_synth as es
from data_prep.sentences import sentences
from seqcpc.audio.io import write_flac
from seqcpc.audio.manifest import Utterance, write_manifest, write_phones
from seqcpc.argtypes import count, nonnegative, positive
from seqcpc.errors import report_errors
from seqcpc.files import atomic_write_text, claim_output

MIN_UTTERANCES = 4  # a rare speaker's train utterances at least, by default
ACCENTS = ("en-us", "en-gb", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029")
SAMPLE_RATE = 16000
# what a build writes in --out
ENTRIES = ("manifest.tsv", "prep_fingerprint.txt", "phones.txt", "phones_vocab.txt", "speaker_counts.json",
           "abx_test.item", "audio")


def speaker_voices(count: int, seed: int) -> list[es.Voice]:
    """`count` distinct speakers: variant x accent x base pitch / range / rate, drawn from the seed."""
    rng = np.random.default_rng([seed, 1])
    languages = [a for a in ACCENTS if a in set(es.list_languages())]
    variants = es.list_variants()
    combos = [(lang, var) for var in variants for lang in languages]
    picks = rng.permutation(len(combos))[:count]
    if len(picks) < count:
        raise ValueError(f"only {len(combos)} accent x variant combinations exist for {count} speakers")
    return [es.Voice(combos[i][0], combos[i][1], pitch=int(rng.integers(25, 76)), rate=int(rng.integers(135, 206)),
                     range=int(rng.integers(30, 71))) for i in picks]


def tail_profile(head: int, speakers: int, alpha: float, floor: int) -> list[int]:
    """Train utterances by rank: head * (r + 1) ** -alpha, rounded, at least `floor` and at most `head`."""
    return [min(head, max(floor, round(head * (r + 1) ** -alpha))) for r in range(speakers)]


def speaker_train_counts(speakers: int, head: int, alpha: float, floor: int, seed: int) -> dict[str, int]:
    """{speaker: train utterances}: the tail profile dealt to the speakers in an order drawn from the seed."""
    rank = np.random.default_rng([seed, 4]).permutation(speakers)  # rank[s]: speaker s's place in the profile
    profile = tail_profile(head, speakers, alpha, floor)
    return {f"spk{s:03d}": profile[rank[s]] for s in range(speakers)}


def utterance_jobs(voices, utterances: int, variation: bool, seed: int, out: Path) -> list[dict]:
    texts = sentences(len(voices) * utterances, seed)
    jobs = []
    for s, voice in enumerate(voices):
        rng = np.random.default_rng([seed, 2, s])
        for u in range(utterances):
            v = dict(vars(voice))
            tilt, snr = 0.0, None
            if variation:
                v["pitch"] = int(np.clip(voice.pitch + rng.integers(-10, 11), 0, 100))
                v["range"] = int(np.clip(voice.range + rng.integers(-10, 11), 0, 100))
                v["rate"] = int(np.clip(round(voice.rate * rng.uniform(0.85, 1.15)), 80, 450))
                tilt, snr = round(float(rng.uniform(-0.8, 0.8)), 3), round(float(rng.uniform(10, 30)), 1)
            uid = f"spk{s:03d}_{u:03d}"
            jobs.append({"id": uid, "speaker": f"spk{s:03d}", "text": texts[s * utterances + u], "voice": v,
                         "tilt": tilt, "snr_db": snr, "path": out / "audio" / f"spk{s:03d}" / f"{uid}.flac",
                         "noise_seed": [seed, 3, s, u]})
    return jobs


def channel(x: np.ndarray, tilt: float, snr_db: float | None, noise_seed) -> np.ndarray:
    """First-order tilt (tilt > 0 darker, < 0 brighter), then white noise at snr_db; peak-normalised."""
    y = x.copy()
    y[1:] += tilt * x[:-1]
    if snr_db is not None:
        noise = np.random.default_rng(noise_seed).standard_normal(len(y))
        y += noise * np.sqrt(np.mean(y**2) / 10 ** (snr_db / 10))
    return (0.9 * y / max(np.abs(y).max(), 1e-6)).astype(np.float32)


def make_utterance(job: dict) -> tuple[str, int, list[str]]:
    """Synthesise, pass through the channel, resample and write one utterance (unless already written)."""
    path = job["path"]
    labels_path = path.with_suffix(".phones")
    if path.exists() and labels_path.exists():
        labels = labels_path.read_text().split()
        return job["id"], len(labels) * SAMPLE_RATE // 100, labels
    import librosa

    wave, rate, phones = es.synthesize(job["text"], es.Voice(**job["voice"]))
    wave = librosa.resample(wave, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
    wave = channel(wave, job["tilt"], job["snr_db"], job["noise_seed"])
    wave = wave[: len(wave) // 160 * 160]  # whole 10 ms frames
    phones = [(p, int(start * SAMPLE_RATE / rate)) for p, start in phones]
    labels = es.frame_labels(phones, len(wave), SAMPLE_RATE)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_flac(path, wave, SAMPLE_RATE)
    atomic_write_text(labels_path, " ".join(labels) + "\n")  # written last: its presence means "done"
    return job["id"], len(wave), labels


def split_of(job: dict, speakers: int, test_from: int, train: dict[str, int]) -> str | None:
    """"heldout", "test", "train", or None for a train utterance its speaker's long-tail count leaves out."""
    s, u = (int(x) for x in job["id"][3:].split("_"))
    if s >= speakers:
        return "heldout"
    if u >= test_from:
        return "test"
    return "train" if u < train[job["speaker"]] else None


def write_abx_items(manifest: Path, log=print, fresh: bool = False) -> None:
    """abx_test.item beside the manifest (the test split's triphones, from the exact alignments), unless it is
    there and the corpus was not rebuilt (`fresh`)."""
    items = manifest.parent / "abx_test.item"
    if fresh or not items.is_file():
        abx_items.build(manifest, "test", items, log=log)


def build(out, speakers=100, heldout_speakers=20, utterances=40, variation=True, workers=2, seed=0,
          test_fraction=0.2, tail=0.0, min_utterances=MIN_UTTERANCES, log=print) -> Path:
    out = Path(out)
    options = {"speakers": speakers, "heldout_speakers": heldout_speakers, "utterances": utterances,
               "variation": variation, "seed": seed, "test_fraction": test_fraction, "version": 1}
    if tail:  # only then, so that a balanced corpus keeps the key it had before --tail existed
        options |= {"tail": float(tail), "min_utterances": min_utterances}
    manifest, stamp, counts_path = out / "manifest.tsv", out / "prep_fingerprint.txt", out / "speaker_counts.json"
    key = json.dumps(options, sort_keys=True)
    if (manifest.is_file() and stamp.is_file() and stamp.read_text().strip() == key
            and counts_path.is_file() == bool(tail)):
        log(f"{manifest} is up to date; nothing to do")
        write_abx_items(manifest, log)
        return manifest
    claim_output(out, "data_prep.espeak_corpus", ENTRIES)
    voices = speaker_voices(speakers + heldout_speakers, seed)
    test_from = round(utterances * (1 - test_fraction))  # a speaker's utterances from this index on are "test"
    train = speaker_train_counts(speakers, test_from, tail, min_utterances, seed)  # test_from each if tail is 0
    jobs = utterance_jobs(voices, utterances, variation, seed, out)
    split = {job["id"]: split_of(job, speakers, test_from, train) for job in jobs}
    jobs = [job for job in jobs if split[job["id"]]]
    if tail:
        log(f"long tail {tail}: {max(train.values())} to {min(train.values())} train utterances per speaker, "
            f"{utterances - test_from} test utterances each")
    log(f"synthesising {len(jobs)} utterances of {len(voices)} speakers with {workers} workers")
    results, t0 = {}, time.time()
    with get_context("spawn").Pool(workers, maxtasksperchild=200) as pool:
        for i, (uid, n, labels) in enumerate(pool.imap(make_utterance, jobs, chunksize=4), start=1):
            results[uid] = (n, labels)
            if i % max(1, len(jobs) // 20) == 0 or i == len(jobs):
                rate = i / (time.time() - t0)
                log(f"  {i}/{len(jobs)} utterances | {rate:.1f}/s | eta {(len(jobs) - i) / rate:.0f}s")
    vocab = sorted({p for _, labels in results.values() for p in labels})
    index = {p: i for i, p in enumerate(vocab)}
    rows, frames = [], {}
    for job in jobs:
        n, labels = results[job["id"]]
        meta = json.dumps({**job["voice"], "tilt": job["tilt"], "snr_db": job["snr_db"], "text": job["text"]})
        rows.append(Utterance(job["id"], str(job["path"].relative_to(out)), job["speaker"], split[job["id"]],
                              n / SAMPLE_RATE, SAMPLE_RATE, 1, n, meta))
        frames[job["id"]] = [index[p] for p in labels]
    write_phones(out / "phones.txt", frames)
    atomic_write_text(out / "phones_vocab.txt", "\n".join(vocab) + "\n")
    if tail:
        atomic_write_text(counts_path, json.dumps(train, indent=2, sort_keys=True) + "\n")
    else:  # a balanced corpus has no head and tail: drop the counts of an earlier long-tailed build
        counts_path.unlink(missing_ok=True)
    write_manifest(manifest, rows)
    write_abx_items(manifest, log, fresh=True)
    atomic_write_text(stamp, key + "\n")
    hours = sum(r.duration for r in rows) / 3600
    log(f"wrote {manifest}: {len(rows)} utterances, {hours:.2f} h, {len(vocab)} phone classes, "
        f"{time.time() - t0:.0f}s")
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--speakers", type=positive, default=100, help="speakers used for pretraining and probes")
    parser.add_argument("--heldout-speakers", type=count, default=20, help="extra speakers for few-shot tests")
    parser.add_argument("--utterances", type=positive, default=40, help="utterances per speaker")
    parser.add_argument("--variation", choices=["on", "off"], default="on")
    parser.add_argument("--workers", type=positive, default=2)
    parser.add_argument("--seed", type=count, default=0)
    parser.add_argument("--tail", type=nonnegative, default=0.0, metavar="ALPHA",
                        help="power-law exponent of the train utterances per speaker; 0: every speaker the same")
    parser.add_argument("--min-utterances", type=positive, default=MIN_UTTERANCES,
                        help="with --tail: train utterances of the rarest speakers")
    args = parser.parse_args(argv)
    return build(args.out, args.speakers, args.heldout_speakers, args.utterances, args.variation == "on",
                 args.workers, args.seed, tail=args.tail, min_utterances=args.min_utterances)


if __name__ == "__main__":
    sys.exit(report_errors(main, "data_prep.espeak_corpus"))
