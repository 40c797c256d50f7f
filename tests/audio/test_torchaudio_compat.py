import subprocess
import sys

import torch

from seqcpc.audio.torchaudio_compat import import_torchaudio


def test_mfcc_and_resample_work_whatever_the_extension():
    ta = import_torchaudio()
    mfcc = ta.transforms.MFCC(sample_rate=16000, n_mfcc=13, melkwargs={"n_mels": 40, "hop_length": 160})
    feats = mfcc(torch.randn(1, 16000))
    assert feats.shape == (1, 13, 101) and torch.isfinite(feats).all()
    assert ta.transforms.Resample(44100, 16000)(torch.randn(1, 44100)).shape == (1, 16000)


def test_import_seqcpc_does_not_import_torchaudio():
    code = "import sys, seqcpc; print('torchaudio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
