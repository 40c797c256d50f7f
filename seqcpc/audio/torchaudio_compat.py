"""Import torchaudio on CPU-only torch builds.

Why this module exists: the newest torchaudio wheels on PyPI are built against CUDA torch. Beside a CPU build
of torch their C++ extension (`_torchaudio.abi3.so`) fails to load and `import torchaudio` raises OSError,
although everything seqcpc uses (MFCC, MelSpectrogram, Resample, filtering) is pure PyTorch. When that
happens we import torchaudio again with its extension marked as unavailable, exactly as torchaudio does
itself when the library file is absent. On a machine where the extension loads (matching torch and
torchaudio builds, e.g. a GPU box) the first import succeeds and nothing is patched.

Only this module imports torchaudio; the rest of seqcpc calls `import_torchaudio()`.
"""
import functools
import sys
import types


def _stub_extension() -> types.ModuleType:
    stub = types.ModuleType("torchaudio._extension")
    stub._IS_TORCHAUDIO_EXT_AVAILABLE = False
    stub._IS_ALIGN_AVAILABLE = False

    def fail_if_no_align(fn):
        @functools.wraps(fn)
        def unavailable(*args, **kwargs):
            raise RuntimeError(f"torchaudio.{fn.__name__} needs torchaudio's C++ extension, which failed to load")

        return unavailable

    stub.fail_if_no_align = fail_if_no_align
    return stub


@functools.cache
def import_torchaudio() -> types.ModuleType:
    """Return the torchaudio module, working around a C++ extension that cannot load."""
    try:
        import torchaudio
    except OSError:
        for name in [m for m in sys.modules if m == "torchaudio" or m.startswith("torchaudio.")]:
            del sys.modules[name]
        sys.modules["torchaudio._extension"] = _stub_extension()
        import torchaudio
    return torchaudio

