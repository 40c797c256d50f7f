"""Deterministic eSpeak NG speech synthesis with sample-exact phone alignments.

Why: an embedded speech corpus needs audio whose phone boundaries are known exactly, with no data download
and no forced aligner. eSpeak NG is a formant synthesiser, so it knows where every phone starts.

How: the PyPI package ``espeakng-loader`` ships libespeak-ng 1.52 and its data directory; we drive the C API
through ctypes in synchronous mode. Initialising with ``espeakINITIALIZE_PHONEME_EVENTS`` makes the synth
callback receive one ``espeakEVENT_PHONEME`` per phone, carrying the phone mnemonic (``id.string``, up to 8
chars) and its offset in samples from the start of the message (``sample``).

Determinism: eSpeak keeps synthesis state in static variables that no API call resets, so every call loads a
pristine private copy of the library (an in-memory file, ~3 ms), initialises it, reseeds eSpeak's and libc's
random generators, synthesises and unloads it again. Output is then a pure function of text and voice, within a
process and across processes. Variants with breath noise are left out (see ``list_variants``).

Concurrency: eSpeak is not thread-safe; calls in one process are serialised by a lock, so use processes for
parallelism (``spawn`` or ``fork``: nothing stays loaded between calls, and each process makes its own copy of
the library on first use). Linux only (memfd, /proc). eSpeak leaks a few KB per call, so recycle long-lived
workers (e.g. ``multiprocessing.Pool(maxtasksperchild=...)``) when synthesising a very large corpus.
"""
from __future__ import annotations

import _ctypes
import ctypes
import os
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import espeakng_loader
import numpy as np

SILENCE = "sil"  # label for pauses and for audio before the first phone

# Constants from speak_lib.h (espeak-ng 1.52).
_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000  # report a missing data dir as an error instead of calling exit()
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_PHONEME = 7
_RATE, _PITCH, _RANGE = 1, 3, 4  # espeak_PARAMETER
_SEED = 0


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


class _VoiceInfo(ctypes.Structure):  # espeak_VOICE
    # languages is a packed list of (priority byte, NUL-terminated code), so it is read as a raw pointer.
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass
class Voice:
    """One synthetic speaker setting.

    language: an eSpeak language code, e.g. "en-us", "en-gb", "en-gb-scotland", "en-029", "fr".
    variant: a name from ``list_variants()`` (e.g. "m3", "klatt2") or None for the language's default voice.
    pitch: base pitch, 0..100 (eSpeak's scale; 50 is the default).
    rate: speaking rate in words per minute, 80..450.
    range: pitch range (intonation excursion), 0..100.
    """

    language: str
    variant: str | None
    pitch: int
    rate: int
    range: int = 50


class _Instance:
    """A freshly loaded, initialised libespeak-ng, unloaded again on exit (use as a context manager).

    ``espeak_Initialize`` leaves static synthesis state alone (pitch flutter phase, glottal cycle count, gain
    control), so without a reload a repeated call yields slightly different audio.
    """

    def __init__(self) -> None:
        self.lib = lib = ctypes.CDLL(_private_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_VoiceInfo))
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = None
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.chunks: list[np.ndarray] = []
        self.events: list[tuple[str, int]] = []
        self._callback = _SynthCallback(self._on_audio)  # keep a reference: eSpeak holds only the raw pointer

    def __enter__(self) -> _Instance:
        self.sample_rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                                      espeakng_loader.get_data_path().encode(),
                                                      _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            _ctypes.dlclose(self.lib._handle)
            raise RuntimeError(f"espeak_Initialize failed with code {self.sample_rate}")
        self.lib.espeak_SetSynthCallback(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.lib.espeak_Terminate()
        _ctypes.dlclose(self.lib._handle)

    def voice_ids(self) -> dict[str, str]:
        """Language code -> identifier of the voice file that lists it with the best (lowest) priority.

        eSpeak's own lookup by name knows file names ("en-US") but not every code a file declares ("en-gb").
        """
        best: dict[str, tuple[int, str]] = {}
        voices = self.lib.espeak_ListVoices(None)
        i = 0
        while voices[i]:
            info = voices[i].contents
            packed, pos = ctypes.cast(info.languages, ctypes.POINTER(ctypes.c_ubyte)), 0
            while packed[pos]:  # a zero priority byte ends the list
                code = ctypes.string_at(info.languages + pos + 1).decode()
                if code not in best or packed[pos] < best[code][0]:
                    best[code] = (packed[pos], info.identifier.decode())
                pos += len(code) + 2
            i += 1
        return {code: identifier for code, (_, identifier) in best.items()}

    def _on_audio(self, wav, num_samples, events) -> int:
        if num_samples > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (num_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            if events[i].type == _EVENT_PHONEME:
                self.events.append((events[i].id.string.decode("ascii", "replace"), events[i].sample))
            i += 1
        return 0  # 0 = keep synthesising

    def synthesize(self, text: str, voice_name: str, voice: Voice) -> tuple[np.ndarray, list[tuple[str, int]]]:
        """(int16 PCM of shape (num_samples,), [(eSpeak phone mnemonic, start sample), ...])."""
        code = self.lib.espeak_SetVoiceByName(voice_name.encode())
        if code != 0:
            raise RuntimeError(f"espeak_SetVoiceByName({voice_name!r}) failed with code {code}")
        for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.range)):
            self.lib.espeak_SetParameter(param, value, 0)
        # Klatt voices draw noise from eSpeak's own generator, the speechPlayer ones ("klatt 6") from libc rand().
        self.lib.espeak_ng_SetRandSeed(_SEED)
        _libc.srand(_SEED)
        data = text.encode("utf-8") + b"\0"
        code = self.lib.espeak_Synth(data, len(data), 0, 0, 0, _CHARS_UTF8, None, None)
        if code != 0:
            raise RuntimeError(f"espeak_Synth failed with code {code}")
        pcm = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
        return pcm, self.events


_lock = threading.Lock()
_libc = ctypes.CDLL(None)
_libc.srand.argtypes = [ctypes.c_uint]


@lru_cache(maxsize=1)
def _private_library_path() -> str:
    """Path of this process's in-memory copy of libespeak-ng.

    dlclose only unloads (and so resets) a library that nothing else holds open; a private copy keeps other code
    that loads espeakng_loader's library from pinning it. A fork child inherits the descriptor and can use it.
    """
    fd = os.memfd_create("libespeak-ng")
    with open(espeakng_loader.get_library_path(), "rb") as src, os.fdopen(fd, "wb", closefd=False) as dst:
        dst.write(src.read())
    return f"/proc/self/fd/{fd}"


@lru_cache(maxsize=1)
def _voice_ids() -> dict[str, str]:
    with _lock, _Instance() as instance:
        return instance.voice_ids()


def list_languages() -> list[str]:
    """The eSpeak language codes ``Voice.language`` accepts (lower case, e.g. "en-us", "en-gb-scotland"), sorted."""
    return sorted(_voice_ids())


def _is_breathy(variant_file: Path) -> bool:
    for line in variant_file.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if fields and fields[0] == "breath" and any(v != "0" for v in fields[1:]):
            return True
    return False


@lru_cache(maxsize=1)
def _variants() -> tuple[tuple[str, ...], frozenset[str]]:
    """(usable variant names, breathy variant names)."""
    files = sorted(p for p in (Path(espeakng_loader.get_data_path()) / "voices" / "!v").iterdir() if p.is_file())
    breathy = frozenset(p.name for p in files if _is_breathy(p))
    return tuple(p.name for p in files if p.name not in breathy), breathy


def list_variants() -> list[str]:
    """Names of the eSpeak voice variants (files in ``voices/!v``) that ``Voice.variant`` accepts, sorted.

    Variants whose file sets a non-zero ``breath`` are excluded (and refused by ``synthesize``): breath noise is
    random, reproducible only through reseeding process-global generators, and the corpus wants audio that
    depends on text and voice settings alone.
    """
    return list(_variants()[0])


def _voice_name(text: str, voice: Voice) -> str:
    """Validate the request; return the name to pass to ``espeak_SetVoiceByName``."""
    if not text.strip():
        raise ValueError("text is empty")
    identifier = _voice_ids().get(voice.language.lower())
    if identifier is None:
        raise ValueError(f"unknown eSpeak language {voice.language!r}; see list_languages()")
    usable, breathy = _variants()
    if voice.variant in breathy:
        raise ValueError(f"eSpeak variant {voice.variant!r} adds random breath noise; use one of list_variants()")
    if voice.variant is not None and voice.variant not in usable:
        raise ValueError(f"unknown eSpeak variant {voice.variant!r}; see list_variants()")
    for field, value, low, high in (("pitch", voice.pitch, 0, 100), ("range", voice.range, 0, 100),
                                    ("rate", voice.rate, 80, 450)):
        if not low <= value <= high:
            raise ValueError(f"voice {field}={value} is outside {low}..{high}")
    return identifier if voice.variant is None else f"{identifier}+{voice.variant}"


def _label(mnemonic: str) -> str:
    # eSpeak writes pauses as "_", "_:", "_!" ...; stress marks (' primary, , secondary) are prosody, not phones.
    return SILENCE if mnemonic.startswith("_") or not mnemonic else mnemonic.lstrip("',")


def _phones(events: list[tuple[str, int]], num_samples: int) -> list[tuple[str, int]]:
    phones: list[tuple[str, int]] = []
    for mnemonic, start in events:
        if start >= num_samples:  # the closing pause is reported at the very end of the audio
            continue
        label = _label(mnemonic)
        if phones and phones[-1][1] == start:  # a zero-length phone covers no sample: the later one wins
            phones.pop()
        if phones and phones[-1][0] == label == SILENCE:
            continue
        phones.append((label, start))
    if phones and phones[0][0] == SILENCE:
        phones[0] = (SILENCE, 0)
    elif not phones or phones[0][1] > 0:
        phones.insert(0, (SILENCE, 0))
    return phones


def synthesize(text: str, voice: Voice) -> tuple[np.ndarray, int, list[tuple[str, int]]]:
    """Speak ``text`` with ``voice``; bit-identical output for identical inputs, in any process.

    Returns ``(audio, sample_rate, phones)``: ``audio`` is float32 mono in [-1, 1), shape (num_samples,), at
    eSpeak's native rate (22050 Hz); ``phones`` is ``[(label, start_sample), ...]`` with strictly increasing
    starts, the first at sample 0 and all below ``num_samples``, so each phone runs to the next one's start and
    every sample is covered. Labels are eSpeak phoneme mnemonics without stress marks, or ``"sil"`` for pauses.
    Raises ValueError for empty text, an unknown language or variant, or out-of-range voice settings.
    """
    voice_name = _voice_name(text, voice)
    with _lock, _Instance() as instance:
        pcm, events = instance.synthesize(text, voice_name, voice)
    if pcm.size == 0:
        raise RuntimeError(f"eSpeak produced no audio for {text!r}")
    return pcm.astype(np.float32) / 32768.0, instance.sample_rate, _phones(events, pcm.size)


def frame_labels(phones: list[tuple[str, int]], num_samples: int, sample_rate: int,
                 hop_s: float = 0.01) -> list[str]:
    """One phone label per frame of ``hop_s`` seconds (10 ms by default).

    Frame ``i`` covers samples ``[i*hop, (i+1)*hop)`` with ``hop = round(sample_rate*hop_s)`` and takes the label
    of the phone covering its centre; frames before the first phone are ``"sil"``. Returns
    ``num_samples // hop`` labels.
    """
    hop = round(sample_rate * hop_s)
    starts = np.array([start for _, start in phones], dtype=np.int64)
    centres = np.arange(num_samples // hop, dtype=np.int64) * hop + hop // 2
    index = np.searchsorted(starts, centres, side="right") - 1
    return [phones[i][0] if i >= 0 else SILENCE for i in index]
